"""report claims."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.stats import spearmanr

from steer_pu.analysis import curves as rq
from steer_pu.analysis.frontier import ConceptScores, SuiteScore, bootstrap_concept_fa, concept_scores, suite_score
from steer_pu.methods import get_method
from steer_pu.report.collect import Collection, Sweep
from steer_pu.report.fits import FitResult

# Claims-check thresholds (stated in the report next to every verdict).
R2_MIN = 0.95  # the paper's "R² mostly ≥ 0.95" (Table 2)
RHO_MIN = 0.5  # |Spearman ρ| a sweep needs for "rises" / "falls"
MIN_TREND_POINTS = 3  # strengths a Spearman trend needs
MIN_SPARE_POINTS = 3  # strengths beyond the free parameters for an R² worth quoting
COMPARED_FORMS = ("vector", "lora", "local_weight")
SPLIT_BASELINES = ("sft", "reps", "diffmean")


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
                method,
                form,
                suite,
                float(np.mean([c.fa_gain for c in per])),
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
                if (a := collection.get(c, "split", form)) is not None
                and (b := collection.get(c, other, form)) is not None
            ]
            if missing or not pairs:
                out.append(SplitComparison(form, other, missing, (), None, None, 0, None))
                continue
            fa_a = [concept_scores(a.scores).fa for a, _ in pairs]
            fa_b = [concept_scores(b.scores).fa for _, b in pairs]
            out.append(
                SplitComparison(
                    form,
                    other,
                    (),
                    tuple(a.concept for a, _ in pairs),
                    float(np.mean(fa_a)),
                    float(np.mean(fa_b)),
                    sum(x > y for x, y in zip(fa_a, fa_b)),
                    _paired_diff_ci(pairs, n_boot, seed),
                )  # fmt: skip
            )
    return out


# --------------------------------------------------------------------------- generated text


@dataclass(frozen=True)
class TextTrend:
    """Does utility fall where the generated text degrades? Spearman ρ between u and the fluency
    proxy (the unsteered model's per-token NLL of the continuation) over a sweep's strengths."""

    concept: str
    method: str
    form: str
    strengths: int
    rho: float | None  # None: too few strengths with generations
    holds: bool | None  # ρ ≤ −RHO_MIN: lower utility, less fluent text


def text_trends(collection: Collection) -> list[TextTrend]:
    from steer_pu.analysis.frontier import strength_points

    out = []
    for sweep in collection.sweeps:
        if not sweep.text:
            continue
        points = {pt.m: pt.u for pt in strength_points(dict(sweep.scores))}
        ms = [m for m in sorted(sweep.text) if m in points and sweep.text[m].get("fluency_nll") is not None]
        rho = _spearman([points[m] for m in ms], [sweep.text[m]["fluency_nll"] for m in ms])
        out.append(
            TextTrend(sweep.concept, sweep.method, sweep.form, len(ms), rho, None if rho is None else rho <= -RHO_MIN)
        )
    return out


def text_claim(trends: Sequence[TextTrend]) -> str:
    """Claim (4) worded from the numbers: utility falls where the text degrades."""
    checked = [t for t in trends if t.holds is not None]
    k = sum(bool(t.holds) for t in checked)
    lines = [
        f"### (4) Utility falls where generated text degrades — {_verdict(k, len(checked)).upper()}\n",
        f"Per sweep with generations: Spearman ρ between u and the fluency proxy (the unsteered model's mean "
        f"per-token NLL of the greedy continuation; higher is less fluent) over strengths; the claim holds in a "
        f"sweep when ρ ≤ −{RHO_MIN}. It holds in **{k} of {len(checked)}** sweeps that can be checked.",
    ]
    for mf in sorted({(t.method, t.form) for t in checked}):
        sub = [t for t in checked if (t.method, t.form) == mf]
        lines.append(
            f"- {mf[0]}-{mf[1]}: {sum(bool(t.holds) for t in sub)}/{len(sub)} concepts, "
            f"median ρ = {np.median([t.rho for t in sub]):+.2f}"
        )
    return "\n".join(lines) + "\n"


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
                f"- {label}: **cannot be checked** — none of the {len(fits)} sweep(s) could be fitted "
                "(see the fit table)."
            )
            continue
        # With few strengths beyond the free parameters any curve fits; say so next to the number.
        tight = sum(len(f.m) - n_free < MIN_SPARE_POINTS for f in fitted)
        caveat = (
            f"; {tight} of these fits have fewer than {MIN_SPARE_POINTS} strengths more than the {n_free} free "
            "parameters, so their R² says little"
            if tight
            else ""
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
                lines.append(
                    f"- {form}, SPLIT vs {c.other}: **not measured** — {', '.join(c.missing)} not in the runs."
                )
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
