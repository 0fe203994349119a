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
    from steer_pu.engine.encoding import PromptFormat
    from steer_pu.engine.sweep import score_sweep
    from steer_pu.io import atomic_write_json
    from steer_pu.methods import get_method
    from steer_pu.models import load_model
    from steer_pu.paths import default_suite_dir
    from steer_pu.suite.concepts import load_concepts

    torch.set_num_threads(args.threads)
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


def enough_steps(series: dict[int, float], thresholds: dict[int, float] | None = None) -> int | None:
    """The smallest budget S whose doubling raises FA by less than the rule's threshold: RULE, or
    (amended rule) max(RULE, the paired-bootstrap CI half-width of that doubling's difference).

    A fall counts as settled: the rule is "trained until more steps stop helping", and a budget
    past which FA drops (over-fitting 100 training pairs) is not one that needs more steps."""
    for s in sorted(series):
        limit = max(RULE, (thresholds or {}).get(s, 0.0))
        if 2 * s in series and series[2 * s] - series[s] < limit:
            return s
    return None


def form_budgets(settled: dict[tuple[str, str, str, str], tuple[int | None, int, int]]) -> dict[str, str]:
    """The rule's default per form: the largest settled budget over its methods and concepts.

    ``settled`` maps (concept, method, form, dtype) to (enough steps or None, largest budget
    measured, number of seeds). Where one method-form has several series on a concept (float32
    and bfloat16 runs), the one that reaches the largest budget (then: more seeds) speaks for it."""
    best: dict[tuple[str, str, str], tuple[int, int, int | None, str]] = {}
    for (concept, method, form, dtype), (enough, reach, n_seeds) in settled.items():
        key = (concept, method, form)
        if key not in best or (reach, n_seeds) > best[key][:2]:
            best[key] = (reach, n_seeds, enough, dtype)
    out: dict[str, str] = {}
    for form in sorted({k[2] for k in best}):
        cells = {(c, m): v for (c, m, f), v in best.items() if f == form}
        open_ = sorted(f"{m} on {c} (measured to {v[0]})" for (c, m), v in cells.items() if v[2] is None)
        # every method seen in this form, on every concept of the study
        concepts, methods = {c for c, _, _ in best}, {m for (_, m) in cells}
        open_ += sorted(f"{m} on {c} (not measured)" for c in concepts for m in methods if (c, m) not in cells)
        if open_:
            out[form] = "not settled: " + ", ".join(open_)
            continue
        top = max(v[2] for v in cells.values())
        who = sorted(f"{m} on {c}" for (c, m), v in cells.items() if v[2] == top)
        out[form] = f"{top} steps (set by {', '.join(who)}; {len(cells)} method-concept series)"
    return out


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
    """95 % CI half-width of seed-mean FA(2S) − FA(S) (:func:`paired_ci`)."""
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

    rows: dict[str, dict] = {}
    for path in args.report:
        data = json.loads(Path(path).read_text())
        rows.update({f"{path}:{key}": unit for key, unit in data.items()})
    # one series per concept, method-form and dtype; each budget holds its seeds' units
    series: dict[tuple[str, str, str, str], dict[int, dict[int, dict]]] = {}
    for r in rows.values():
        key = (r["concept"], r["method"], r["form"], r.get("dtype", "float32"))
        series.setdefault(key, {}).setdefault(r["steps"], {})[r.get("seed", 0)] = r
    budgets = sorted({r["steps"] for r in rows.values()})
    header = ["concept", "method", "form", "dtype", "seeds", *(f"FA @ {s}" for s in budgets), "enough (steps)"]
    lines = ["| " + " | ".join(header) + " |", "|---" * len(header) + "|"]
    doublings: list[str] = []
    settled_by_series: dict[tuple[str, str, str, str], tuple[int | None, int, int]] = {}
    for (concept, method, form, dtype), by_steps in sorted(series.items()):
        means = {s: statistics.mean(u["fa"] for u in units.values()) for s, units in by_steps.items()}
        losses = {s: statistics.mean(u["loss_last_epoch"] for u in units.values()) for s, units in by_steps.items()}
        widths = {}
        for s in by_steps:
            if 2 * s in by_steps:
                common = sorted(set(by_steps[s]) & set(by_steps[2 * s]))
                width = doubling_half_width([by_steps[s][k] for k in common], [by_steps[2 * s][k] for k in common])
                if width is not None:
                    widths[s] = width
        cells = []
        for s in budgets:
            if s not in by_steps:
                cells.append("-")
                continue
            spread = [u["fa"] for u in by_steps[s].values()]
            sd = f" ±{statistics.stdev(spread):.3f}" if len(spread) > 1 else ""
            cells.append(f"{means[s]:.3f}{sd} ({losses[s]:.2f})")
        seeds = sorted({k for units in by_steps.values() for k in units})
        settled = enough_steps(means, widths)
        settled_by_series[(concept, method, form, dtype)] = (settled, max(by_steps), len(seeds))
        lines.append(
            f"| {concept} | {method} | {form} | {dtype} | {','.join(map(str, seeds))} | "
            + " | ".join(cells)
            + f" | {settled or 'not settled'} |"
        )
        doublings += [
            f"- {concept} {method}-{form} ({dtype}), {s} → {2 * s} steps: "
            f"seed-mean Δ FA {means[2 * s] - means[s]:+.3f}, "
            f"paired-bootstrap 95 % CI half-width {width:.3f}"
            for s, width in sorted(widths.items())
        ]
    per_form = [f"- **{form}**: {text}" for form, text in form_budgets(settled_by_series).items()]
    table = "\n".join(
        lines
        + ([""] + doublings if doublings else [])
        + ["", "By the rule, per form (every method, every concept):", *per_form]
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
    parser.add_argument("--dtype", default="float32", help="model dtype (bfloat16: ~2.7x faster on a bf16-capable CPU)")
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
