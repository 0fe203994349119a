"""The preference–utility frontier of a strength sweep and the benchmark's headline score.

A sweep scores one concept's test pairs at several control strengths m. Each strength gives
one point (u, p): utility retention u(m) and preference score p(m), both from
:mod:`steer_pu.analysis.metrics`. The **frontier area** (FA) is the area under the best preference
reachable at each level of retained utility,

    FA = ∫₀¹ max{p_i : u_i ≥ x} dx,

the area of the union of the rectangles [0, u_i] × [0, p_i], with the unsteered point
(u = 1, p = p(0)) always included, so that FA ≥ p(0) and the unsteered model alone scores
p(0). The suite score is the mean FA over concepts with a percentile bootstrap confidence
interval over test pairs. See docs/metrics.md.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from steer_pu.analysis import metrics
from steer_pu.analysis.pair_scores import PairScores

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]
# The bootstrap of one concept holds ~4 arrays of n_boot × n_pairs 8-byte values (indices,
# offsets, draw counts, weights): ~32 bytes a cell, so this cap is ~0.5 GiB at the peak. The
# largest legitimate request is the submission schema's n_boot limit (1e5) × the suite's 50 test
# pairs = 5e6 cells; a file asking for more (74.5 GiB for 1e5 × 1e5) is refused, not allocated.
MAX_BOOTSTRAP_CELLS = 2**24


@dataclass(frozen=True)
class SweepPoint:
    """One strength of a sweep: control strength ``m``, utility retention ``u``, preference ``p``."""

    m: float
    u: float
    p: float


@dataclass(frozen=True)
class ConceptScores:
    """Frontier scores of one concept's sweep.

    ``fa``: frontier area toward the positive pole; ``fa_gain`` = fa − base_p;
    ``fa_negative``: frontier area toward the negative pole (None if the sweep has no m < 0);
    ``base_p``: p(0); ``points``: one :class:`SweepPoint` per strength, sorted by m.
    """

    fa: float
    fa_gain: float
    fa_negative: float | None
    base_p: float
    points: tuple[SweepPoint, ...]


@dataclass(frozen=True)
class SuiteScore:
    """Mean FA over a suite's concepts with a percentile bootstrap CI over test pairs.

    ``ci_low``/``ci_high`` bound the central ``ci`` interval of ``n_boot`` resamples;
    ``per_concept`` holds each concept's point estimates, keyed by concept name.
    """

    mean_fa: float
    ci_low: float
    ci_high: float
    ci: float
    n_boot: int
    seed: int
    per_concept: Mapping[str, ConceptScores] = field(repr=False)


# --------------------------------------------------------------------------- frontier


def _check_unit(name: str, values: FloatArray) -> None:
    if np.any(np.isnan(values)):
        raise ValueError(f"frontier points: {name} contains NaN")
    bad = values[(values < 0.0) | (values > 1.0)]
    if bad.size:
        raise ValueError(f"frontier points: {name} must lie in [0, 1], got {bad[0]!r}")


def _as_arrays(points: Iterable[SweepPoint]) -> tuple[FloatArray, FloatArray, FloatArray]:
    """(m, u, p) arrays of ``points``, validated: non-empty, u and p in [0, 1], no NaN."""
    pts = list(points)
    if not pts:
        raise ValueError("frontier points: the sweep is empty (no strengths scored)")
    m = np.array([pt.m for pt in pts], dtype=np.float64)
    u = np.array([pt.u for pt in pts], dtype=np.float64)
    p = np.array([pt.p for pt in pts], dtype=np.float64)
    if np.any(np.isnan(m)):
        raise ValueError("frontier points: strength m contains NaN")
    _check_unit("u", u)
    _check_unit("p", p)
    return m, u, p


def _check_base_p(base_p: float) -> None:
    if not (isinstance(base_p, (int, float, np.floating)) and 0.0 <= float(base_p) <= 1.0):
        raise ValueError(f"base_p must be a number in [0, 1], got {base_p!r}")


def _staircase_area(u: FloatArray, p: FloatArray) -> FloatArray:
    """∫₀¹ max{p_i : u_i ≥ x} dx along the last axis (batched; exact, no sampling).

    Sort by u descending, take the running maximum of p, and sum the strips
    (u_(k) − u_(k+1)) · max_{j≤k} p_(j) with u_(K+1) = 0. The caller includes u = 1.
    """
    order = np.argsort(-u, axis=-1, kind="stable")
    u_sorted = np.take_along_axis(u, order, axis=-1)
    best_p = np.maximum.accumulate(np.take_along_axis(p, order, axis=-1), axis=-1)
    next_u = np.concatenate([u_sorted[..., 1:], np.zeros_like(u_sorted[..., :1])], axis=-1)
    return np.sum((u_sorted - next_u) * best_p, axis=-1)


def pareto_front(points: Iterable[SweepPoint]) -> list[SweepPoint]:
    """The non-dominated points of a sweep (higher u and higher p are better), u descending.

    A point is dominated when another has u and p both at least as large and one larger.
    Of points with identical (u, p) only one is kept: the one with the smallest |m|.
    """
    pts = list(points)
    _as_arrays(pts)
    ranked = sorted(pts, key=lambda pt: (-pt.u, -pt.p, abs(pt.m)))
    front: list[SweepPoint] = []
    best_p = -math.inf
    for pt in ranked:
        if pt.p > best_p:
            front.append(pt)
            best_p = pt.p
    return front


def staircase(points: Iterable[SweepPoint], base_p: float | None = None) -> list[tuple[float, float]]:
    """Vertices (u, p) of the outline x ↦ max{p_i : u_i ≥ x}, from u = 0 up to the highest u.

    Each Pareto point (rising u) adds two vertices, (previous u, p) and (u, p). With ``base_p``
    the unsteered point (1, ``base_p``) is included and the area under the outline is
    :func:`frontier_area`; without it the outline ends at the sweep's highest u.
    """
    pts = list(points)
    if base_p is not None:
        pts.append(SweepPoint(m=0.0, u=1.0, p=float(base_p)))
    vertices: list[tuple[float, float]] = []
    for pt in reversed(pareto_front(pts)):  # from the lowest-u (highest-p) step upward
        start = vertices[-1][0] if vertices else 0.0
        vertices += [(start, pt.p), (pt.u, pt.p)]
    return vertices


def frontier_area(points: Iterable[SweepPoint], base_p: float) -> float:
    """FA = ∫₀¹ max{p_i : u_i ≥ x} dx, with the unsteered point (1, ``base_p``) included.

    Equal to the area of the union of the rectangles [0, u_i] × [0, p_i]. Raises
    ``ValueError`` for an empty sweep, NaN, or u, p or base_p outside [0, 1].
    """
    _check_base_p(base_p)
    _, u, p = _as_arrays(points)
    u = np.append(u, 1.0)
    p = np.append(p, float(base_p))
    return float(_staircase_area(u, p))


def fa_gain(fa: float, base_p: float) -> float:
    """FA gain = FA − p(0): the area a method adds over the unsteered model."""
    return float(fa) - float(base_p)


def best_p_at_utility(points: Iterable[SweepPoint], min_u: float = 0.9) -> SweepPoint:
    """The point of highest p among those with u ≥ ``min_u`` (ties: the smallest |m|, then m).

    A sweep's m = 0 point has u = 1, so it always qualifies there. Raises ``ValueError`` for
    invalid points, ``min_u`` outside [0, 1], or when no point reaches ``min_u``.
    """
    pts = list(points)
    _as_arrays(pts)
    if not 0.0 <= float(min_u) <= 1.0:
        raise ValueError(f"min_u must be a number in [0, 1], got {min_u!r}")
    usable = [pt for pt in pts if pt.u >= min_u]
    if not usable:
        raise ValueError(f"best_p_at_utility: no point has u ≥ {min_u:g}")
    return min(usable, key=lambda pt: (-pt.p, abs(pt.m), pt.m))


def negative_points(points: Iterable[SweepPoint]) -> list[SweepPoint]:
    """The points with m < 0, re-scored toward the negative pole: (m, u, 1 − p)."""
    return [SweepPoint(m=pt.m, u=pt.u, p=1.0 - pt.p) for pt in points if pt.m < 0]


def frontier_area_negative(points: Iterable[SweepPoint], base_p: float) -> float:
    """FA toward the negative pole: only points with m < 0, scored with 1 − p.

    The unsteered point enters as (1, 1 − ``base_p``). Raises ``ValueError`` if the sweep
    has no point with m < 0.
    """
    pts = list(points)
    _as_arrays(pts)
    _check_base_p(base_p)
    neg = negative_points(pts)
    if not neg:
        raise ValueError("frontier_area_negative: the sweep has no strength m < 0")
    return frontier_area(neg, 1.0 - float(base_p))


# --------------------------------------------------------------------------- per concept


def _check_sweep(sweep: Mapping[float, PairScores], name: str = "sweep") -> list[float]:
    """Sorted strengths of a sweep after checking m = 0 is present and pair counts agree."""
    if not sweep:
        raise ValueError(f"{name}: the sweep is empty (no strengths scored)")
    strengths = sorted(float(m) for m in sweep)
    if any(math.isnan(m) for m in strengths):
        raise ValueError(f"{name}: strength m contains NaN")
    if len(set(strengths)) != len(strengths):
        raise ValueError(f"{name}: duplicate strengths {strengths}")
    if 0.0 not in strengths:
        raise ValueError(f"{name}: strength m = 0 (the unsteered model) is missing; got {strengths}")
    counts = {float(m): scores.n_pairs for m, scores in sweep.items()}
    if len(set(counts.values())) != 1:
        raise ValueError(f"{name}: pair counts differ between strengths: {counts}")
    return strengths


def _by_strength(sweep: Mapping[float, PairScores], m: float) -> PairScores:
    for key, scores in sweep.items():
        if float(key) == m:
            return scores
    raise KeyError(m)


def concept_scores(sweep: Mapping[float, PairScores]) -> ConceptScores:
    """FA, FA gain, FA− and p(0) of one concept's sweep (strength m → :class:`PairScores`).

    p(m) is :func:`metrics.preference_score`, u(m) is :func:`metrics.utility_retention`
    relative to the m = 0 scores of the same pairs. m = 0 must be in the sweep.
    """
    return _scores_from_terms(*_per_pair_terms(sweep))


def strength_points(sweep: Mapping[float, PairScores]) -> list[SweepPoint]:
    """(m, u, p) of every strength of a sweep, ascending m (no frontier area computed)."""
    return _points_from_terms(*_per_pair_terms(sweep))


def _points_from_terms(strengths: list[float], pref: FloatArray, delta: FloatArray) -> list[SweepPoint]:
    # p(m) = metrics.preference_score, u(m) = metrics.utility_retention, for all m at once
    p_all = pref.mean(axis=0)
    u_all = np.exp(np.minimum(0.0, delta.mean(axis=0)))
    return [SweepPoint(m=m, u=float(u), p=float(p)) for m, u, p in zip(strengths, u_all, p_all)]


def _scores_from_terms(strengths: list[float], pref: FloatArray, delta: FloatArray) -> ConceptScores:
    points = _points_from_terms(strengths, pref, delta)
    base_p = next(pt.p for pt in points if pt.m == 0.0)
    fa = frontier_area(points, base_p)
    fa_neg = frontier_area_negative(points, base_p) if strengths[0] < 0 else None
    return ConceptScores(fa=fa, fa_gain=fa_gain(fa, base_p), fa_negative=fa_neg, base_p=base_p, points=tuple(points))


# --------------------------------------------------------------------------- suite + bootstrap


def _per_pair_terms(
    sweep: Mapping[float, PairScores], name: str = "sweep"
) -> tuple[list[float], FloatArray, FloatArray]:
    """The strengths and the per-pair terms whose means are p and log u, shape (n_pairs, n_strengths).

    σ(PrefOdds) for p (:func:`metrics.preference_score`) and (ℓ(m) − ℓ(0)) / T̄ for u
    (:func:`metrics.utility_retention`); tests check the means against those functions.
    """
    strengths = _check_sweep(sweep, name=name)
    base = _by_strength(sweep, 0.0)
    base_ll = metrics.valid_loglik(base.nll_pos, base.nll_neg)
    pref_cols, delta_cols = [], []
    for m in strengths:
        s = _by_strength(sweep, m)
        pref_cols.append(metrics.sigmoid(metrics.pref_logodds(s.nll_pos, s.nll_neg)))
        delta_cols.append((metrics.valid_loglik(s.nll_pos, s.nll_neg) - base_ll) / ((s.len_pos + s.len_neg) / 2))
    return strengths, np.stack(pref_cols, axis=-1), np.stack(delta_cols, axis=-1)


def _resampled_pu(sweep: Mapping[float, PairScores], idx: IntArray) -> tuple[FloatArray, FloatArray]:
    """p and u of every strength under each pair resample: arrays of shape (n_boot, n_strengths).

    ``idx`` (n_boot, n_pairs) holds the resampled pair indices, the same at every strength.
    """
    return _resampled_from_terms(*_per_pair_terms(sweep)[1:], idx)


def _resampled_from_terms(pref: FloatArray, delta: FloatArray, idx: IntArray) -> tuple[FloatArray, FloatArray]:
    # A resample's mean is (how often it drew each pair) · (per-pair values) / n: one matmul
    # for all strengths instead of gathering n_boot × n_pairs values per strength.
    n_boot, n_pairs = idx.shape
    draws = np.bincount((idx + n_pairs * np.arange(n_boot)[:, None]).ravel(), minlength=n_boot * n_pairs)
    weights = draws.reshape(n_boot, n_pairs) / n_pairs
    return weights @ pref, np.exp(np.minimum(0.0, weights @ delta))


def bootstrap_concept_fa(sweep: Mapping[float, PairScores], idx: IntArray) -> FloatArray:
    """FA of one concept under each pair resample in ``idx`` (n_boot, n_pairs): shape (n_boot,)."""
    return _bootstrap_from_terms(*_per_pair_terms(sweep), idx)


def _bootstrap_from_terms(strengths: list[float], pref: FloatArray, delta: FloatArray, idx: IntArray) -> FloatArray:
    p, u = _resampled_from_terms(pref, delta, idx)
    base_p = p[:, strengths.index(0.0)]
    u_all = np.concatenate([u, np.ones_like(base_p)[:, None]], axis=-1)
    p_all = np.concatenate([p, base_p[:, None]], axis=-1)
    return _staircase_area(u_all, p_all)


def suite_score(
    sweeps_by_concept: Mapping[str, Mapping[float, PairScores]],
    n_boot: int = 1000,
    seed: int = 0,
    ci: float = 0.95,
) -> SuiteScore:
    """Mean FA over concepts with a percentile bootstrap CI over test pairs.

    Each resample draws, for every concept (in sorted name order), its test pairs with
    replacement from ``numpy.random.default_rng(seed)``; the same indices are used at every
    strength of that concept. The CI is the central ``ci`` percentile interval of the
    resampled suite means. Same inputs and seed → same result.
    """
    if not sweeps_by_concept:
        raise ValueError("suite_score: no concepts given")
    if not 0.0 < ci < 1.0:
        raise ValueError(f"suite_score: ci must lie in (0, 1), got {ci!r}")
    if n_boot < 1:
        raise ValueError(f"suite_score: n_boot must be at least 1, got {n_boot!r}")
    for name, sweep in sweeps_by_concept.items():
        cells = n_boot * _by_strength(sweep, 0.0).n_pairs if 0.0 in sweep else 0
        if cells > MAX_BOOTSTRAP_CELLS:
            raise ValueError(
                f"suite_score: concept {name!r}: n_boot {n_boot} × {cells // n_boot} pairs = {cells} resampled values "
                f"exceeds the {MAX_BOOTSTRAP_CELLS} limit (MAX_BOOTSTRAP_CELLS)"
            )
    names = sorted(sweeps_by_concept)
    per_concept: dict[str, ConceptScores] = {}
    terms = {}  # per-pair terms of each concept, shared by its point estimate and its resamples
    for name in names:
        terms[name] = _per_pair_terms(sweeps_by_concept[name], name=f"concept {name!r}")
        per_concept[name] = _scores_from_terms(*terms[name])
    mean_fa = float(np.mean([per_concept[name].fa for name in names]))
    rng = np.random.default_rng(seed)
    boot = np.zeros(n_boot)
    for name in names:
        sweep = sweeps_by_concept[name]
        n_pairs = _by_strength(sweep, 0.0).n_pairs
        idx = rng.integers(0, n_pairs, size=(n_boot, n_pairs))
        boot += _bootstrap_from_terms(*terms[name], idx)
    boot /= len(names)
    tail = (1.0 - ci) / 2 * 100
    low, high = np.percentile(boot, [tail, 100 - tail])
    return SuiteScore(
        mean_fa=mean_fa,
        ci_low=float(low),
        ci_high=float(high),
        ci=ci,
        n_boot=n_boot,
        seed=seed,
        per_concept=per_concept,
    )


def summarise(scores_by_strength: dict[float, PairScores]) -> list[dict[str, float]]:
    """Per strength: mean PrefOdds, mean UtilOdds, preference score p and utility retention u."""
    strengths = sorted(scores_by_strength)
    points = {pt.m: pt for pt in strength_points(scores_by_strength)}
    # the log-odds are per pair: one call on (strengths × pairs) arrays for the whole sweep
    nll_pos = np.stack([scores_by_strength[m].nll_pos for m in strengths])
    nll_neg = np.stack([scores_by_strength[m].nll_neg for m in strengths])
    pref = metrics.pref_logodds(nll_pos, nll_neg).mean(axis=1)
    util = metrics.util_logodds(nll_pos, nll_neg).mean(axis=1)
    return [
        {
            "m": m,
            "pref_logodds": float(pref[i]),
            "util_logodds": float(util[i]),
            "p": points[m].p,
            "u": points[m].u,
            "n": nll_pos.shape[1],
        }
        for i, m in enumerate(strengths)
    ]
