"""``steer-pu bench``: the same vector sweep scored three ways in one process, side by side.

(a) the steer-pu engine (:func:`~steer_pu.engine.sweep.score_sweep`: one row per pair, layers < L
once per batch, blocks ≥ L replayed per strength, vocabulary projection at completion
positions only); (b) a plain loop (:func:`~steer_pu.engine.scoring.score_pairs_plain` under the
hook: one full forward per sequence per strength); (c) lm-eval's own ``steered`` model,
one run per (concept, strength) with the vector exported as its config (model loading is
timed apart), float32 weights with HFLM's ``softmax_dtype=float64`` by default so that its
UtilOdds agree with the other two ways (stock lm-eval takes the log-softmax in float32).
The work is a DiffMean vector per concept swept over DiffMean's declared grid on the test
split. Reported: wall time, pairs/s, peak RSS, the ratios, agreement of mean PrefOdds /
UtilOdds, and each way's dense FLOPs and achieved GFLOP/s against this
machine's measured dense-matmul peak. (b) runs one full forward per completion with logits
at every position (:func:`~steer_pu.perf.flops.sequence_flops`); (c) does the same plus a third
request per pair, the whitespace probe the lm-eval task needs for exact token boundaries
(:func:`~steer_pu.perf.flops.lm_eval_flops`). A way's FLOP ratio to the engine is the speed-up
the engine would have over it at equal efficiency.
"""

from __future__ import annotations

import json
import resource
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from steer_pu.analysis import metrics
from steer_pu.analysis.pair_scores import PairScores
from steer_pu.devices import AUTO_MAP, device_record, input_device, peak_memory_mb, reset_peak_memory, torch_dtype
from steer_pu.engine.encoding import PromptFormat
from steer_pu.engine.scoring import resolve_token_budget, score_pairs_plain
from steer_pu.engine.sweep import score_sweep
from steer_pu.interventions import VectorIntervention
from steer_pu.methods import DiffMean, check_grid
from steer_pu.models import LoadedModel
from steer_pu.perf.flops import lm_eval_flops, sequence_flops, sweep_flops
from steer_pu.suite.concepts import Concept


@dataclass
class Way:
    """One way of scoring the sweep: its seconds, peak RSS and per-(concept, m) scores."""

    name: str
    seconds: float = 0.0
    load_seconds: float = 0.0
    peak_rss_mb: float = 0.0
    peak_device_mb: float = 0.0  # the engine's peak tensor memory on a GPU (its RSS peak on a CPU)
    flops: float = 0.0  # dense FLOPs of the work this way does (steer_pu.perf.flops)
    scores: dict[str, dict[float, PairScores]] = field(default_factory=dict)

    def means(self) -> tuple[float, float]:
        """Mean PrefOdds and UtilOdds over every scored (pair, strength)."""
        all_scores = [s for by_m in self.scores.values() for s in by_m.values()]
        pref = np.concatenate([metrics.pref_logodds(s.nll_pos, s.nll_neg) for s in all_scores])
        util = np.concatenate([metrics.util_logodds(s.nll_pos, s.nll_neg) for s in all_scores])
        return float(pref.mean()), float(util.mean())


# The ways must agree on mean PrefOdds and UtilOdds to this, by the model's dtype. float32: the
# engine, the plain loop and lm-eval (float64 log-softmax) agree to ~1e-6. A 16-bit model rounds
# each way's batch shapes differently: measured on smollm2-135m in bfloat16 on this CPU
# (`steer-pu bench --quick --dtype bfloat16 --threads 1`, 2026-12-01), the plain loop is off the
# engine by 1.0e-3 / 4.5e-3 and lm-eval by 2.7e-2 / 1.3e-2; the bound is about twice the largest.
AGREEMENT_TOLERANCE = {"float32": 1e-4, "bfloat16": 5e-2, "float16": 5e-2}


def agreement_tolerance(dtype: str) -> float:
    """How closely the ways' means must agree for a model in ``dtype`` (float32's for any other)."""
    return AGREEMENT_TOLERANCE.get(dtype, AGREEMENT_TOLERANCE["float32"])


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def matmul_peak_gflops(
    size: int = 1024, seconds: float = 2.0, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32
) -> float:
    """Best sustained GEMM rate over ~``seconds`` (the physical limit of this machine) on ``device``
    in ``dtype`` (fp32 on the CPU by default; a GPU gets 8192² matrices, enough to fill it)."""
    device = torch.device(device)
    size = 8192 if device.type == "cuda" else size
    a, b = torch.randn(size, size, device=device, dtype=dtype), torch.randn(size, size, device=device, dtype=dtype)

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    torch.mm(a, b)  # warm-up
    sync()
    best, deadline = 0.0, time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        start = time.perf_counter()
        for _ in range(4):
            torch.mm(a, b)
        sync()
        best = max(best, 4 * 2 * size**3 / (time.perf_counter() - start) / 1e9)
    return best


def run_engine(loaded, work, vectors, grid, token_budget, strengths_per_replay: int = 1) -> Way:
    way = Way(
        "steer-pu engine" + (f" ({strengths_per_replay} strengths per replay)" if strengths_per_replay > 1 else "")
    )
    device = input_device(loaded.model)
    reset_peak_memory(device)
    start = time.perf_counter()
    for name, pairs in work.items():
        way.scores[name] = score_sweep(loaded.model, pairs, vectors[name], grid, token_budget, strengths_per_replay)
    way.seconds, way.peak_rss_mb = time.perf_counter() - start, peak_rss_mb()
    way.peak_device_mb = peak_memory_mb(device)
    return way


def run_plain(loaded, work, vectors, grid) -> Way:
    way = Way("plain loop")
    start = time.perf_counter()
    for name, pairs in work.items():
        way.scores[name] = {}
        for m in grid:
            with vectors[name].apply(loaded.model, m):
                way.scores[name][m] = score_pairs_plain(loaded.model, pairs)
    way.seconds, way.peak_rss_mb = time.perf_counter() - start, peak_rss_mb()
    return way


def run_lm_eval(
    loaded, concepts: dict[str, Concept], n_pairs: int, vectors, grid, dtype: str, softmax_dtype: str | None = None
) -> Way:
    """lm-eval 0.4.13's ``steered`` model, one run per (concept, m); model loading timed apart.

    ``softmax_dtype`` is HFLM's own argument (None: the log-softmax in the model's dtype)."""
    import lm_eval
    from lm_eval.models.hf_steered import SteeredModel
    from lm_eval.tasks import TaskManager

    from steer_pu.integrations.export import export_steered
    from steer_pu.integrations.lm_eval.generate import task_name
    from steer_pu.integrations.lm_eval.samples import read_samples_file
    from steer_pu.paths import lm_eval_task_dir

    lm_device = "cuda" if loaded.device == AUTO_MAP else loaded.device  # lm-eval runs on one device

    way = Way(f"lm-eval steered ({dtype}" + (f", {softmax_dtype} log-softmax)" if softmax_dtype else ")"))
    # only steer-pu's tasks: indexing lm-eval's thousands of built-in task files takes seconds and is not the work
    manager = TaskManager(
        include_path=str(lm_eval_task_dir()), include_defaults=False, metadata={"pretrained": str(loaded.path)}
    )
    with tempfile.TemporaryDirectory(prefix="steer-pu-bench-") as tmp:
        for name in concepts:
            way.scores[name] = {}
            for m in grid:
                cfg = export_steered(vectors[name], m, Path(tmp) / f"{name}-{m:g}.pt")
                start = time.perf_counter()
                lm = SteeredModel(
                    pretrained=str(loaded.path), steer_path=str(cfg), device=lm_device, dtype=dtype, batch_size=64,
                    softmax_dtype=softmax_dtype,
                )  # fmt: skip
                loaded_at = time.perf_counter()
                result = lm_eval.simple_evaluate(
                    model=lm,
                    tasks=[task_name(name)],
                    task_manager=manager,
                    limit=n_pairs,
                    log_samples=True,
                    verbosity="ERROR",
                )
                way.seconds += time.perf_counter() - loaded_at
                way.load_seconds += loaded_at - start
                rows = next(iter(result["samples"].values()))
                path = Path(tmp) / f"samples_{name}_{m:g}.jsonl"
                # through a samples file, so the bench reads lm-eval's output with the one reader users have
                path.write_text("".join(json.dumps(r, default=str) + "\n" for r in rows))
                way.scores[name][m] = read_samples_file(path, name).scores
                del lm
    way.peak_rss_mb = peak_rss_mb()
    return way


def bench(
    loaded: LoadedModel,
    concepts: list[Concept],
    n_pairs: int | None,
    token_budget: int | None,
    with_plain: bool = True,
    with_lm_eval: bool = True,
    lm_eval_dtype: str | None = None,
    log: Callable[[str], None] = print,
    lm_eval_softmax_dtype: str | None = "float64",
    strengths_per_replay: int = 1,
) -> dict:
    """Run the ways side by side and return every figure (see the module docstring).

    ``token_budget`` None: as the device's free memory allows; ``lm_eval_dtype`` None: the model's."""
    lm_eval_dtype = lm_eval_dtype or loaded.dtype
    token_budget = resolve_token_budget(loaded.model, token_budget)
    fmt = PromptFormat(loaded.tokenizer, loaded.use_chat_template)
    layer = loaded.default_layer
    grid = check_grid(list(DiffMean().strengths()))
    log(f"fitting DiffMean vectors for {len(concepts)} concept(s) at layer {layer} (not timed)")
    vectors: dict[str, VectorIntervention] = {c.name: DiffMean().fit(loaded, fmt, layer, c.train, 0) for c in concepts}
    tests = {c.name: c.test[:n_pairs] if n_pairs else c.test for c in concepts}
    work = {name: fmt.encode_all(pairs) for name, pairs in tests.items()}
    n_scored = sum(len(p) for p in work.values()) * len(grid)
    log(f"work: {sum(len(p) for p in work.values())} test pairs × {len(grid)} strengths = {n_scored} pair scores")
    peak = matmul_peak_gflops(device=input_device(loaded.model), dtype=torch_dtype(loaded.dtype))
    n_steered = sum(m != 0 for m in grid)
    engine = run_engine(loaded, work, vectors, grid, token_budget, strengths_per_replay)
    engine.flops = sum(
        sweep_flops(loaded.model, layer, pairs, n_steered, token_budget, strengths_per_replay)
        for pairs in work.values()
    )
    ways = [engine]
    log(f"  engine done in {engine.seconds:.1f} s")
    if with_plain:
        ways.append(run_plain(loaded, work, vectors, grid))
        ways[-1].flops = len(grid) * sum(sequence_flops(loaded.model, pairs) for pairs in work.values())
        log(f"  plain loop done in {ways[-1].seconds:.1f} s")
    if with_lm_eval:
        from steer_pu.integrations.lm_eval.docs import render_doc

        n = n_pairs or max(len(c.test) for c in concepts)
        ways.append(
            run_lm_eval(loaded, {c.name: c for c in concepts}, n, vectors, grid, lm_eval_dtype, lm_eval_softmax_dtype)
        )
        docs = [render_doc(fmt, pair) for pairs in tests.values() for pair in pairs]
        ways[-1].flops = len(grid) * lm_eval_flops(loaded.model, loaded.tokenizer, docs)
        log(f"  lm-eval done in {ways[-1].seconds:.1f} s (+{ways[-1].load_seconds:.1f} s model loads)")
    ref_pref, ref_util = engine.means()
    rows = []
    for way in ways:
        pref, util = way.means()
        rows.append({
            "flops": way.flops, "gflops": way.flops / way.seconds / 1e9, "flops_of_engine": way.flops / engine.flops,
            "way": way.name, "seconds": way.seconds, "load_seconds": way.load_seconds,
            "pairs_per_s": n_scored / way.seconds,
            "peak_rss_mb": way.peak_rss_mb, "peak_device_mb": way.peak_device_mb,
            "speedup_of_engine": way.seconds / engine.seconds,
            "mean_pref_logodds": pref, "mean_util_logodds": util,
            "d_pref": abs(pref - ref_pref), "d_util": abs(util - ref_util),
        })  # fmt: skip
    return {
        "model": loaded.name, "layer": layer, "strengths": grid, "pairs": n_scored // len(grid),
        "pair_scores": n_scored,
        "threads": torch.get_num_threads(), "matmul_peak_gflops": peak,
        "engine_gflops": engine.flops / engine.seconds / 1e9, "engine_flops": engine.flops, "ways": rows,
        "device": loaded.device, "dtype": loaded.dtype, "token_budget": token_budget,
        "engine_peak_device_mb": engine.peak_device_mb,
        "device_info": device_record(loaded.device, loaded.dtype, torch.get_num_threads()),
    }  # fmt: skip
