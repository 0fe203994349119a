"""``steer-pu bench``: the engine, a plain loop and lm-eval's steered model on the same sweep."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from steer_pu.cli.common import console, err_console, print_wide, user_errors, warn_if_emulated
from steer_pu.devices import DEVICE_HELP, DTYPE_HELP
from steer_pu.models import DEFAULT_MODEL


@user_errors
def bench_command(
    model: Annotated[str, typer.Option(help="registry name or local HF directory")] = DEFAULT_MODEL,
    quick: Annotated[bool, typer.Option(help="2 concepts × 4 test pairs (under two minutes)")] = False,
    concepts: Annotated[Optional[str], typer.Option(help="comma-separated concepts (default: the whole suite)")] = None,
    pairs: Annotated[Optional[int], typer.Option(help="first N test pairs per concept (default: all)")] = None,
    plain: Annotated[bool, typer.Option(help="also time the plain one-sequence loop")] = True,
    lm_eval: Annotated[bool, typer.Option("--lm-eval/--no-lm-eval", help="also time lm-eval's steered model")] = True,
    lm_eval_dtype: Annotated[Optional[str], typer.Option(help="lm-eval model dtype (default: --dtype)")] = None,
    lm_eval_softmax_dtype: Annotated[
        str,
        typer.Option(help="lm-eval's softmax_dtype (float64 agrees with the engine to 1e-4; 'model': stock lm-eval)"),
    ] = "float64",
    threads: Annotated[int, typer.Option(help="torch threads")] = os.cpu_count() or 1,
    token_budget: Annotated[
        Optional[int], typer.Option(help="engine tokens per forward batch (default: as the free memory allows)")
    ] = None,
    device: Annotated[str, typer.Option(help=DEVICE_HELP)] = "auto",
    dtype: Annotated[str, typer.Option(help=DTYPE_HELP)] = "float32",
    strengths_per_replay: Annotated[
        int,
        typer.Option(help="engine: strengths replayed together (pair batches shrink to keep the token budget)", min=1),
    ] = 1,
    json_out: Annotated[Optional[Path], typer.Option("--json", help="also write the figures as JSON")] = None,
) -> None:
    """Time one vector sweep three ways in one process and print the ratios."""
    import torch

    from steer_pu.io import atomic_write_json
    from steer_pu.models import load_model
    from steer_pu.paths import default_suite_dir
    from steer_pu.perf.bench import agreement_tolerance, bench
    from steer_pu.suite.concepts import load_concepts

    torch.set_num_threads(threads)
    names = [c.strip() for c in concepts.split(",")] if concepts else (["power_seeking", "ocean"] if quick else None)
    n_pairs = pairs if pairs is not None else (4 if quick else None)
    warn_if_emulated(device, dtype)
    loaded = load_model(model, device, dtype)
    figures = bench(
        loaded, load_concepts(default_suite_dir(), names), n_pairs, token_budget,
        with_plain=plain, with_lm_eval=lm_eval, lm_eval_dtype=lm_eval_dtype, log=err_console.print,
        strengths_per_replay=strengths_per_replay,
        lm_eval_softmax_dtype=None if lm_eval_softmax_dtype == "model" else lm_eval_softmax_dtype,
    )  # fmt: skip
    table = Table(
        "way",
        "seconds",
        "pairs·strengths/s",
        "× engine time",
        "TFLOP (× engine)",
        "GFLOP/s",
        "peak RSS MB",
        "mean PrefOdds",
        "mean UtilOdds",
        "|Δ| vs engine",
        title=f"{figures['pairs']} pairs × {len(figures['strengths'])} strengths on {model} "
        f"({figures['threads']} threads, {figures['dtype']} on {figures['device']})",
    )
    for row in figures["ways"]:
        load = f" (+{row['load_seconds']:.1f} load)" if row["load_seconds"] else ""
        table.add_row(
            row["way"], f"{row['seconds']:.1f}{load}", f"{row['pairs_per_s']:.1f}", f"{row['speedup_of_engine']:.2f}",
            f"{row['flops'] / 1e12:.2f} ({row['flops_of_engine']:.2f})", f"{row['gflops']:.1f}",
            f"{row['peak_rss_mb']:.0f}",
            f"{row['mean_pref_logodds']:.6f}", f"{row['mean_util_logodds']:.6f}",
            f"{row['d_pref']:.1e} / {row['d_util']:.1e}",
        )  # fmt: skip
    print_wide(table, 190)
    console.print(
        f"engine: token budget {figures['token_budget']}, peak memory {figures['engine_peak_device_mb']:.0f} MB "
        f"({'GPU tensors' if figures['device'].startswith('cuda') else 'process RSS'} on {figures['device']})",
        highlight=False,
    )
    console.print(
        f"engine: {figures['engine_flops'] / 1e12:.2f} TFLOP in {figures['ways'][0]['seconds']:.1f} s = "
        f"{figures['engine_gflops']:.1f} GFLOP/s; "
        f"measured {figures['dtype']} matmul peak {figures['matmul_peak_gflops']:.1f} GFLOP/s "
        f"({figures['engine_gflops'] / figures['matmul_peak_gflops']:.0%})",
        soft_wrap=True,
    )
    worst = max(max(r["d_pref"], r["d_util"]) for r in figures["ways"])
    bound = agreement_tolerance(figures["dtype"])  # 16-bit ways round differently: a looser bound
    verdict = "PASS" if worst <= bound else f"FAIL (largest |Δ| {worst:.1e})"
    console.print(f"agreement of means ({bound:g}, {figures['dtype']}): {verdict}", highlight=False)
    if json_out:
        atomic_write_json(json_out, figures)


@user_errors
def cost_command(
    run_dirs: Annotated[list[Path], typer.Argument(help="run directories (each with run.json)")],
    peak_gflops: Annotated[
        Optional[float],
        typer.Option(
            help="matmul peak to compare with "
            "(default: measured now at each run's thread count; measure on a quiet machine)"
        ),
    ] = None,
    json_out: Annotated[Optional[Path], typer.Option("--json", help="also write the figures as JSON")] = None,
) -> None:
    """Each run's FLOPs (fit + sweep) beside its recorded wall time and the time they take at the matmul peak."""
    from dataclasses import asdict

    import torch

    from steer_pu.io import atomic_write_json
    from steer_pu.models import load_model
    from steer_pu.perf.bench import matmul_peak_gflops
    from steer_pu.perf.cost import run_cost
    from steer_pu.runs.run import read_run_file

    table = Table(
        "run",
        "method-form",
        "threads",
        "fit TFLOP",
        "sweep TFLOP",
        "floor TFLOP",
        "wall s",
        "GFLOP/s",
        "peak GFLOP/s",
        "s at peak (floor)",
        "wall ÷ floor time",
        title="Run cost: dense matmul FLOPs against recorded wall time",
    )
    peaks: dict[int, float] = {}
    loaded_models: dict[str, object] = {}
    records, sums = [], {"flops": 0.0, "floor": 0.0, "wall": 0.0, "limit": 0.0}
    for run_dir in run_dirs:
        config = read_run_file(run_dir).config
        if config.model not in loaded_models:
            loaded_models[config.model] = load_model(config.model)
        if peak_gflops is None and config.threads not in peaks:
            torch.set_num_threads(config.threads)
            peaks[config.threads] = matmul_peak_gflops()
        peak = peak_gflops or peaks[config.threads]
        costs = run_cost(config, run_dir, loaded_models[config.model])
        fit, sweep, floor = (sum(getattr(c, k) for c in costs) for k in ("fit_flops", "sweep_flops", "floor_flops"))
        executed = fit + sweep
        walls = [c.wall_s for c in costs]
        wall = None if any(w is None for w in walls) else sum(walls)
        limit = floor / (peak * 1e9)
        records.append(
            {
                "run": str(run_dir),
                "method": config.method,
                "form": config.form,
                "threads": config.threads,
                "fit_flops": fit,
                "sweep_flops": sweep,
                "floor_flops": floor,
                "wall_s": wall,
                "peak_gflops": peak,
                "seconds_at_peak": limit,
                "concepts": [asdict(c) for c in costs],
            }
        )
        if wall is not None:
            sums = {
                "flops": sums["flops"] + executed,
                "floor": sums["floor"] + floor,
                "wall": sums["wall"] + wall,
                "limit": sums["limit"] + limit,
            }
        table.add_row(
            run_dir.name, f"{config.method}-{config.form}", str(config.threads),
            f"{fit / 1e12:.1f}", f"{sweep / 1e12:.1f}", f"{floor / 1e12:.1f}",
            "not recorded" if wall is None else f"{wall:.0f}", "–" if wall is None else f"{executed / wall / 1e9:.1f}",
            f"{peak:.1f}", f"{limit:.0f}", "–" if wall is None else f"{wall / limit:.2f}",
        )  # fmt: skip
    print_wide(table, 200)  # one line per run
    if sums["wall"]:
        console.print(
            f"runs with recorded times: {sums['wall']:.0f} s wall for {sums['flops'] / 1e12:.1f} TFLOP executed "
            f"({sums['floor'] / 1e12:.1f} TFLOP floor, {sums['limit']:.0f} s at peak): "
            f"wall is {sums['wall'] / sums['limit']:.2f}× the limit"
        )
    if json_out:
        atomic_write_json(json_out, {"runs": records})
