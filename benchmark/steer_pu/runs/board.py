"""A board: models × method-forms × seeds, each a run directory under one output root.

    output: runs/board-standard        # the root (relative to the working directory)
    models: [smollm2-135m, gemma3-270m] # registry names or local model directories
    seeds: [0]
    generate: 4                         # default of every method-form (each may override it)
    threads: 1                          # torch threads per unit (fixed: reproducible numbers)
    submissions: runs/board-standard/submissions   # optional: an entry per finished run
    methods:
      - {method: diffmean, form: vector}
      - {method: split, form: lora, strengths: [1, 2, 4], hp: {steps: 50}, generate: 0}

Run directories are ``OUTPUT/<model>/<name>-seed<S>`` (``name``: ``<method>-<form>`` unless
given), with exactly the config ``steer-pu run`` builds from the same options, so a board
resumes from (and is resumed by) those runs. :func:`read_board` checks the whole file — every
key, model, method, form, hyper-parameter and strength grid — before anything runs; a problem
is one SteerPuError naming the file and the field.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from steer_pu.errors import SteerPuError, first_field_error

NAME = re.compile(r"^[a-z0-9][a-z0-9._-]*$")  # a submission's entry name


class MethodForm(BaseModel):
    """One method-form of the board and its options."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    method: str
    form: str | None = None  # the method's first form when omitted
    name: str | None = None  # run folder and entry name; default <method>-<form>
    strengths: list[float] | None = None  # default: the method's declared grid
    hp: dict[str, Any] = {}
    generate: int | None = None  # default: the board's


class BoardFile(BaseModel):
    """The board file's schema (unknown keys are errors)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    output: str
    models: list[str] = Field(min_length=1)
    methods: list[MethodForm] = Field(min_length=1)
    seeds: list[int] = Field(default=[0], min_length=1)
    concepts: list[str] | None = None  # default: the whole suite
    suite: str | None = None
    generate: int = 0
    threads: int = Field(default=1, ge=1)
    device: str = "auto"
    dtype: str = "float32"
    token_budget: int | None = Field(default=None, ge=1)
    submissions: str | None = None


class BoardRun(BaseModel):
    """One run of a board: which model and method-form, its config and its directory."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)
    model: str
    name: str  # the entry name (method-form)
    seed: int
    config: Any  # RunConfig
    out: Path
    submission: Path | None  # where its entry goes (when the board writes entries)


class Board(BaseModel):
    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)
    path: Path
    spec: BoardFile
    runs: list[BoardRun]


def model_folder(model: str) -> str:
    """The folder a model's runs and entries go in: its registry name, or its directory's name."""
    return Path(model).name


def read_board(path: Path, output: Path | None = None) -> Board:
    """Read, validate and expand a board file (``output`` overrides its ``output``)."""
    from steer_pu.methods import check_grid, get_method
    from steer_pu.models import REGISTRY
    from steer_pu.paths import default_suite_dir
    from steer_pu.runs.executors import default_layer
    from steer_pu.runs.run import RunConfig
    from steer_pu.suite.concepts import concept_dirs

    path = Path(path)

    def fail(field: str, message: str) -> SteerPuError:
        return SteerPuError(f"{path}: field '{field}': {message}")

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SteerPuError(f"{path}: not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SteerPuError(f"{path}: not readable ({exc})") from None
    except yaml.YAMLError as exc:
        raise SteerPuError(f"{path}: invalid YAML ({' '.join(str(exc).split())})") from None
    if not isinstance(data, dict):
        raise SteerPuError(f"{path}: a board file is a YAML mapping (output, models, methods, ...)")
    try:
        spec = BoardFile.model_validate(data)
    except ValidationError as exc:
        raise SteerPuError(f"{path}: {first_field_error(exc)}") from None

    for i, model in enumerate(spec.models):
        if model not in REGISTRY and not Path(model).is_dir():
            raise fail(
                f"models.{i}", f"unknown model '{model}': known names are {', '.join(sorted(REGISTRY))}, or a local "
                "model directory"
            )  # fmt: skip
    from steer_pu.devices import resolve_device, resolve_dtype

    for field, check in (("device", resolve_device), ("dtype", resolve_dtype)):
        try:
            check(getattr(spec, field))
        except SteerPuError as exc:
            raise fail(field, str(exc)) from None
    folders = [model_folder(m) for m in spec.models]
    if len(set(folders)) != len(folders):
        raise fail("models", "two models share a folder name; each model's runs go in OUTPUT/<model>/")
    if len(set(spec.seeds)) != len(spec.seeds):
        raise fail("seeds", "a seed is given more than once")
    suite_dir = Path(spec.suite).resolve() if spec.suite else default_suite_dir().resolve()
    try:
        all_concepts = [p.name for p in concept_dirs(suite_dir)]
    except SteerPuError as exc:
        raise fail("suite", str(exc)) from None
    concepts = spec.concepts if spec.concepts is not None else all_concepts
    unknown = [c for c in concepts if c not in all_concepts]
    if unknown:
        raise fail("concepts", f"unknown concept(s) {', '.join(unknown)} in {suite_dir}")
    if spec.submissions is not None and set(concepts) != set(all_concepts):
        raise fail("submissions", "an entry covers the whole suite; drop 'concepts' to write submissions")

    forms = []  # (name, method, form, hyperparams, grid, generate) per method-form
    for i, entry in enumerate(spec.methods):
        where = f"methods.{i}"
        try:
            cls = get_method(entry.method)
        except SteerPuError as exc:
            raise fail(f"{where}.method", str(exc)) from None
        if entry.form is not None and entry.form not in cls.forms:
            raise fail(f"{where}.form", f"method '{entry.method}' has no form '{entry.form}'; its forms are "
                       f"{', '.join(cls.forms)}")  # fmt: skip
        try:
            method = cls(entry.form, **entry.hp)
        except SteerPuError as exc:
            raise fail(f"{where}.hp", str(exc)) from None
        name = entry.name or f"{entry.method}-{method.form}"
        if not NAME.match(name):
            raise fail(f"{where}.name", f"'{name}' is not an entry name (lowercase letters, digits, '.', '_', '-')")
        try:
            grid = check_grid(entry.strengths if entry.strengths is not None else list(method.strengths()))
        except SteerPuError as exc:
            raise fail(f"{where}.strengths", str(exc)) from None
        generate = spec.generate if entry.generate is None else entry.generate
        forms.append((name, entry.method, method.form, method.hyperparams, grid, generate, where))
    names = [f[0] for f in forms]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise fail("methods", f"method-form {repeated[0]} is given twice; give one of them a 'name'")

    root = Path(output) if output is not None else Path(spec.output)
    submissions = Path(spec.submissions) if spec.submissions is not None else None
    runs = []
    for model, folder in zip(spec.models, folders):
        try:
            layer = default_layer(model)
        except SteerPuError as exc:
            raise fail("models", str(exc)) from None
        for name, method, form, hyperparams, grid, generate, where in forms:
            for seed in spec.seeds:
                fields = dict(
                    model=model, method=method, form=form, layer=layer, concepts=list(concepts), strengths=grid,
                    seed=seed, hyperparams=hyperparams, suite_dir=str(suite_dir), token_budget=spec.token_budget,
                    threads=spec.threads, device=spec.device, dtype=spec.dtype, generate=generate,
                )  # fmt: skip
                try:
                    config = RunConfig(**fields)
                except ValidationError as exc:
                    raise fail(where, first_field_error(exc)) from None
                entry = f"{name}-seed{seed}" if len(spec.seeds) > 1 else name
                runs.append(
                    BoardRun(
                        model=model,
                        name=name,
                        seed=seed,
                        config=config,
                        out=root / folder / f"{name}-seed{seed}",
                        submission=submissions / folder / f"{entry}.json" if submissions is not None else None,
                    )
                )
    return Board(path=path, spec=spec, runs=runs)
