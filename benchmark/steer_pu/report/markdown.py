"""report markdown."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from steer_pu.analysis import curves as rq
from steer_pu.analysis.frontier import summarise
from steer_pu.errors import SteerPuError
from steer_pu.io import atomic_write_bytes, atomic_write_text, display_path
from steer_pu.report.claims import (
    FrontierRow,
    OverallRow,
    SplitComparison,
    TextTrend,
    claims_text,
    frontier_rows,
    overall_rows,
    split_comparisons,
    text_claim,
    text_trends,
)
from steer_pu.report.collect import Collection, load_collection
from steer_pu.report.fits import FitResult, fit_collection

# --------------------------------------------------------------------------- Markdown


def _f(x: float | None, digits: int = 3) -> str:
    return "–" if x is None or (isinstance(x, float) and not math.isfinite(x)) else f"{x:.{digits}f}"


def _table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(out) + "\n"


def r2_table(fits: Sequence[FitResult]) -> str:
    """Table 2 of the paper in shape: rows method × form, mean R² of each curve over concepts."""
    rows = []
    for mf in sorted({(f.method, f.form) for f in fits}):
        sub = [f for f in fits if (f.method, f.form) == mf]
        cells = [mf[0], mf[1]]
        for name in ("pref", "util"):
            r2 = [getattr(f, name).r2 for f in sub if getattr(f, name) is not None]
            cells.append(f"{np.mean(r2):.3f} ({len(r2)}/{len(sub)})" if r2 else f"– (0/{len(sub)})")
        rows.append(cells)
    return _table(["method", "form", "PrefOdds R² (fitted/sweeps)", "UtilOdds R² (fitted/sweeps)"], rows)


def text_section(collection: Collection, trends: Sequence[TextTrend]) -> str:
    """The generations' statistics at m = 0 and at the largest positive strength, with ρ(u, fluency)."""
    rows = []
    by_key = {(t.concept, t.method, t.form): t for t in trends}
    for sweep in collection.sweeps:
        if not sweep.text:
            continue
        top = max(sweep.text)
        stats = sweep.text

        def at(m: float, key: str, stats=stats) -> float | None:
            return stats.get(m, {}).get(key)

        trend = by_key[(sweep.concept, sweep.method, sweep.form)]
        rows.append([
            sweep.concept, sweep.method_form, f"{top:g}", _f(trend.rho, 2),
            f"{_f(at(0.0, 'fluency_nll'), 2)} → {_f(at(top, 'fluency_nll'), 2)}",
            f"{_f(at(0.0, 'repetition'), 2)} → {_f(at(top, 'repetition'), 2)}",
            f"{_f(at(0.0, 'distinct2'), 2)} → {_f(at(top, 'distinct2'), 2)}",
            f"{_f(at(0.0, 'keyword_hit'), 2)} → {_f(at(top, 'keyword_hit'), 2)}",
        ])  # fmt: skip
    return "\n".join([
        "## Generated text (judge-free proxies)\n",
        "Greedy continuations of the run's K seeded test prompts per concept (`run --generate K`), from m = 0 to "
        "the largest strength: fluency = the unsteered model's mean per-token NLL of the text, rep-3 = share of "
        "repeated word 3-grams, dist-2 = distinct word bigrams, keyword = share of continuations with one of the "
        "card's keywords (topic concepts only). Proxies, not judgements: read the texts in the run's "
        "`generations/` folder or the leaderboard. ρ = Spearman ρ(u, fluency) over strengths.\n",
        _table(["concept", "method-form", "top m", "ρ(u, fluency)", "fluency NLL", "rep-3", "dist-2", "keyword"], rows),
    ])  # fmt: skip


def render_markdown(
    collection: Collection,
    fits: Sequence[FitResult],
    frontier: Sequence[FrontierRow],
    overall: Sequence[OverallRow],
    comparisons: Sequence[SplitComparison],
    figures: Mapping[str, str],
) -> str:
    """The report's README.md. ``figures`` maps a concept (or "overall") to its PNG file name."""
    trends = text_trends(collection)
    parts = [
        f"# steer-pu report: {collection.model}\n",
        f"{len(collection.runs)} run(s), {len(collection.method_forms)} method-form(s), "
        f"{len(collection.concepts)} concept(s). Definitions: docs/metrics.md in the steer-pu repository "
        '("Reading a report").\n',
        "## Runs\n",
        _table(
            ["run", "method-form", "layer", "strengths", "concepts scored", "not scored yet"],
            [
                [
                    f"`{display_path(r.path)}`",
                    r.method_form,
                    "–" if r.layer is None else str(r.layer),
                    " ".join(f"{m:g}" for m in r.strengths),
                    ", ".join(r.scored) or "–",
                    ", ".join(r.unscored) or "–",
                ]
                for r in collection.runs
            ],
        ),  # fmt: skip
        "Per-strength means of every sweep (m, PrefOdds, UtilOdds, p, u): [points.csv](points.csv).\n",
        "## Claims check\n",
        "Worded automatically from the numbers below; thresholds are part of each statement.\n",
        claims_text(fits, comparisons),
        *([text_claim(trends)] if trends else []),
        "## Frontier area\n",
        f"Suite score per method-form: mean FA over its concepts, 95 % percentile bootstrap CI over test "
        f"pairs ({overall[0].suite.n_boot if overall else 0} resamples, "
        f"seed {overall[0].suite.seed if overall else 0}). "
        "FA− is the negative direction (only when every concept has m < 0).\n",
        _table(
            ["method", "form", "concepts", "mean FA", "95 % CI", "mean FA gain", "mean FA−"],
            [
                [
                    o.method,
                    o.form,
                    str(len(o.suite.per_concept)),
                    _f(o.suite.mean_fa),
                    f"[{_f(o.suite.ci_low)}, {_f(o.suite.ci_high)}]",
                    _f(o.mean_fa_gain),
                    _f(o.mean_fa_negative),
                ]
                for o in overall
            ],
        ),  # fmt: skip
    ]
    if "overall" in figures:
        parts.append(f"![mean FA per method-form with 95 % CI]({figures['overall']})\n")
    parts += [
        "### Per concept\n",
        _table(
            ["concept", "method", "form", "p(0)", "FA", "FA gain", "FA−"],
            [
                [
                    r.concept,
                    r.method,
                    r.form,
                    _f(r.scores.base_p),
                    _f(r.scores.fa),
                    _f(r.scores.fa_gain),
                    _f(r.scores.fa_negative),
                ]
                for r in frontier
            ],
        ),  # fmt: skip
        "## Curve fits (Table 2 shape)\n",
        f"Mean R² over concepts of the RQ fits (Xu et al. 2026, Eqs. 15, 17); in brackets fitted sweeps / all sweeps. "
        f"A fit needs ≥ {rq.PREF_PARAMS} (PrefOdds) / ≥ {rq.UTIL_PARAMS} (UtilOdds) distinct strengths, some negative "
        "and some positive; R² from a fit with only a few strengths more than that is weak evidence.\n",
        r2_table(fits),
        "### Per concept\n",
        _table(
            [
                "concept",
                "method-form",
                "n",
                "PrefOdds R²",
                "α",
                "β",
                "b",
                "m½ (pref)",
                "UtilOdds R²",
                "β_u",
                "b_u",
                "m½ (util)",
                "not fitted because",
            ],
            [
                [
                    f.concept,
                    f.method_form,
                    str(len(f.m)),
                    _f(f.pref.r2) if f.pref else "–",
                    _f(f.pref.alpha) if f.pref else "–",
                    _f(f.pref.beta) if f.pref else "–",
                    _f(f.pref.b) if f.pref else "–",
                    _f(f.pref.breakdown_strength, 2) if f.pref else "–",
                    _f(f.util.r2) if f.util else "–",
                    _f(f.util.beta, 2) if f.util else "–",
                    _f(f.util.b, 2) if f.util else "–",
                    _f(f.util.breakdown_strength, 2) if f.util else "–",
                    "; ".join(f"{n}: {r}" for n, r in (("PrefOdds", f.pref_reason), ("UtilOdds", f.util_reason)) if r)
                    or "–",
                ]
                for f in fits
            ],
        ),  # fmt: skip
        *([text_section(collection, trends)] if trends else []),
        "## Figures per concept\n",
        "Left: (u, p) points of every method-form and their staircase frontiers (the area under a "
        "staircase is its FA); hollow markers are m < 0, the star is the unsteered model. Middle and right: "
        "mean PrefOdds and UtilOdds against m, with the fitted RQ curves where a fit exists.\n",
    ]
    for concept in collection.concepts:
        if concept in figures:
            parts.append(f"### {concept}\n\n![{concept}]({figures[concept]})\n")
    return "\n".join(parts)


# --------------------------------------------------------------------------- whole report


@dataclass(frozen=True)
class Report:
    collection: Collection
    fits: list[FitResult]
    frontier: list[FrontierRow]
    overall: list[OverallRow]
    comparisons: list[SplitComparison]


def build_report(paths: Sequence[Path], n_boot: int = 1000, seed: int = 0) -> Report:
    collection = load_collection(paths)
    return Report(
        collection,
        fit_collection(collection),
        frontier_rows(collection),
        overall_rows(collection, n_boot, seed),
        split_comparisons(collection, n_boot, seed),
    )


def points_csv(collection: Collection) -> str:
    """Every sweep's per-strength means (m, PrefOdds, UtilOdds, p, u, n), as ``results.csv`` has them."""
    import pandas as pd

    rows = [
        {"concept": s.concept, "method": s.method, "form": s.form, **row, **s.text.get(row["m"], {})}
        for s in collection.sweeps
        for row in summarise(dict(s.scores))
    ]
    return pd.DataFrame(rows).to_csv(index=False, float_format="%.6f")


def write_report(report: Report, out: Path) -> list[Path]:
    """Write ``out/README.md`` and the figures; everything is drawn before anything is written."""
    from steer_pu.report.figures import concept_figure, overall_figure

    if out.exists() and not out.is_dir():
        raise SteerPuError(f"{out}: exists and is not a directory (--out)")
    files: dict[str, bytes] = {}
    figures: dict[str, str] = {}
    for concept in report.collection.concepts:
        name = f"concept-{concept}.png"
        sweeps = [s for s in report.collection.sweeps if s.concept == concept]
        fits = [f for f in report.fits if f.concept == concept]
        files[name] = concept_figure(concept, sweeps, fits)
        figures[concept] = name
    if report.overall:
        files["overall.png"] = overall_figure(report.overall)
        figures["overall"] = "overall.png"
    text = render_markdown(report.collection, report.fits, report.frontier, report.overall, report.comparisons, figures)
    files["points.csv"] = points_csv(report.collection).encode("utf-8")
    written = []
    for name, data in files.items():
        atomic_write_bytes(out / name, data)
        written.append(out / name)
    atomic_write_text(out / "README.md", text)
    written.append(out / "README.md")
    return written
