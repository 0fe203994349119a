"""Compare runs: curve fits, frontier areas and a claims check against the paper, as Markdown.

A run directory (see :mod:`steer_pu.runs.run`) holds one method-form swept over some concepts.
This module gathers several runs (``RUN_DIR`` arguments, or folders below them that hold a
``run.json``), and computes from their score files — with :mod:`steer_pu.analysis.frontier` and
:mod:`steer_pu.analysis.curves`, never a formula of its own —

- per concept and method-form: the RQ curve fits of PrefOdds(m) and UtilOdds(m), or why
  a sweep cannot be fitted;
- FA, FA gain and FA− per concept, and the suite score (mean FA, bootstrap CI) per method-form;
- a claims check of Xu et al. 2026: (1) preference rises and utility falls with |m|,
  (2) the RQ model fits with R² ≥ 0.95, (3) SPLIT's FA against SFT, RePS and DiffMean per form.

:func:`write_report` writes ``README.md`` and the PNG figures of :mod:`steer_pu.report.figures`.
See docs/metrics.md ("Reading a report").
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from steer_pu.analysis.frontier import concept_scores
from steer_pu.analysis.pair_scores import PairScores
from steer_pu.errors import SteerPuError
from steer_pu.runs.generations import generations_path, read_generations, strength_summary
from steer_pu.runs.run import RUN_FILE, RunConfig, load_scores, read_run_file

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
    # per strength, the means of the generations' text statistics (run --generate); empty without
    text: Mapping[float, Mapping[str, float | None]] = field(default_factory=dict)

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
            # a SteerPuError names the file and field of an unreadable score file
            scores = load_scores(run_dir, concept, method_form) if folder.is_dir() else {}
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
            generated = generations_path(run_dir, concept, method_form)
            text = strength_summary(read_generations(generated)) if generated.is_file() else {}
            sweeps[key] = Sweep(concept, config.method, config.form, run_dir, scores, text)
            scored.append(concept)
        runs.append(RunInfo(run_dir, config, tuple(scored), tuple(unscored)))
    models = sorted({r.config.model for r in runs})
    if len(models) > 1:
        by_model = "; ".join(f"{m}: {', '.join(str(r.path) for r in runs if r.config.model == m)}" for m in models)
        raise SteerPuError(f"runs use different models (field 'config.model' in {RUN_FILE}) — {by_model}")
    if not sweeps:
        raise SteerPuError(
            f"{', '.join(str(r.path) for r in runs)}: no score files yet (scores/<concept>/<method>-<form>/m=*.json)"
        )
    return Collection(tuple(runs), tuple(sweeps[k] for k in sorted(sweeps)))
