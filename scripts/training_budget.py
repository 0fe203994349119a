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

RULE = 0.01  # a budget is enough when doubling it moves FA by less than this


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
    loaded = load_model(args.model)
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
        # seed 0 keeps the keys of the first study's files
        key = f"{concept.name}/{name}-{form}/{steps}" + (f"/seed{seed}" if seed else "")
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
        }
        atomic_write_json(out, results)
        print(f"{key}: FA {scores.fa:.4f} FA- {scores.fa_negative:.4f} "
                          f"loss {method.last_loss_history[-1]:.4f} fit {fit_s:.0f}s", flush=True)  # fmt: skip


def enough_steps(series: dict[int, float]) -> int | None:
    """The smallest budget S with |FA(2S) − FA(S)| < RULE (None if no doubling in the data settles)."""
    for s in sorted(series):
        if 2 * s in series and abs(series[2 * s] - series[s]) < RULE:
            return s
    return None


def report(args: argparse.Namespace) -> None:
    rows: dict[str, dict] = {}
    for path in args.report:
        rows.update(json.loads(Path(path).read_text()))
    series: dict[tuple[str, str, str], dict[int, dict]] = {}
    for r in rows.values():
        if r.get("seed", 0) == 0:  # the table is of seed 0; other seeds measure the spread
            series.setdefault((r["concept"], r["method"], r["form"]), {})[r["steps"]] = r
    budgets = sorted({r["steps"] for r in rows.values()})
    lines = [
        "| concept | method | form | " + " | ".join(f"FA @ {s}" for s in budgets) + " | enough (steps) |",
        "|---" * (4 + len(budgets)) + "|",
    ]
    for (concept, method, form), by_steps in sorted(series.items()):
        cells = [f"{by_steps[s]['fa']:.3f} ({by_steps[s]['loss_last_epoch']:.2f})" if s in by_steps else "-"
                 for s in budgets]  # fmt: skip
        settled = enough_steps({s: r["fa"] for s, r in by_steps.items()})
        lines.append(f"| {concept} | {method} | {form} | " + " | ".join(cells) + f" | {settled or 'not settled'} |")
    table = "\n".join(lines)
    print(table)
    if args.markdown:
        Path(args.markdown).write_text(table + "\n")
    if args.figure:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        concepts = sorted({k[0] for k in series})
        fig, axes = plt.subplots(2, len(concepts), figsize=(5 * len(concepts), 7), squeeze=False)
        for col, concept in enumerate(concepts):
            for (c, method, form), by_steps in sorted(series.items()):
                if c != concept:
                    continue
                xs = sorted(by_steps)
                axes[0][col].plot(xs, [by_steps[s]["fa"] for s in xs], marker="o", label=f"{method}-{form}")
                axes[1][col].plot(xs, [by_steps[s]["loss_last_epoch"] for s in xs], marker="o")
            for row, label in enumerate(("FA", "training loss (last epoch)")):
                axes[row][col].set_xscale("log", base=2)
                axes[row][col].set_xticks(budgets, [str(b) for b in budgets])
                axes[row][col].set_xlabel("optimiser steps (batch of 4 pairs)")
                axes[row][col].set_ylabel(label)
            axes[0][col].set_title(concept)
        axes[0][0].legend(fontsize=8)
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
    parser.add_argument("--hp", type=_hp, action="append", help="NAME=VALUE hyper-parameter override (repeatable)")
    parser.add_argument("--report", nargs="+", help="result JSON files to tabulate instead of running")
    parser.add_argument("--markdown", help="with --report: write the table here")
    parser.add_argument("--figure", help="with --report: write the figure here")
    args = parser.parse_args()
    if args.report:
        report(args)
    elif args.out:
        run_study(args)
    else:
        parser.error("give --out to run the study or --report to tabulate it")


if __name__ == "__main__":
    main()
