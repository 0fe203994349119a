"""Submission files: a versioned, self-checking record of one method's run on the suite.

A submission holds everything a reviewer needs to re-check a claim with one command
(``steer-pu verify``): the method (name, form, layer, hyper-parameters, declared grid, code
reference), the model and suite it ran on (with hashes), the environment, the per-pair NLLs
of every test pair at every strength (exact float64 ``repr``, so every aggregate can be
recomputed bit for bit), the aggregates and frontier scores, and the sha256 of every artifact.

Reading a submission is hostile-input safe: size limit, strict UTF-8 JSON (no NaN/inf
literals, no duplicate keys), schema version first, then pydantic validation; every problem
is one :class:`~steer_pu.errors.SteerPuError` naming the file and the field.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import shutil
import subprocess
import tempfile
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, JsonValue, StringConstraints, ValidationError, field_validator, model_validator

from . import __version__
from .errors import SteerPuError

SCHEMA_VERSION = 1
SCHEMA_FILE = "schema.json"
MAX_SUBMISSION_BYTES = 16 * 2**20  # a full-suite entry is ~0.5 MB; anything far larger is refused unread
MAX_COPIED_ARTIFACT_BYTES = 2**20  # per file: vectors and r=4 LoRA are copied beside the file, full-rank deltas not
MAX_ARTIFACT_BYTES = 512 * 2**20  # verify refuses to hash or load anything larger

Sha256 = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]
# strict: a number must be a JSON number (no "0.5" strings, no booleans)
Finite = Annotated[float, Field(strict=True, allow_inf_nan=False, ge=-1e9, le=1e9)]
UnitFloat = Annotated[float, Field(strict=True, allow_inf_nan=False, ge=0.0, le=1.0)]
Nll = Annotated[float, Field(strict=True, allow_inf_nan=False, ge=0.0, le=1e7)]
StrengthValue = Annotated[float, Field(strict=True, allow_inf_nan=False, ge=-1e4, le=1e4)]
Count = Annotated[int, Field(strict=True, ge=1, le=10**6)]
Integer = Annotated[int, Field(strict=True, ge=-(2**63), le=2**63 - 1)]
ShortText = Annotated[str, StringConstraints(min_length=1, max_length=300)]
Slug = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9._-]{0,63}$")]
ConceptName = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_]{0,63}$")]
FileName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$")]


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class CodeRef(_Record):
    """Where the method's code lives: a built-in, a plug-in ``module:Class``, or none (ready artifacts)."""

    kind: Literal["builtin", "plugin", "artifact"]
    reference: ShortText  # built-in name, package.module:ClassName, or "artifact" (run --artifact)
    version: ShortText  # harness version (built-in, artifact) or the plug-in distribution's version


class MethodInfo(_Record):
    name: ShortText
    form: Annotated[str, StringConstraints(pattern=r"^[a-z][a-z_]{0,31}$")]
    layer: Annotated[int, Field(strict=True, ge=0, le=10_000)]
    hyperparams: dict[ShortText, JsonValue]
    strengths: Annotated[list[StrengthValue], Field(min_length=1, max_length=16)]  # the declared grid, 0 included
    code: CodeRef

    @field_validator("strengths")
    @classmethod
    def _grid(cls, strengths: list[float]) -> list[float]:
        if strengths != sorted(set(strengths)):
            raise ValueError("strengths must be sorted and unique")
        if 0.0 not in strengths:
            raise ValueError("strengths must include 0 (the unsteered model)")
        return strengths


class ModelInfo(_Record):
    name: ShortText  # registry name (or the directory / Hub id the run used)
    weights_sha256: Sha256
    tokenizer_sha256: Sha256
    chat_template_sha256: Sha256 | None  # None when the model has no chat template
    use_chat_template: bool
    num_layers: Count


class SuiteRef(_Record):
    name: ShortText
    version: ShortText
    sha256: Sha256
    concepts: Annotated[dict[ConceptName, Sha256], Field(min_length=1)]


class Libraries(_Record):
    torch: ShortText
    transformers: ShortText
    peft: ShortText


class Environment(_Record):
    harness_version: ShortText
    git_commit: Annotated[str, StringConstraints(pattern=r"^([0-9a-f]{40}|unknown)$")]
    git_dirty: bool | None  # uncommitted changes under benchmark/ when the file was written
    python: ShortText
    libraries: Libraries
    device: ShortText
    dtype: ShortText
    threads: Count
    token_budget: Count


class Seeds(_Record):
    method: Integer  # torch seed and fit() seed of every concept
    bootstrap: Integer  # seed of the suite-score bootstrap


class StrengthResult(_Record):
    """One strength of one concept: per-pair summed NLLs and their aggregates."""

    m: StrengthValue
    nll_pos: list[Nll]
    nll_neg: list[Nll]
    pref_logodds: Finite
    util_logodds: Finite
    p: UnitFloat
    u: UnitFloat
    n: Count


class ArtifactFile(_Record):
    name: FileName
    sha256: Sha256
    bytes: Annotated[int, Field(strict=True, ge=0, le=2**40)]


class Artifact(_Record):
    """An intervention folder; ``path`` (relative to the submission's folder) is None when not committed."""

    path: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_][A-Za-z0-9._/-]{0,299}$")] | None
    files: Annotated[list[ArtifactFile], Field(min_length=1, max_length=16)]

    @model_validator(mode="after")
    def _safe_path(self) -> "Artifact":
        if self.path is not None and ".." in self.path.split("/"):
            raise ValueError("path must stay inside the submission's folder (no '..')")
        if len({f.name for f in self.files}) != len(self.files):
            raise ValueError("files: duplicate file names")
        return self


class ConceptResult(_Record):
    pair_ids: Annotated[list[ShortText], Field(min_length=1, max_length=100_000)]
    len_pos: list[Count]
    len_neg: list[Count]
    strengths: Annotated[list[StrengthResult], Field(min_length=1, max_length=16)]
    base_p: UnitFloat
    fa: UnitFloat
    fa_gain: UnitFloat
    fa_negative: UnitFloat | None
    artifact: Artifact | None

    @model_validator(mode="after")
    def _shapes(self) -> "ConceptResult":
        n = len(self.pair_ids)
        if len(set(self.pair_ids)) != n:
            raise ValueError("pair_ids must be unique")
        for name in ("len_pos", "len_neg"):
            if len(getattr(self, name)) != n:
                raise ValueError(f"{name} has {len(getattr(self, name))} entries but pair_ids has {n}")
        for s in self.strengths:
            if not len(s.nll_pos) == len(s.nll_neg) == s.n == n:
                raise ValueError(f"strength m={s.m:g}: nll_pos, nll_neg and n must all count the {n} pairs")
        return self


class SuiteScoreInfo(_Record):
    mean_fa: UnitFloat
    ci_low: UnitFloat
    ci_high: UnitFloat
    ci: Annotated[float, Field(strict=True, gt=0.0, lt=1.0)]
    n_boot: Annotated[int, Field(strict=True, ge=1, le=100_000)]


class Submission(_Record):
    """One leaderboard entry (schema version 1)."""

    model_config = ConfigDict(title="steer-pu submission", extra="forbid", frozen=True, allow_inf_nan=False)
    schema_version: Literal[1]
    name: Slug
    created_at: AwareDatetime
    method: MethodInfo
    model: ModelInfo
    suite: SuiteRef
    environment: Environment
    seeds: Seeds
    concepts: Annotated[dict[ConceptName, ConceptResult], Field(min_length=1)]
    suite_score: SuiteScoreInfo

    @model_validator(mode="after")
    def _consistent(self) -> "Submission":
        if set(self.concepts) != set(self.suite.concepts):
            raise ValueError("concepts must cover exactly the concepts of suite.concepts (the whole suite)")
        for name, result in self.concepts.items():
            if [s.m for s in result.strengths] != self.method.strengths:
                raise ValueError(f"concepts.{name}.strengths: the strengths differ from the declared method.strengths")
        if self.method.layer >= self.model.num_layers:
            raise ValueError(f"method.layer {self.method.layer} is not a layer of a {self.model.num_layers}-layer model")
        return self


# --------------------------------------------------------------------------- reading


class _NonFinite:
    """Stands in for a NaN/Infinity literal or an overflowing number while parsing."""

    def __init__(self, text: str):
        self.text = text


class _FloatParser:
    """``json.loads`` hooks that mark NaN/Infinity literals and overflowing numbers, and
    remember whether any occurred (so only such rare files are walked to name the field)."""

    def __init__(self) -> None:
        self.seen = False

    def number(self, text: str) -> float | _NonFinite:
        value = float(text)
        if math.isfinite(value):
            return value
        self.seen = True
        return _NonFinite(text)

    def constant(self, text: str) -> _NonFinite:
        self.seen = True
        return _NonFinite(text)


def _all_finite(raw: Any) -> bool:
    """Whether every number in a parsed JSON value is finite."""
    try:
        json.dumps(raw, allow_nan=False)
    except ValueError:
        return False
    return True


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise SteerPuError(f"duplicate key '{key}' in a JSON object")
        out[key] = value
    return out


def _find_non_finite(obj: Any, where: str = "") -> tuple[str, str] | None:
    if isinstance(obj, _NonFinite):
        return where or "(top level)", obj.text
    items = obj.items() if isinstance(obj, dict) else enumerate(obj) if isinstance(obj, list) else ()
    for key, value in items:
        found = _find_non_finite(value, f"{where}.{key}" if where else str(key))
        if found:
            return found
    return None


def first_error(exc: ValidationError) -> str:
    """'field 'a.b.0': message (and N more)' for the first of a validation error's problems."""
    errors = exc.errors()
    err = errors[0]
    where = ".".join(str(part) for part in err["loc"]) or "(top level)"
    more = f" (and {len(errors) - 1} more problem(s))" if len(errors) > 1 else ""
    return f"field '{where}': {err['msg']}{more}"


def parse_submission(data: bytes, source: str) -> Submission:
    """Validate the bytes of a submission file; ``source`` names it in error messages."""
    if len(data) > MAX_SUBMISSION_BYTES:
        raise SteerPuError(f"{source}: {len(data)} bytes exceeds the {MAX_SUBMISSION_BYTES} byte limit of a submission file")
    try:
        text = data.decode("utf-8")
        # json's C float parser (no Python hook: ~2x faster); a literal that overflows to inf
        # is caught by the schema (finite floats) and named by _name_overflow below
        floats = _FloatParser()
        raw = json.loads(text, parse_constant=floats.constant, object_pairs_hook=_no_duplicates)
    except UnicodeDecodeError as exc:
        raise SteerPuError(f"{source}: not valid UTF-8 ({exc.reason} at byte {exc.start})") from None
    except json.JSONDecodeError as exc:
        raise SteerPuError(f"{source}: malformed JSON ({exc.msg} at line {exc.lineno}, column {exc.colno})") from None
    except RecursionError:
        raise SteerPuError(f"{source}: JSON nested too deeply") from None
    except SteerPuError as exc:
        raise SteerPuError(f"{source}: {exc}") from None
    if not isinstance(raw, dict):
        raise SteerPuError(f"{source}: expected a JSON object at the top level")
    try:
        bad = _find_non_finite(raw) if floats.seen else None
    except RecursionError:
        raise SteerPuError(f"{source}: JSON nested too deeply") from None
    if bad:
        raise SteerPuError(f"{source}: field '{bad[0]}': '{bad[1]}' is not allowed; numbers must be finite")
    if "schema_version" not in raw:
        raise SteerPuError(f"{source}: field 'schema_version' is missing")
    if raw["schema_version"] != SCHEMA_VERSION or isinstance(raw["schema_version"], bool):
        raise SteerPuError(
            f"{source}: field 'schema_version': {raw['schema_version']!r} is not supported; "
            f"this harness ({__version__}) reads version {SCHEMA_VERSION}"
        )
    try:
        sub = Submission.model_validate(raw)
    except ValidationError as exc:
        _name_overflow(text, source)
        raise SteerPuError(f"{source}: {first_error(exc)}") from None
    except RecursionError:
        raise SteerPuError(f"{source}: JSON nested too deeply") from None
    if not _all_finite(sub.method.hyperparams):  # free-form JSON: the schema has no float type there
        _name_overflow(text, source)
    return sub


def _name_overflow(text: str, source: str) -> None:
    """Raise naming the field if a number in ``text`` overflows to inf (e.g. ``1e999``)."""
    floats = _FloatParser()
    try:
        raw = json.loads(text, parse_float=floats.number, parse_constant=floats.constant, object_pairs_hook=_no_duplicates)
        bad = _find_non_finite(raw) if floats.seen else None
    except (ValueError, RecursionError):  # parsed fine once already; nothing more to name
        return
    if bad:
        raise SteerPuError(f"{source}: field '{bad[0]}': '{bad[1]}' is not allowed; numbers must be finite")


def load_submission(path: Path) -> Submission:
    path = Path(path)
    if not path.is_file():
        raise SteerPuError(f"{path}: submission file not found")
    size = path.stat().st_size
    if size > MAX_SUBMISSION_BYTES:  # checked before reading: never pull a huge file into memory
        raise SteerPuError(f"{path}: {size} bytes exceeds the {MAX_SUBMISSION_BYTES} byte limit of a submission file")
    return parse_submission(path.read_bytes(), str(path))


# --------------------------------------------------------------------------- writing


def _compact_json(obj: Any, indent: int = 0) -> str:
    """Indented JSON with lists of plain values on one line (per-pair arrays stay compact).

    Floats are written by ``json`` as their shortest round-trip ``repr``: re-reading gives
    the exact float64 back, so aggregates recompute bit for bit.
    """
    pad, inner = "  " * indent, "  " * (indent + 1)
    if isinstance(obj, dict) and obj:
        body = ",\n".join(f"{inner}{json.dumps(k)}: {_compact_json(v, indent + 1)}" for k, v in obj.items())
        return "{\n" + body + "\n" + pad + "}"
    if isinstance(obj, list) and any(isinstance(v, (dict, list)) for v in obj):
        return "[\n" + ",\n".join(inner + _compact_json(v, indent + 1) for v in obj) + "\n" + pad + "]"
    return json.dumps(obj, allow_nan=False, ensure_ascii=False)


def dump_submission(sub: Submission) -> str:
    return _compact_json(sub.model_dump(mode="json")) + "\n"


def json_schema() -> dict[str, Any]:
    schema = Submission.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = f"https://steer-pu/submissions/schema-v{SCHEMA_VERSION}.json"
    return schema


def schema_text() -> str:
    """The exported JSON Schema as committed in ``submissions/schema.json``."""
    return json.dumps(json_schema(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def default_submissions_dir() -> Path:
    return Path(__file__).resolve().parents[2] / "submissions"


# --------------------------------------------------------------------------- provenance helpers


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with Path(path).open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _sha256_json(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


def tokenizer_sha256(tokenizer) -> str:
    """sha256 of the tokenizer's full definition (vocab, merges, normalizers) and special tokens."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    core = json.loads(backend.to_str()) if backend is not None else {"vocab": tokenizer.get_vocab()}
    return _sha256_json({"tokenizer": core, "special_tokens": tokenizer.special_tokens_map})


def chat_template_sha256(tokenizer) -> str | None:
    template = getattr(tokenizer, "chat_template", None)
    if not template:
        return None
    return _sha256_json(template)


def model_info(loaded) -> ModelInfo:
    """The model fingerprint of a :class:`~steer_pu.models.LoadedModel`."""
    return ModelInfo(
        name=str(loaded.name),
        weights_sha256=loaded.weights_sha256,
        tokenizer_sha256=tokenizer_sha256(loaded.tokenizer),
        chat_template_sha256=chat_template_sha256(loaded.tokenizer),
        use_chat_template=loaded.use_chat_template,
        num_layers=loaded.num_layers,
    )


def git_state(repo: Path | None = None) -> tuple[str, bool | None]:
    """(HEAD commit, whether benchmark/ has uncommitted changes) of the harness checkout."""
    repo = repo or Path(__file__).resolve().parents[2]
    try:
        head = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10)
        dirty = subprocess.run(
            ["git", "-C", str(repo), "status", "--porcelain", "--untracked-files=no", "--", "benchmark"],
            capture_output=True, text=True, timeout=10,
        )  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return "unknown", None
    commit = head.stdout.strip()
    if head.returncode != 0 or len(commit) != 40:
        return "unknown", None
    return commit, bool(dirty.stdout.strip()) if dirty.returncode == 0 else None


def _package_version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "unknown"


def code_ref(method: str) -> CodeRef:
    """Built-in method → harness version; plug-in ``pkg.mod:Class`` → its distribution's version.

    ``artifact`` is a run of ready artifacts trained elsewhere (``steer-pu run --artifact``).
    """
    from .methods import REGISTRY

    if method in REGISTRY:
        return CodeRef(kind="builtin", reference=method, version=__version__)
    if ":" not in method:
        return CodeRef(kind="artifact", reference=method, version=__version__)
    top = method.partition(":")[0].split(".")[0]
    dists = metadata.packages_distributions().get(top, [])
    return CodeRef(kind="plugin", reference=method, version=_package_version(dists[0]) if dists else "unknown")


# --------------------------------------------------------------------------- building from a run


def _sweep_results(scores, ids: list[str]) -> tuple[list[int], list[int], list[StrengthResult]]:
    from .run import summarise

    rows = summarise(scores)
    base = scores[0.0]
    results = [
        StrengthResult(
            m=row["m"],
            nll_pos=scores[row["m"]].nll_pos.tolist(),
            nll_neg=scores[row["m"]].nll_neg.tolist(),
            pref_logodds=row["pref_logodds"],
            util_logodds=row["util_logodds"],
            p=row["p"],
            u=row["u"],
            n=row["n"],
        )
        for row in rows
    ]
    return base.len_pos.astype(int).tolist(), base.len_neg.astype(int).tolist(), results


def _artifact_files(directory: Path) -> list[ArtifactFile]:
    return [
        ArtifactFile(name=p.name, sha256=sha256_file(p), bytes=p.stat().st_size)
        for p in sorted(directory.iterdir())
        if p.is_file() and not p.name.startswith(".")
    ]


def build_submission(run_dir: Path, name: str, artifact_prefix: str | None, n_boot: int = 1000, bootstrap_seed: int = 0):
    """A :class:`Submission` from a finished run directory, and the artifact folders to copy.

    ``artifact_prefix`` is the folder (relative to the submission file) that small artifacts
    are copied to; artifacts whose files are all at most ``MAX_COPIED_ARTIFACT_BYTES`` get a
    ``path`` there, larger ones are recorded by hash only (verify them with ``--retrain``).
    Returns (submission, {relative path: source folder}).
    """
    from .frontier import concept_scores, suite_score
    from .models import load_model
    from .run import RUN_FILE, load_scores, read_run_file
    from .suite import suite_info
    from .tasks import concept_dirs, concept_sha256, load_concepts

    run_dir = Path(run_dir)
    run_file = run_dir / RUN_FILE
    record = read_run_file(run_dir)
    config, provenance = record.config, record.provenance
    try:
        suite_dir = Path(config.suite_dir)
        all_concepts = [p.name for p in concept_dirs(suite_dir)]
    except SteerPuError as exc:
        raise SteerPuError(f"{run_file}: field 'config.suite_dir': {exc}") from None
    missing = sorted(set(all_concepts) - set(config.concepts))
    if missing:
        raise SteerPuError(
            f"{run_file}: field 'config.concepts': a submission covers the whole suite; the run lacks {', '.join(missing)}"
        )
    concepts = load_concepts(suite_dir, sorted(config.concepts))
    for concept in concepts:
        if record.concept_sha256.get(concept.name) != concept_sha256(concept.path):
            raise SteerPuError(
                f"{run_file}: field 'provenance.concepts.{concept.name}.sha256': the run used other task files "
                "than the suite has now; re-run on the current suite"
            )
    loaded = load_model(config.model)
    if loaded.weights_sha256 != provenance.get("model_weights_sha256"):
        raise SteerPuError(
            f"{run_file}: field 'provenance.model_weights_sha256': the run used other weights than {config.model} has now"
        )
    method_form = f"{config.method}-{config.form}"
    results: dict[str, ConceptResult] = {}
    sweeps = {}
    copies: dict[str, Path] = {}
    for concept in concepts:
        scores = load_scores(run_dir, concept.name, method_form)
        if sorted(scores) != list(config.strengths):
            have = ", ".join(f"{m:g}" for m in sorted(scores)) or "none"
            raise SteerPuError(
                f"{run_dir / 'scores' / concept.name / method_form}: strengths scored ({have}) differ from the run's "
                "grid; finish the run first (run the same command again)"
            )
        ids = [pair.id for pair in concept.test]
        for path in sorted((run_dir / "scores" / concept.name / method_form).glob("m=*.json")):
            if json.loads(path.read_text())["ids"] != ids:
                raise SteerPuError(f"{path}: field 'ids' differs from the test split of {concept.name}")
        sweeps[concept.name] = scores
        len_pos, len_neg, strengths = _sweep_results(scores, ids)
        cs = concept_scores(scores)
        artifact = None
        art_dir = run_dir / "artifacts" / concept.name / method_form
        if art_dir.is_dir():
            files = _artifact_files(art_dir)
            small = files and all(f.bytes <= MAX_COPIED_ARTIFACT_BYTES for f in files)
            rel = f"{artifact_prefix}/{concept.name}" if small and artifact_prefix else None
            if rel:
                copies[rel] = art_dir
            artifact = Artifact(path=rel, files=files) if files else None
        results[concept.name] = ConceptResult(
            pair_ids=ids, len_pos=len_pos, len_neg=len_neg, strengths=strengths, base_p=cs.base_p,
            fa=cs.fa, fa_gain=cs.fa_gain, fa_negative=cs.fa_negative, artifact=artifact,
        )  # fmt: skip
    score = suite_score(sweeps, n_boot=n_boot, seed=bootstrap_seed)
    info = suite_info(suite_dir)
    commit, dirty = git_state()
    libs = provenance.get("libraries", {})
    try:
        sub = Submission(
            schema_version=SCHEMA_VERSION,
            name=name,
            created_at=datetime.now(timezone.utc).replace(microsecond=0),
            method=MethodInfo(
                name=config.method, form=config.form, layer=config.layer, hyperparams=config.hyperparams,
                strengths=list(config.strengths), code=code_ref(config.method),
            ),  # fmt: skip
            model=model_info(loaded),
            suite=SuiteRef(name=suite_dir.resolve().name, version=info.version, sha256=info.sha256, concepts=info.concepts),
            environment=Environment(
                harness_version=provenance.get("harness_version", "unknown"),
                git_commit=commit,
                git_dirty=dirty,
                python=provenance.get("python", "unknown"),
                libraries=Libraries(
                    torch=libs.get("torch", "unknown"),
                    transformers=libs.get("transformers", "unknown"),
                    peft=libs.get("peft") or _package_version("peft"),
                ),
                device=provenance.get("device", "unknown"),
                dtype=provenance.get("dtype", "unknown"),
                threads=config.threads,
                token_budget=config.token_budget,
            ),
            seeds=Seeds(method=config.seed, bootstrap=bootstrap_seed),
            concepts=results,
            suite_score=SuiteScoreInfo(
                mean_fa=score.mean_fa, ci_low=score.ci_low, ci_high=score.ci_high, ci=score.ci, n_boot=score.n_boot
            ),
        )
    except ValidationError as exc:
        raise SteerPuError(f"{run_dir}: cannot make a submission: {first_error(exc)}") from None
    return sub, copies


def write_submission(sub: Submission, out: Path, copies: dict[str, Path], force: bool = False) -> None:
    """Write ``out`` and copy the artifact folders beside it; all or nothing.

    Artifacts go first into a scratch folder that is renamed into place; the JSON file, the
    commit point, is written last and atomically. On any error nothing new is left behind.
    """
    from .io import atomic_write_text

    out = Path(out)
    if out.exists() and not force:
        raise SteerPuError(f"{out}: already exists; pass --force to replace it")
    prefixes = {rel.split("/")[0] for rel in copies}
    if len(prefixes) > 1:
        raise SteerPuError(f"artifact paths must share one folder, got {sorted(prefixes)}")
    text = dump_submission(sub)
    out.parent.mkdir(parents=True, exist_ok=True)
    target = out.parent / prefixes.pop() if prefixes else None
    scratch = Path(tempfile.mkdtemp(prefix=f".{out.stem}-", dir=out.parent))
    old = None
    placed = False
    try:
        for rel, source in copies.items():
            shutil.copytree(source, scratch / rel.split("/", 1)[1], ignore=shutil.ignore_patterns(".*"))
        if target is not None:
            if target.exists():
                if not force:
                    raise SteerPuError(f"{target}: already exists; pass --force to replace it")
                old = target.with_name(f".{target.name}.old")
                shutil.rmtree(old, ignore_errors=True)
                target.rename(old)
            scratch.rename(target)
            placed = True
        atomic_write_text(out, text)
    except BaseException:
        if placed:
            shutil.rmtree(target, ignore_errors=True)
        if old is not None and old.exists():
            old.rename(target)
        raise
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
        if old is not None and old.exists():
            shutil.rmtree(old, ignore_errors=True)
