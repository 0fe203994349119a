"""Compare runs: curve fits, frontier areas and a claims check against the paper, as Markdown.

A run directory (see :mod:`steer_pu.runs.run`) holds one method-form swept over some concepts;
so does a submission entry (``<method>-<form>.json``, its per-pair numbers), for the whole suite.
This module gathers several of them (``RUN_DIR`` arguments, folders with run directories below,
or entry files), and computes from their per-pair scores — with :mod:`steer_pu.analysis.frontier`
and :mod:`steer_pu.analysis.curves`, never a formula of its own —

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
from steer_pu.submission.parse import load_submission
from steer_pu.submission.verify import sweep_of

# --------------------------------------------------------------------------- loading


@dataclass(frozen=True)
class RunInfo:
    """One run directory or entry file: what it swept, and which of its concepts have scores."""

    path: Path
    model: str
    method: str
    form: str
    layer: int | None
    strengths: tuple[float, ...]
    scored: tuple[str, ...]
    unscored: tuple[str, ...]

    @classmethod
    def of_run(cls, path: Path, config: RunConfig, scored: Sequence[str], unscored: Sequence[str]) -> RunInfo:
        strengths = tuple(config.strengths)
        return cls(path, config.model, config.method, config.form, config.layer, strengths, (*scored,), (*unscored,))

    @property
    def method_form(self) -> str:
        return f"{self.method}-{self.form}"


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
        return self.runs[0].model

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
            raise SteerPuError(
                f"{path}: not a directory (expected a run directory, a folder of runs or an entry .json file)"
            )
        below = {p.parent.resolve() for p in path.rglob(RUN_FILE) if p.is_file()}
        if not below:
            raise SteerPuError(f"{path}: no run directory found (no {RUN_FILE} in it or below it)")
        found |= below
    return sorted(found)


def load_collection(paths: Sequence[Path]) -> Collection:
    """Load every run under ``paths``; a user-caused problem raises :class:`SteerPuError`.

    Refused: runs of different models or of different task data (by the concept hashes in
    ``run.json`` or an entry's ``suite.concepts``), the same (concept, method, form) in two runs
    (a run and its own entry included), a sweep without the unsteered strength m = 0, a
    malformed entry, and no score files at all.
    """
    runs: list[RunInfo] = []
    sweeps: dict[tuple[str, str, str], Sweep] = {}
    task_sha: dict[str, tuple[str, str]] = {}  # concept → (sha256, the file that recorded it first)

    def same_task_data(shas: Mapping[str, str], source: str, field_of: str) -> None:
        # methods are compared pair by pair: every run must have scored the same task data
        for concept, sha in shas.items():
            first = task_sha.setdefault(concept, (sha, source))
            if first[0] != sha:
                raise SteerPuError(
                    f"{source}: field '{field_of.format(concept=concept)}' differs from {first[1]}: "
                    f"the runs scored different versions of concept '{concept}'"
                )

    def add(key: tuple[str, str, str], sweep: Sweep, source: Path) -> None:
        if key in sweeps:
            raise SteerPuError(
                f"{source}: {sweep.method_form} on concept '{sweep.concept}' is also in "
                f"{sweeps[key].run_dir}; pass only one of the two"
            )
        sweeps[key] = sweep

    entries = [path for path in paths if path.is_file() and path.suffix == ".json"]
    for path in entries:
        sub = load_submission(path)  # a SteerPuError names the file and field of a malformed entry
        same_task_data(sub.suite.concepts, str(path), "suite.concepts.{concept}")
        for concept, result in sorted(sub.concepts.items()):
            text = strength_summary(result.generations.model_dump()) if result.generations else {}
            add((concept, sub.method.name, sub.method.form), Sweep(concept, sub.method.name, sub.method.form, path,
                                                                   sweep_of(result), text), path)  # fmt: skip
        runs.append(
            RunInfo(path, sub.model.name, sub.method.name, sub.method.form, sub.method.layer,
                    tuple(sub.method.strengths), tuple(sorted(sub.concepts)), ())
        )  # fmt: skip
    for run_dir in find_run_dirs([path for path in paths if path not in entries]):
        record = read_run_file(run_dir)
        config = record.config
        same_task_data(record.concept_sha256, str(run_dir / RUN_FILE), "provenance.concepts.{concept}.sha256")
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
            generated = generations_path(run_dir, concept, method_form)
            text = strength_summary(read_generations(generated)) if generated.is_file() else {}
            add((concept, config.method, config.form), Sweep(concept, config.method, config.form, run_dir, scores,
                                                             text), run_dir / RUN_FILE)  # fmt: skip
            scored.append(concept)
        runs.append(RunInfo.of_run(run_dir, config, scored, unscored))
    models = sorted({Path(r.model).name for r in runs})  # a registry name, or a local model's folder name
    if len(models) > 1:
        by_model = "; ".join(f"{m}: {', '.join(str(r.path) for r in runs if Path(r.model).name == m)}" for m in models)
        raise SteerPuError(
            f"runs use different models (field 'config.model' in {RUN_FILE}, 'model.name' in an entry) — {by_model}"
        )
    if not sweeps:
        raise SteerPuError(
            f"{', '.join(str(r.path) for r in runs)}: no score files yet (scores/<concept>/<method>-<form>/m=*.json)"
        )
    return Collection(tuple(runs), tuple(sweeps[k] for k in sorted(sweeps)))
