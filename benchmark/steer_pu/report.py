"""Compare runs: curve fits, frontier areas and a claims check against the paper, as Markdown.

A run directory (see :mod:`steer_pu.run`) holds one method-form swept over some concepts.
This module gathers several runs (``RUN_DIR`` arguments, or folders below them that hold a
``run.json``), and computes from their score files — with :mod:`steer_pu.frontier` and
:mod:`steer_pu.fit`, never a formula of its own —

- per concept and method-form: the RQ curve fits of PrefOdds(m) and UtilOdds(m), or why
  a sweep cannot be fitted;
- FA, FA gain and FA− per concept, and the suite score (mean FA, bootstrap CI) per method-form;
- a claims check of Xu et al. 2026: (1) preference rises and utility falls with |m|,
  (2) the RQ model fits with R² ≥ 0.95, (3) SPLIT's FA against SFT, RePS and DiffMean per form.

:func:`write_report` writes ``README.md`` and the PNG figures of :mod:`steer_pu.plots`.
See docs/metrics.md ("Reading a report").
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy.stats import spearmanr

from . import fit as rq
from .errors import SteerPuError
from .frontier import ConceptScores, SuiteScore, bootstrap_concept_fa, concept_scores, suite_score
from .io import atomic_write_bytes, atomic_write_text, display_path
from .methods import get_method
from .pair_scores import PairScores
from .run import RUN_FILE, RunConfig, load_scores, read_run_file, summarise

# Claims-check thresholds (stated in the report next to every verdict).
R2_MIN = 0.95  # the paper's "R² mostly ≥ 0.95" (Table 2)
RHO_MIN = 0.5  # |Spearman ρ| a sweep needs for "rises" / "falls"
MIN_TREND_POINTS = 3  # strengths a Spearman trend needs
MIN_SPARE_POINTS = 3  # strengths beyond the free parameters for an R² worth quoting
COMPARED_FORMS = ("vector", "lora", "local_weight")
SPLIT_BASELINES = ("sft", "reps", "diffmean")


# --------------------------------------------------------------------------- loading


@dataclass(frozen=True)
class RunInfo:
    """One run directory: its config, and which of its concepts have score files."""

    path: Path
    config: RunConfig
    scored: tuple[str, ...]
    unscored: tuple[str, ...]

    @property
    def method_form(self) -> str:
        return f"{self.config.method}-{self.config.form}"


@dataclass(frozen=True)
class Sweep:
    """One concept swept by one method-form: strength m → per-pair scores."""

    concept: str
    method: str
    form: str
    run_dir: Path
    scores: Mapping[float, PairScores]

    @property
    def method_form(self) -> str:
        return f"{self.method}-{self.form}"

    @property
    def strengths(self) -> list[float]:
        return sorted(self.scores)


@dataclass(frozen=True)
class Collection:
    """Every sweep of the runs being compared, sorted by (concept, method, form)."""

    runs: tuple[RunInfo, ...]
    sweeps: tuple[Sweep, ...]

    @property
    def model(self) -> str:
        return self.runs[0].config.model

    @property
    def concepts(self) -> list[str]:
        return sorted({s.concept for s in self.sweeps})

    @property
    def method_forms(self) -> list[tuple[str, str]]:
        return sorted({(s.method, s.form) for s in self.sweeps})

    def get(self, concept: str, method: str, form: str) -> Sweep | None:
        return next((s for s in self.sweeps if (s.concept, s.method, s.form) == (concept, method, form)), None)


def find_run_dirs(paths: Iterable[Path]) -> list[Path]:
    """Every directory that is, or lies below, one of ``paths`` and holds a ``run.json``."""
    found: set[Path] = set()
    for path in paths:
        if not path.is_dir():
            raise SteerPuError(f"{path}: not a directory (expected a run directory or a folder of runs)")
        below = {p.parent.resolve() for p in path.rglob(RUN_FILE) if p.is_file()}
        if not below:
            raise SteerPuError(f"{path}: no run directory found (no {RUN_FILE} in it or below it)")
        found |= below
    return sorted(found)


def _read_sweep(folder: Path, concept: str, run_dir: Path, method_form: str) -> dict[float, PairScores]:
    try:
        return load_scores(run_dir, concept, method_form)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        # Name the file at fault: re-read one by one until the broken one turns up.
        for path in sorted(folder.glob("m=*.json")):
            try:
                data = json.loads(path.read_text())
                float(data["strength"])
                PairScores.from_json(data)
            except (OSError, UnicodeDecodeError, json.JSONDecodeError) as file_exc:
                raise SteerPuError(f"{path}: not readable JSON ({file_exc})") from None
            except KeyError as file_exc:
                raise SteerPuError(f"{path}: field {file_exc} missing") from None
            except (TypeError, ValueError) as file_exc:
                raise SteerPuError(f"{path}: bad score values ({file_exc})") from None
        raise SteerPuError(f"{folder}: score files not readable ({exc})") from None


def load_collection(paths: Sequence[Path]) -> Collection:
    """Load every run under ``paths``; a user-caused problem raises :class:`SteerPuError`.

    Refused: runs of different models or of different task data (by the concept hashes in
    ``run.json``), the same (concept, method, form) in two runs, a sweep without the
    unsteered strength m = 0, and no score files at all.
    """
    runs: list[RunInfo] = []
    sweeps: dict[tuple[str, str, str], Sweep] = {}
    task_sha: dict[str, tuple[str, Path]] = {}
    for run_dir in find_run_dirs(paths):
        record = read_run_file(run_dir)
        config, shas = record.config, record.concept_sha256
        # Methods are compared pair by pair: every run must have scored the same task data.
        for concept, sha in shas.items():
            first = task_sha.setdefault(concept, (sha, run_dir))
            if first[0] != sha:
                raise SteerPuError(
                    f"{run_dir / RUN_FILE}: field 'provenance.concepts.{concept}.sha256' differs from "
                    f"{first[1] / RUN_FILE}: the runs scored different versions of concept '{concept}'"
                )
        method_form = f"{config.method}-{config.form}"
        scored, unscored = [], []
        for concept in config.concepts:
            folder = run_dir / "scores" / concept / method_form
            scores = _read_sweep(folder, concept, run_dir, method_form) if folder.is_dir() else {}
            if not scores:
                unscored.append(concept)
                continue
            if 0.0 not in scores:
                raise SteerPuError(
                    f"{folder}: no score file for m = 0 (the unsteered model); finish the run "
                    "(steer-pu run resumes) before reporting it"
                )
            try:
                concept_scores(scores)  # pair counts agree across strengths, u and p valid
            except ValueError as exc:
                raise SteerPuError(f"{folder}: {exc}") from None
            key = (concept, config.method, config.form)
            if key in sweeps:
                raise SteerPuError(
                    f"{run_dir / RUN_FILE}: {method_form} on concept '{concept}' is also in "
                    f"{sweeps[key].run_dir}; pass only one of the two runs"
                )
            sweeps[key] = Sweep(concept, config.method, config.form, run_dir, scores)
            scored.append(concept)
        runs.append(RunInfo(run_dir, config, tuple(scored), tuple(unscored)))
    models = sorted({r.config.model for r in runs})
    if len(models) > 1:
        by_model = "; ".join(f"{m}: {', '.join(str(r.path) for r in runs if r.config.model == m)}" for m in models)
        raise SteerPuError(f"runs use different models (field 'config.model' in {RUN_FILE}) — {by_model}")
    if not sweeps:
        raise SteerPuError(f"{', '.join(str(r.path) for r in runs)}: no score files yet (scores/<concept>/<method>-<form>/m=*.json)")
    return Collection(tuple(runs), tuple(sweeps[k] for k in sorted(sweeps)))


# --------------------------------------------------------------------------- curve fits


@dataclass(frozen=True)
class FitResult:
    """Both RQ fits of one sweep; a curve that cannot be fitted has ``None`` and a reason."""

    concept: str
    method: str
    form: str
    m: tuple[float, ...]
    pref_means: tuple[float, ...]
    util_means: tuple[float, ...]
    pref: rq.PrefFit | None
    util: rq.UtilFit | None
    pref_reason: str | None
    util_reason: str | None

    @property
    def method_form(self) -> str:
        return f"{self.method}-{self.form}"


def _try_fit(fitter, m: np.ndarray, y: np.ndarray) -> tuple[Any, str | None]:
    try:
        return fitter(m, y), None
    except (ValueError, RuntimeError) as exc:
        return None, str(exc).split(": ", 1)[-1]  # drop the function-name prefix


def fit_one(sweep: Sweep) -> FitResult:
    """Fit PrefOdds(m) and UtilOdds(m) of a sweep separately (one may fit where the other cannot)."""
    m, pref, util = rq.sweep_means(sweep.scores)
    pref_fit, pref_reason = _try_fit(rq.fit_pref_odds, m, pref)
    util_fit, util_reason = _try_fit(rq.fit_util_odds, m, util)
    return FitResult(
        sweep.concept, sweep.method, sweep.form, tuple(m.tolist()), tuple(pref.tolist()), tuple(util.tolist()),
        pref_fit, util_fit, pref_reason, util_reason,
    )  # fmt: skip


def fit_collection(collection: Collection) -> list[FitResult]:
    return [fit_one(s) for s in collection.sweeps]


def fit_record(r: FitResult) -> dict[str, Any]:
    """A flat record of one sweep's fits (for CSV / JSON); empty fields where not fitted."""
    rec: dict[str, Any] = {
        "concept": r.concept, "method": r.method, "form": r.form, "n_points": len(r.m),
        "strengths": " ".join(f"{x:g}" for x in r.m),
    }  # fmt: skip
    for name, f, reason in (("pref", r.pref, r.pref_reason), ("util", r.util, r.util_reason)):
        rec[f"{name}_fitted"] = f is not None
        rec[f"{name}_r2"] = f.r2 if f else None
        if name == "pref":
            rec["pref_alpha"] = f.alpha if f else None
        rec[f"{name}_beta"] = f.beta if f else None
        rec[f"{name}_b"] = f.b if f else None
        for key in ("m_pos", "l_pos", "p_pos", "m_neg", "l_neg", "p_neg"):
            rec[f"{name}_{key}"] = getattr(f.decay, key) if f else None
        rec[f"{name}_breakdown"] = f.breakdown_strength if f else None
        rec[f"{name}_reason"] = reason
    return rec


def _json_safe(value: Any) -> Any:
    return None if isinstance(value, float) and not math.isfinite(value) else value


def fits_json(results: Sequence[FitResult]) -> str:
    rows = [{k: _json_safe(v) for k, v in fit_record(r).items()} for r in results]
    return json.dumps(rows, indent=2, allow_nan=False) + "\n"


def fits_csv(results: Sequence[FitResult]) -> str:
    import pandas as pd

    return pd.DataFrame([fit_record(r) for r in results]).to_csv(index=False, float_format="%.6g")


# --------------------------------------------------------------------------- frontier


@dataclass(frozen=True)
class FrontierRow:
    concept: str
    method: str
    form: str
    scores: ConceptScores


@dataclass(frozen=True)
class OverallRow:
    """Suite score of one method-form over the concepts it was run on."""

    method: str
    form: str
    suite: SuiteScore
    mean_fa_gain: float
    mean_fa_negative: float | None  # None unless every concept has m < 0


def frontier_rows(collection: Collection) -> list[FrontierRow]:
    return [FrontierRow(s.concept, s.method, s.form, concept_scores(s.scores)) for s in collection.sweeps]


def overall_rows(collection: Collection, n_boot: int = 1000, seed: int = 0) -> list[OverallRow]:
    out = []
    for method, form in collection.method_forms:
        sweeps = {s.concept: s.scores for s in collection.sweeps if (s.method, s.form) == (method, form)}
        suite = suite_score(sweeps, n_boot=n_boot, seed=seed)
        per = list(suite.per_concept.values())
        negs = [c.fa_negative for c in per]
        out.append(
            OverallRow(
                method, form, suite, float(np.mean([c.fa_gain for c in per])),
                None if any(v is None for v in negs) else float(np.mean(negs)),
            )  # fmt: skip
        )
    return out


# --------------------------------------------------------------------------- claims


@dataclass(frozen=True)
class TradeOff:
    """Claim (1) on one sweep: Spearman ρ of mean PrefOdds vs m (m ≥ 0) and of UtilOdds vs |m|.

    ``holds`` is None when the sweep has too few strengths to tell.
    """

    concept: str
    method: str
    form: str
    rho_pref: float | None
    rho_util: float | None
    holds: bool | None


def _spearman(x: Sequence[float], y: Sequence[float]) -> float | None:
    if len(x) < MIN_TREND_POINTS:
        return None
    if np.ptp(y) == 0 or np.ptp(x) == 0:
        return 0.0  # a flat curve neither rises nor falls
    return float(spearmanr(x, y).statistic)


def trade_off(fit: FitResult) -> TradeOff:
    m = np.array(fit.m)
    keep = m >= 0  # the unsteered point anchors the positive direction
    rho_pref = _spearman(m[keep].tolist(), np.array(fit.pref_means)[keep].tolist())
    rho_util = _spearman(np.abs(m).tolist(), list(fit.util_means))
    holds = None if rho_pref is None or rho_util is None else (rho_pref >= RHO_MIN and rho_util <= -RHO_MIN)
    return TradeOff(fit.concept, fit.method, fit.form, rho_pref, rho_util, holds)


@dataclass(frozen=True)
class SplitComparison:
    """Claim (3) in one form: SPLIT's FA against one baseline on the concepts both ran.

    ``missing`` names the method-forms not in the runs (then no numbers). ``diff_ci`` is a
    paired percentile bootstrap of mean(FA_split − FA_other), the same resampled test pairs
    for both methods; None when the two sweeps of a concept differ in pair count.
    """

    form: str
    other: str
    missing: tuple[str, ...]
    concepts: tuple[str, ...]
    split_fa: float | None
    other_fa: float | None
    wins: int
    diff_ci: tuple[float, float] | None


def _paired_diff_ci(pairs: list[tuple[Sweep, Sweep]], n_boot: int, seed: int) -> tuple[float, float] | None:
    rng = np.random.default_rng(seed)
    diff = np.zeros(n_boot)
    for a, b in pairs:
        n = a.scores[0.0].n_pairs
        if b.scores[0.0].n_pairs != n:
            return None
        idx = rng.integers(0, n, size=(n_boot, n))
        diff += bootstrap_concept_fa(a.scores, idx) - bootstrap_concept_fa(b.scores, idx)
    diff /= len(pairs)
    low, high = np.percentile(diff, [2.5, 97.5])
    return float(low), float(high)


def split_comparisons(collection: Collection, n_boot: int = 1000, seed: int = 0) -> list[SplitComparison]:
    out = []
    have = set(collection.method_forms)
    for form in COMPARED_FORMS:
        for other in SPLIT_BASELINES:
            if form not in get_method(other).forms:
                continue  # DiffMean is a vector and nothing else
            missing = tuple(f"{m}-{form}" for m in ("split", other) if (m, form) not in have)
            pairs = [
                (a, b)
                for c in collection.concepts
                if (a := collection.get(c, "split", form)) is not None and (b := collection.get(c, other, form)) is not None
            ]
            if missing or not pairs:
                out.append(SplitComparison(form, other, missing, (), None, None, 0, None))
                continue
            fa_a = [concept_scores(a.scores).fa for a, _ in pairs]
            fa_b = [concept_scores(b.scores).fa for _, b in pairs]
            out.append(
                SplitComparison(
                    form, other, (), tuple(a.concept for a, _ in pairs), float(np.mean(fa_a)), float(np.mean(fa_b)),
                    sum(x > y for x, y in zip(fa_a, fa_b)), _paired_diff_ci(pairs, n_boot, seed),
                )  # fmt: skip
            )
    return out


def _verdict(k: int, n: int) -> str:
    if n == 0:
        return "cannot be checked"
    if k == n:
        return "holds"
    if k == 0:
        return "does not hold"
    return "holds in most sweeps" if k > n / 2 else "does not hold in most sweeps"


def claims_text(fits: Sequence[FitResult], comparisons: Sequence[SplitComparison]) -> str:
    """The worded claims check (Markdown), derived only from the numbers passed in."""
    lines: list[str] = []
    trades = [trade_off(f) for f in fits]
    checked = [t for t in trades if t.holds is not None]
    k = sum(bool(t.holds) for t in checked)
    lines.append(f"### (1) Preference rises and utility falls with |m| — {_verdict(k, len(checked)).upper()}\n")
    lines.append(
        f"A sweep shows the trade-off when Spearman ρ of mean PrefOdds against m over m ≥ 0 is ≥ {RHO_MIN} "
        f"and ρ of mean UtilOdds against |m| over all strengths is ≤ −{RHO_MIN} (at least {MIN_TREND_POINTS} "
        f"strengths each). It shows in **{k} of {len(checked)}** sweeps that can be checked."
    )
    if len(checked) < len(trades):
        skipped = ", ".join(f"{t.concept}/{t.method}-{t.form}" for t in trades if t.holds is None)
        lines.append(f" Too few strengths to check: {skipped}.")
    lines.append("\n")
    for mf in sorted({(t.method, t.form) for t in checked}):
        sub = [t for t in checked if (t.method, t.form) == mf]
        pref_up = sum(t.rho_pref is not None and t.rho_pref >= RHO_MIN for t in sub)
        util_down = sum(t.rho_util is not None and t.rho_util <= -RHO_MIN for t in sub)
        lines.append(
            f"- {mf[0]}-{mf[1]}: trade-off in {sum(bool(t.holds) for t in sub)}/{len(sub)} concepts "
            f"(preference rises in {pref_up}, utility falls in {util_down}); "
            f"median ρ_pref = {np.median([t.rho_pref for t in sub]):+.2f}, "
            f"median ρ_util = {np.median([t.rho_util for t in sub]):+.2f}"
        )
    fails = [t for t in checked if not t.holds]
    if fails:
        lines.append("\nWhere it does not hold: " + ", ".join(
            f"{t.concept}/{t.method}-{t.form} (ρ_pref {t.rho_pref:+.2f}, ρ_util {t.rho_util:+.2f})" for t in fails
        ) + ".")  # fmt: skip
    lines.append("")

    lines.append(f"### (2) The RQ model fits with R² ≥ {R2_MIN}\n")
    for name, label, n_free in (("pref", "PrefOdds", rq.PREF_PARAMS - 1), ("util", "UtilOdds", rq.UTIL_PARAMS - 1)):
        fitted = [f for f in fits if getattr(f, name) is not None]
        r2 = [getattr(f, name).r2 for f in fitted]
        good = sum(v >= R2_MIN for v in r2 if math.isfinite(v))
        not_fitted = len(fits) - len(r2)
        tail = f"; {not_fitted} sweep(s) could not be fitted (see the fit table)" if not_fitted else ""
        if not r2:
            lines.append(
                f"- {label}: **cannot be checked** — none of the {len(fits)} sweep(s) could be fitted (see the fit table)."
            )
            continue
        # With few strengths beyond the free parameters any curve fits; say so next to the number.
        tight = sum(len(f.m) - n_free < MIN_SPARE_POINTS for f in fitted)
        caveat = (
            f"; {tight} of these fits have fewer than {MIN_SPARE_POINTS} strengths more than the {n_free} free "
            "parameters, so their R² says little" if tight else ""
        )
        lines.append(
            f"- {label}: **{_verdict(good, len(r2)).replace('sweeps', 'fits')}** — {good} of {len(r2)} fits reach "
            f"R² ≥ {R2_MIN}, median R² = {np.median(r2):.3f}, lowest {min(r2):.3f}{caveat}{tail}."
        )
    lines.append("")

    lines.append("### (3) SPLIT's frontier area against SFT, RePS and DiffMean\n")
    lines.append("DiffMean has a vector form only; SFT and RePS are compared in every form.\n")
    for form in COMPARED_FORMS:
        for c in (c for c in comparisons if c.form == form):
            if c.missing:
                lines.append(f"- {form}, SPLIT vs {c.other}: **not measured** — {', '.join(c.missing)} not in the runs.")
                continue
            if c.split_fa is None:
                lines.append(f"- {form}, SPLIT vs {c.other}: **not measured** — the two runs share no concept.")
                continue
            n = len(c.concepts)
            if c.diff_ci is None:
                word, ci = "not tested (pair counts differ)", ""
            else:
                lo, hi = c.diff_ci
                word = "higher" if lo > 0 else "lower" if hi < 0 else "not distinguishable"
                ci = f", 95 % CI of the difference [{lo:+.3f}, {hi:+.3f}]"
            lines.append(
                f"- {form}, SPLIT vs {c.other}: SPLIT's FA is **{word}** — mean FA {c.split_fa:.3f} vs "
                f"{c.other_fa:.3f} over {n} concept(s){ci}; SPLIT higher in {c.wins} of {n}."
            )
    return "\n".join(lines) + "\n"


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


def render_markdown(
    collection: Collection,
    fits: Sequence[FitResult],
    frontier: Sequence[FrontierRow],
    overall: Sequence[OverallRow],
    comparisons: Sequence[SplitComparison],
    figures: Mapping[str, str],
) -> str:
    """The report's README.md. ``figures`` maps a concept (or "overall") to its PNG file name."""
    parts = [
        f"# steer-pu report: {collection.model}\n",
        f"{len(collection.runs)} run(s), {len(collection.method_forms)} method-form(s), "
        f"{len(collection.concepts)} concept(s). Definitions: docs/metrics.md in the steer-pu repository "
        "(\"Reading a report\").\n",
        "## Runs\n",
        _table(
            ["run", "method-form", "layer", "strengths", "concepts scored", "not scored yet"],
            [
                [f"`{display_path(r.path)}`", r.method_form, str(r.config.layer), " ".join(f"{m:g}" for m in r.config.strengths),
                 ", ".join(r.scored) or "–", ", ".join(r.unscored) or "–"]
                for r in collection.runs
            ],
        ),  # fmt: skip
        "Per-strength means of every sweep (m, PrefOdds, UtilOdds, p, u): [points.csv](points.csv).\n",
        "## Claims check\n",
        "Worded automatically from the numbers below; thresholds are part of each statement.\n",
        claims_text(fits, comparisons),
        "## Frontier area\n",
        f"Suite score per method-form: mean FA over its concepts, 95 % percentile bootstrap CI over test "
        f"pairs ({overall[0].suite.n_boot if overall else 0} resamples, seed {overall[0].suite.seed if overall else 0}). "
        "FA− is the negative direction (only when every concept has m < 0).\n",
        _table(
            ["method", "form", "concepts", "mean FA", "95 % CI", "mean FA gain", "mean FA−"],
            [
                [o.method, o.form, str(len(o.suite.per_concept)), _f(o.suite.mean_fa),
                 f"[{_f(o.suite.ci_low)}, {_f(o.suite.ci_high)}]", _f(o.mean_fa_gain), _f(o.mean_fa_negative)]
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
                [r.concept, r.method, r.form, _f(r.scores.base_p), _f(r.scores.fa), _f(r.scores.fa_gain),
                 _f(r.scores.fa_negative)]
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
            ["concept", "method-form", "n", "PrefOdds R²", "α", "β", "b", "m½ (pref)", "UtilOdds R²", "β_u", "b_u",
             "m½ (util)", "not fitted because"],
            [
                [f.concept, f.method_form, str(len(f.m)),
                 _f(f.pref.r2) if f.pref else "–", _f(f.pref.alpha) if f.pref else "–",
                 _f(f.pref.beta) if f.pref else "–", _f(f.pref.b) if f.pref else "–",
                 _f(f.pref.breakdown_strength, 2) if f.pref else "–",
                 _f(f.util.r2) if f.util else "–", _f(f.util.beta, 2) if f.util else "–",
                 _f(f.util.b, 2) if f.util else "–", _f(f.util.breakdown_strength, 2) if f.util else "–",
                 "; ".join(f"{n}: {r}" for n, r in (("PrefOdds", f.pref_reason), ("UtilOdds", f.util_reason)) if r)
                 or "–"]
                for f in fits
            ],
        ),  # fmt: skip
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
        {"concept": s.concept, "method": s.method, "form": s.form, **row}
        for s in collection.sweeps
        for row in summarise(dict(s.scores))
    ]
    return pd.DataFrame(rows).to_csv(index=False, float_format="%.6f")


def write_report(report: Report, out: Path) -> list[Path]:
    """Write ``out/README.md`` and the figures; everything is drawn before anything is written."""
    from .plots import concept_figure, overall_figure

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
    text = render_markdown(
        report.collection, report.fits, report.frontier, report.overall, report.comparisons, figures
    )
    files["points.csv"] = points_csv(report.collection).encode("utf-8")
    written = []
    for name, data in files.items():
        atomic_write_bytes(out / name, data)
        written.append(out / name)
    atomic_write_text(out / "README.md", text)
    written.append(out / "README.md")
    return written
