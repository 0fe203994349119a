#!/usr/bin/env python
"""The training-budget study (docs/results/training_budget.md): FA against optimiser steps.

For each concept × method × form × budget it trains one intervention for that many optimiser
steps (the schedule decays to 0 over the budget, so each budget is its own run, seed 0), sweeps
the method's declared strength grid on the test split and records FA, FA−, p(0) and the
training loss of the last epoch. Results go to one JSON file, written after every run, and a run
already in it is skipped: an interrupted study resumes. ``--report`` turns one or more result
files into the Markdown table and the figure.

    .venv/bin/python scripts/training_budget.py --out runs/budget/a.json --forms vector
    .venv/bin/python scripts/training_budget.py --out runs/budget/b.json --forms lora
    .venv/bin/python scripts/training_budget.py --report runs/budget/a.json runs/budget/b.json \
        --markdown docs/results/training_budget.md --figure docs/img/training_budget.png
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

RULE = 0.01  # a budget is enough when doubling it raises FA by less than this


def run_study(args: argparse.Namespace) -> None:
    import torch

    from steer_pu.analysis.frontier import concept_scores
    from steer_pu.devices import emulated_dtype_note
    from steer_pu.engine.encoding import PromptFormat
    from steer_pu.engine.sweep import score_sweep
    from steer_pu.io import atomic_write_json
    from steer_pu.methods import get_method
    from steer_pu.models import load_model
    from steer_pu.paths import default_suite_dir
    from steer_pu.suite.concepts import load_concepts

    torch.set_num_threads(args.threads)
    if note := emulated_dtype_note("cpu", args.dtype):
        print(f"warning: {note}", flush=True)
    out = Path(args.out)
    results = json.loads(out.read_text()) if out.is_file() else {}
    loaded = load_model(args.model, dtype=args.dtype)
    fmt = PromptFormat(loaded.tokenizer, loaded.use_chat_template)
    suite = Path(args.suite) if args.suite else default_suite_dir()
    concepts = load_concepts(suite, args.concepts.split(","))
    encoded = {c.name: fmt.encode_all(c.test) for c in concepts}
    # budgets outermost: every method-form has its small budgets before any gets the large ones
    units = [
        (steps, seed, concept, name, form)
        for steps in (int(s) for s in args.steps.split(","))
        for seed in (int(s) for s in args.seeds.split(","))
        for concept in concepts
        for name in args.methods.split(",")
        for form in args.forms.split(",")
    ]
    for steps, seed, concept, name, form in units:
        # seed 0 keeps the keys of the first study's files; an override names itself in the key
        key = f"{concept.name}/{name}-{form}/{steps}" + (f"/seed{seed}" if seed else "")
        key += "".join(f"/{k}={json.dumps(v)}" for k, v in sorted(dict(args.hp or []).items()))
        if key in results:
            continue
        method = get_method(name)(form, steps=steps, **dict(args.hp or []))
        start = time.perf_counter()
        torch.manual_seed(seed)
        intervention = method.fit(loaded, fmt, loaded.default_layer, concept.train, seed=seed)
        fit_s = time.perf_counter() - start
        grid = sorted({0.0, *method.strengths()})
        sweep = score_sweep(loaded.model, encoded[concept.name], intervention, grid)
        scores = concept_scores(sweep)
        results[key] = {
            "seed": seed,
            # per-pair NLLs per strength: budgets can be compared pair by pair (paired bootstrap)
            "pair_scores": {f"{m:g}": sweep[m].to_json() for m in grid},
            "concept": concept.name,
            "method": name,
            "form": form,
            "steps": steps,
            "hp": dict(args.hp or []),
            "fa": scores.fa,
            "fa_negative": scores.fa_negative,
            "base_p": scores.base_p,
            "loss_last_epoch": method.last_loss_history[-1],
            "loss_per_epoch": method.last_loss_history,
            "fit_s": round(fit_s, 1),
            "sweep_s": round(time.perf_counter() - start - fit_s, 1),
            "model": args.model,
            "suite": str(suite),
            "threads": args.threads,
            "dtype": args.dtype,
        }
        atomic_write_json(out, results)
        print(f"{key}: FA {scores.fa:.4f} FA- {scores.fa_negative:.4f} "
                          f"loss {method.last_loss_history[-1]:.4f} fit {fit_s:.0f}s", flush=True)  # fmt: skip


def enough_steps(
    gains: dict[tuple[int, int], float], thresholds: dict[tuple[int, int], float] | None = None
) -> int | None:
    """The smallest budget S whose doubling, and whose quadrupling where measured, raises FA by less
    than the rule's threshold: RULE, or (amended rule) max(RULE, the paired-bootstrap CI half-width
    of that difference). ``gains[(S, T)]`` is the seed-mean FA(T) − FA(S) over the seeds both
    budgets have; ``thresholds[(S, T)]`` its half-width.

    A fall counts as settled: the rule is "trained until more steps stop helping", and a budget
    past which FA drops (over-fitting 100 training pairs) is not one that needs more steps. The 4S
    check keeps two rises, each inside one seed's noise, from settling a budget that a longer run
    shows to be short (SFT local weight: +0.048 and +0.041, together +0.089 [+0.005, +0.152])."""
    for s in sorted({small for small, _ in gains}):
        if (s, 2 * s) not in gains:
            continue
        checks = [t for t in (2 * s, 4 * s) if (s, t) in gains]
        if all(gains[(s, t)] < max(RULE, (thresholds or {}).get((s, t), 0.0)) for t in checks):
            return s
    return None


SeriesKey = tuple[str, str, str, str]  # (concept, method, form, dtype)


def load_series(paths: list[str]) -> dict[SeriesKey, dict[int, dict[int, dict]]]:
    """Study units from result files: one series per concept, method-form and dtype; each budget
    holds its seeds' units. Units trained with a ``--hp`` override (the ablations) are not part of
    the default schedule's curves and are left out."""
    series: dict[SeriesKey, dict[int, dict[int, dict]]] = {}
    for path in paths:
        for unit in json.loads(Path(path).read_text()).values():
            if unit.get("hp"):
                continue
            key = (unit["concept"], unit["method"], unit["form"], unit.get("dtype", "float32"))
            series.setdefault(key, {}).setdefault(unit["steps"], {})[unit.get("seed", 0)] = unit
    return series


def summarise(by_steps: dict[int, dict[int, dict]]) -> dict:
    """A series' seed-mean FA and loss per budget, each doubling's CI half-width, and the budget
    the rule settles on (None: not settled)."""
    import statistics

    means = {s: statistics.mean(u["fa"] for u in units.values()) for s, units in by_steps.items()}
    losses = {s: statistics.mean(u["loss_last_epoch"] for u in units.values()) for s, units in by_steps.items()}
    # (S, T), T = 2S or 4S: the seed-mean FA(T) − FA(S) over the seeds both have, and its CI half-width
    gains: dict[tuple[int, int], float] = {}
    widths: dict[tuple[int, int], float] = {}
    for s in by_steps:
        for t in (2 * s, 4 * s):
            common = sorted(set(by_steps[s]) & set(by_steps.get(t, {})))
            if not common:
                continue
            small, large = [by_steps[s][k] for k in common], [by_steps[t][k] for k in common]
            gains[(s, t)] = statistics.mean(b["fa"] - a["fa"] for a, b in zip(small, large))
            width = doubling_half_width(small, large)
            if width is not None:
                widths[(s, t)] = width
    seeds = sorted({k for units in by_steps.values() for k in units})
    enough = enough_steps(gains, widths)
    return {"means": means, "losses": losses, "gains": gains, "widths": widths, "seeds": seeds, "enough": enough,
            "reach": max(by_steps)}  # fmt: skip


def method_form_budgets(summaries: dict[SeriesKey, dict]) -> dict[tuple[str, str], tuple[int | None, str]]:
    """The rule's default per method-form: the largest budget it settles on over the concepts.

    ``summaries`` maps (concept, method, form, dtype) to its :func:`summarise` (``enough``,
    ``reach``: the largest budget measured, ``seeds``). Where a method-form has several series on a concept (float32 and
    bfloat16 runs), the one that reaches the largest budget (then: more seeds) speaks for it. A
    method-form is settled only when it is settled on every concept of the study."""
    best: dict[tuple[str, str, str], tuple[int, int, int | None]] = {}
    for (concept, method, form, _dtype), summary in summaries.items():
        key, rank = (concept, method, form), (summary["reach"], len(summary["seeds"]))
        if key not in best or rank > best[key][:2]:
            best[key] = (*rank, summary["enough"])
    concepts = sorted({c for c, _, _ in best})
    out: dict[tuple[str, str], tuple[int | None, str]] = {}
    for method, form in sorted({(m, f) for _, m, f in best}):
        cells = {c: best.get((c, method, form)) for c in concepts}
        open_ = [f"{c} not measured" for c, v in cells.items() if v is None]
        open_ += [f"{c} measured to {v[0]}" for c, v in cells.items() if v is not None and v[2] is None]
        if open_:
            out[(method, form)] = (None, "not settled: " + ", ".join(open_))
            continue
        per_concept = ", ".join(f"{c} {v[2]}" for c, v in cells.items())
        out[(method, form)] = (max(v[2] for v in cells.values()), per_concept)
    return out


def study_budgets(paths: list[str]) -> dict[tuple[str, str], tuple[int | None, str]]:
    """:func:`method_form_budgets` of the result files (what DEFAULT_STEPS must say)."""
    return method_form_budgets({key: summarise(by_steps) for key, by_steps in load_series(paths).items()})


def _sweep(unit: dict) -> dict:
    from steer_pu.analysis.pair_scores import PairScores

    return {float(m): PairScores.from_json(scores) for m, scores in unit["pair_scores"].items()}


def paired_ci(base: list[dict], other: list[dict], n_boot: int = 2000, seed: int = 0) -> tuple[float, float] | None:
    """95 % CI of seed-mean FA(other) − FA(base), resampling the test pairs (the same draw for every
    unit: a paired bootstrap; it holds the pair sampling, not the training seed's spread); None
    without per-pair scores."""
    import numpy as np

    from steer_pu.analysis.frontier import bootstrap_concept_fa

    if not base or not other or not all("pair_scores" in u for u in base + other):
        return None
    sweeps_b, sweeps_o = [_sweep(u) for u in base], [_sweep(u) for u in other]
    n_pairs = next(iter(sweeps_b[0].values())).n_pairs
    idx = np.random.default_rng(seed).integers(n_pairs, size=(n_boot, n_pairs))
    mean_b = np.mean([bootstrap_concept_fa(sw, idx) for sw in sweeps_b], axis=0)
    mean_o = np.mean([bootstrap_concept_fa(sw, idx) for sw in sweeps_o], axis=0)
    lo, hi = np.percentile(mean_o - mean_b, [2.5, 97.5])
    return float(lo), float(hi)


def doubling_half_width(small: list[dict], large: list[dict]) -> float | None:
    """95 % CI half-width of seed-mean FA(large budget) − FA(small budget) (:func:`paired_ci`)."""
    ci = paired_ci(small, large)
    return None if ci is None else (ci[1] - ci[0]) / 2


def ablation_report(args: argparse.Namespace) -> None:
    """Each override against the same unit without it (same concept, method-form, budget, seed and
    dtype): FA, FA− and the paired-bootstrap CI of the difference."""
    import statistics

    rows = [u for path in args.ablations for u in json.loads(Path(path).read_text()).values()]

    def unit_key(u: dict) -> tuple:
        return (u["concept"], u["method"], u["form"], u["steps"], u.get("dtype", "float32"))

    by_seed: dict[tuple, dict[str, dict[int, dict]]] = {}  # one unit per seed (files may repeat one)
    for u in rows:
        label = ", ".join(f"{k}={json.dumps(v)}" for k, v in sorted(u.get("hp", {}).items())) or "default"
        by_seed.setdefault(unit_key(u), {}).setdefault(label, {})[u.get("seed", 0)] = u
    groups = {key: {label: list(units.values()) for label, units in labels.items()} for key, labels in by_seed.items()}
    lines = [
        "| concept | method-form | steps | dtype | training | seeds | FA | FA− | Δ FA vs default [95 % CI] |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for (concept, method, form, steps, dtype), by_label in sorted(groups.items()):
        base = sorted(by_label.get("default", []), key=lambda u: u.get("seed", 0))
        for label, units in sorted(by_label.items(), key=lambda kv: kv[0] != "default"):
            units = sorted(units, key=lambda u: u.get("seed", 0))
            seeds = [u.get("seed", 0) for u in units]
            fa = statistics.mean(u["fa"] for u in units)
            fa_neg = statistics.mean(u["fa_negative"] for u in units)
            delta = "–"
            paired = [b for b in base if b.get("seed", 0) in seeds]
            if label != "default" and len(paired) == len(units):
                ci = paired_ci(paired, units)
                diff = fa - statistics.mean(b["fa"] for b in paired)
                delta = f"{diff:+.3f}" + (f" [{ci[0]:+.3f}, {ci[1]:+.3f}]" if ci else "")
            lines.append(
                f"| {concept} | {method}-{form} | {steps} | {dtype} | {label} | {','.join(map(str, seeds))} | "
                f"{fa:.3f} | {fa_neg:.3f} | {delta} |"
            )
    table = "\n".join(lines)
    print(table)
    if args.markdown:
        Path(args.markdown).write_text(table + "\n")


def report(args: argparse.Namespace) -> None:
    import statistics

    series = load_series(args.report)
    budgets = sorted({s for by_steps in series.values() for s in by_steps})
    header = ["concept", "method", "form", "dtype", "seeds", *(f"FA @ {s}" for s in budgets), "enough (steps)"]
    lines = ["| " + " | ".join(header) + " |", "|---" * len(header) + "|"]
    doublings: list[str] = []
    summaries: dict[SeriesKey, dict] = {}
    for (concept, method, form, dtype), by_steps in sorted(series.items()):
        summary = summaries[(concept, method, form, dtype)] = summarise(by_steps)
        means, losses, seeds = summary["means"], summary["losses"], summary["seeds"]
        cells = []
        for s in budgets:
            if s not in by_steps:
                cells.append("-")
                continue
            spread = [u["fa"] for u in by_steps[s].values()]
            sd = f" ±{statistics.stdev(spread):.3f}" if len(spread) > 1 else ""
            cells.append(f"{means[s]:.3f}{sd} ({losses[s]:.2f})")
        lines.append(
            f"| {concept} | {method} | {form} | {dtype} | {','.join(map(str, seeds))} | "
            + " | ".join(cells)
            + f" | {summary['enough'] or 'not settled'} |"
        )
        doublings += [
            f"- {concept} {method}-{form} ({dtype}), {s} → {t} steps: "
            f"seed-mean Δ FA {summary['gains'][(s, t)]:+.3f}, "
            f"paired-bootstrap 95 % CI half-width {width:.3f}"
            for (s, t), width in sorted(summary["widths"].items())
        ]
    per_method_form = [
        f"- **{method} {form}**: " + (f"{steps} steps (settled on {why})" if steps else why)
        for (method, form), (steps, why) in method_form_budgets(summaries).items()
    ]
    table = "\n".join(
        lines
        + ([""] + doublings if doublings else [])
        + ["", "By the rule, per method-form (the largest budget it settles on over the concepts):", *per_method_form]
    )
    print(table)
    if args.markdown:
        Path(args.markdown).write_text(table + "\n")
    if args.figure:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        concepts = sorted({k[0] for k in series})
        forms = sorted({f"{k[1]}-{k[2]}" for k in series})
        color = {name: f"C{i}" for i, name in enumerate(forms)}  # one colour per method-form in every panel
        fig, axes = plt.subplots(2, len(concepts), figsize=(5 * len(concepts), 7), squeeze=False)
        for col, concept in enumerate(concepts):
            for (c, method, form, dtype), by_steps in sorted(series.items()):
                if c != concept:
                    continue
                xs = sorted(by_steps)
                label = f"{method}-{form}" + ("" if dtype == "float32" else f" ({dtype})")
                style = "-" if dtype == "float32" else "--"
                fa = [[u["fa"] for u in by_steps[s].values()] for s in xs]
                sd = [statistics.stdev(v) if len(v) > 1 else 0.0 for v in fa]
                mean = [statistics.mean(v) for v in fa]
                c = color[f"{method}-{form}"]
                axes[0][col].errorbar(xs, mean, yerr=sd, marker="o", linestyle=style, label=label, capsize=3, color=c)
                loss = [statistics.mean(u["loss_last_epoch"] for u in by_steps[s].values()) for s in xs]
                axes[1][col].plot(xs, loss, marker="o", linestyle=style, color=c)
            for row, label in enumerate(("FA (seed mean ± sd)", "training loss (last epoch)")):
                axes[row][col].set_xscale("log", base=2)
                axes[row][col].set_xticks(budgets, [str(b) for b in budgets])
                axes[row][col].set_xlabel("optimiser steps (batch of 4 pairs)")
                axes[row][col].set_ylabel(label)
            axes[0][col].set_title(concept)
            axes[0][col].legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(args.figure, dpi=110)


def _hp(text: str) -> tuple[str, object]:
    name, _, value = text.partition("=")
    return name, json.loads(value) if value[:1] in "-0123456789[tf" else value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", help="result JSON (resumed if it exists)")
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--suite", default=None, help="suite folder (default: the repo suite)")
    parser.add_argument("--concepts", default="power_seeking,risk_seeking")
    parser.add_argument("--methods", default="split,sft,reps")
    parser.add_argument("--forms", default="vector,lora")
    parser.add_argument("--steps", default="25,50,100,200,400")
    parser.add_argument("--seeds", default="0", help="comma-separated training seeds (the spread between seeds)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--dtype",
        default="float32",
        help="model dtype (bfloat16: ~2.7x faster on a CPU with bf16 matrix units, "
        "tens of times slower on one without)",
    )
    parser.add_argument("--hp", type=_hp, action="append", help="NAME=VALUE hyper-parameter override (repeatable)")
    parser.add_argument("--report", nargs="+", help="result JSON files to tabulate instead of running")
    parser.add_argument("--ablations", nargs="+", help="result JSON files: each --hp override against the default")
    parser.add_argument("--markdown", help="with --report or --ablations: write the table here")
    parser.add_argument("--figure", help="with --report: write the figure here")
    args = parser.parse_args()
    if args.report:
        report(args)
    elif args.ablations:
        ablation_report(args)
    elif args.out:
        run_study(args)
    else:
        parser.error("give --out to run the study or --report to tabulate it")


if __name__ == "__main__":
    main()
