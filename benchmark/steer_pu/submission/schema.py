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
from typing import Annotated, Any, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    JsonValue,
    StringConstraints,
    field_validator,
    model_validator,
)

from steer_pu.suite.concepts import CONCEPT_NAME_PATTERN

SCHEMA_VERSION = 1
SCHEMA_FILE = "schema.json"
MAX_SUBMISSION_BYTES = 16 * 2**20  # a full-suite entry is ~0.5 MB; anything far larger is refused unread
MAX_COPIED_ARTIFACT_BYTES = 2**20  # per file: vectors and r=4 LoRA are copied beside the file, full-rank deltas not
MAX_ARTIFACT_BYTES = 512 * 2**20  # verify refuses to hash or load anything larger
# Free-form hyper-parameters are bounded too: the built-ins use a handful of short scalars
# (the committed entries: at most 9 keys, depth 1, strings under 40 characters).
MAX_HYPERPARAMS = 256  # keys of method.hyperparams
MAX_HYPERPARAM_DEPTH = 8  # nested lists / objects inside one value
MAX_HYPERPARAM_ITEMS = 4096  # values in all, nested ones included
MAX_HYPERPARAM_CHARS = 4096  # characters of one string value
MAX_CONCEPTS = 1000
MAX_PAIRS = 100_000  # test pairs of one concept (the suite's have 50; verify compares them with the suite first)
MAX_INT_DIGITS = 20  # a JSON integer longer than this is refused while parsing (no field needs more than 2**63)

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
ConceptName = Annotated[str, StringConstraints(pattern=CONCEPT_NAME_PATTERN)]  # the suite's own rule
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
    hyperparams: Annotated[dict[ShortText, JsonValue], Field(max_length=MAX_HYPERPARAMS)]
    strengths: Annotated[list[StrengthValue], Field(min_length=1, max_length=16)]  # the declared grid, 0 included
    code: CodeRef

    @field_validator("hyperparams")
    @classmethod
    def _bounded(cls, hyperparams: dict[str, Any]) -> dict[str, Any]:
        items = 0
        stack: list[tuple[Any, int, str]] = [(v, 1, str(k)) for k, v in hyperparams.items()]
        while stack:  # iterative: a deep value cannot exhaust the interpreter's stack here
            value, depth, where = stack.pop()
            items += 1
            if items > MAX_HYPERPARAM_ITEMS:
                raise ValueError(f"more than {MAX_HYPERPARAM_ITEMS} values in all (at most {MAX_HYPERPARAM_ITEMS})")
            if isinstance(value, str) and len(value) > MAX_HYPERPARAM_CHARS:
                raise ValueError(f"{where}: a string of {len(value)} characters (at most {MAX_HYPERPARAM_CHARS})")
            children = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
            for key, child in children:
                if depth >= MAX_HYPERPARAM_DEPTH:
                    raise ValueError(
                        f"{where}: nested more than {MAX_HYPERPARAM_DEPTH} deep (at most {MAX_HYPERPARAM_DEPTH})"
                    )
                stack.append((child, depth + 1, f"{where}.{key}"))
        return hyperparams

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
    concepts: Annotated[dict[ConceptName, Sha256], Field(min_length=1, max_length=MAX_CONCEPTS)]


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
    nll_pos: Annotated[list[Nll], Field(max_length=MAX_PAIRS)]
    nll_neg: Annotated[list[Nll], Field(max_length=MAX_PAIRS)]
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
    def _safe_path(self) -> Artifact:
        if self.path is not None and ".." in self.path.split("/"):
            raise ValueError("path must stay inside the submission's folder (no '..')")
        if len({f.name for f in self.files}) != len(self.files):
            raise ValueError("files: duplicate file names")
        return self


GENERATIONS_VERSION = 1  # version of the optional per-concept ``generations`` section
MAX_GENERATION_PROMPTS = 16  # K of ``run --generate K``
MAX_NEW_TOKENS = 64  # per continuation (the harness generates 48)
MAX_GENERATED_CHARS = 2000  # of one decoded continuation


class GeneratedText(_Record):
    """One greedy continuation and its judge-free text statistics (steer_pu.analysis.text_stats)."""

    token_ids: Annotated[
        list[Annotated[int, Field(strict=True, ge=0, le=2**31)]], Field(min_length=1, max_length=MAX_NEW_TOKENS)
    ]
    text: Annotated[str, StringConstraints(max_length=MAX_GENERATED_CHARS)]  # untrusted: shown as text only
    fluency_nll: Annotated[float, Field(strict=True, allow_inf_nan=False, ge=0.0, le=1e4)]
    repetition: UnitFloat | None  # None: fewer than 3 words
    distinct2: UnitFloat | None  # None: fewer than 2 words
    keyword_hit: bool | None  # None: the concept's card lists no keywords


class StrengthGenerations(_Record):
    m: StrengthValue
    samples: Annotated[list[GeneratedText], Field(min_length=1, max_length=MAX_GENERATION_PROMPTS)]


class Generations(_Record):
    """Greedy continuations of K test prompts at every strength (``run --generate K``).

    ``sha256`` covers the prompts, strengths, token ids and texts (:func:`generations_sha256`): the
    offline check recomputes it and the statistics that need no model; ``verify`` regenerates
    the tokens and compares them token for token.
    """

    version: Literal[1]
    max_new_tokens: Annotated[int, Field(strict=True, ge=1, le=MAX_NEW_TOKENS)]
    pair_ids: Annotated[list[ShortText], Field(min_length=1, max_length=MAX_GENERATION_PROMPTS)]
    strengths: Annotated[list[StrengthGenerations], Field(min_length=1, max_length=16)]
    sha256: Sha256

    @model_validator(mode="after")
    def _shapes(self) -> Generations:
        if len(set(self.pair_ids)) != len(self.pair_ids):
            raise ValueError("pair_ids must be unique")
        for s in self.strengths:
            if len(s.samples) != len(self.pair_ids):
                raise ValueError(f"strength m={s.m:g}: {len(s.samples)} samples for {len(self.pair_ids)} pair_ids")
            for sample in s.samples:
                if len(sample.token_ids) > self.max_new_tokens:
                    raise ValueError(f"strength m={s.m:g}: a sample has more than max_new_tokens tokens")
        return self


def generations_sha256(pair_ids: list[str], strengths: list[tuple[float, list[list[int]], list[str]]]) -> str:
    """sha256 of a generations section's content: pair ids and, per strength, the token ids and texts."""
    record = {
        "pair_ids": pair_ids,
        "strengths": [{"m": m, "token_ids": ids, "texts": texts} for m, ids, texts in strengths],
    }
    return hashlib.sha256(json.dumps(record, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


class ConceptResult(_Record):
    pair_ids: Annotated[list[ShortText], Field(min_length=1, max_length=MAX_PAIRS)]
    len_pos: Annotated[list[Count], Field(max_length=MAX_PAIRS)]
    len_neg: Annotated[list[Count], Field(max_length=MAX_PAIRS)]
    strengths: Annotated[list[StrengthResult], Field(min_length=1, max_length=16)]
    base_p: UnitFloat
    fa: UnitFloat
    fa_gain: UnitFloat
    fa_negative: UnitFloat | None
    artifact: Artifact | None
    generations: Generations | None = None  # optional (run --generate K); absent in older entries

    @model_validator(mode="after")
    def _shapes(self) -> ConceptResult:
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
    schema_version: Literal[1]  # an integer: 1.0, "1" and true are refused (_integer_version)
    name: Slug
    created_at: AwareDatetime
    method: MethodInfo
    model: ModelInfo
    suite: SuiteRef
    environment: Environment
    seeds: Seeds
    concepts: Annotated[dict[ConceptName, ConceptResult], Field(min_length=1, max_length=MAX_CONCEPTS)]
    suite_score: SuiteScoreInfo

    @field_validator("schema_version", mode="before")
    @classmethod
    def _integer_version(cls, version: Any) -> Any:
        if type(version) is not int:
            raise ValueError(f"{version!r} is not an integer schema version")
        return version

    @model_validator(mode="after")
    def _consistent(self) -> Submission:
        if set(self.concepts) != set(self.suite.concepts):
            raise ValueError("concepts must cover exactly the concepts of suite.concepts (the whole suite)")
        for name, result in self.concepts.items():
            if [s.m for s in result.strengths] != self.method.strengths:
                raise ValueError(f"concepts.{name}.strengths: the strengths differ from the declared method.strengths")
            if result.generations is not None and [s.m for s in result.generations.strengths] != self.method.strengths:
                raise ValueError(
                    f"concepts.{name}.generations.strengths: the strengths differ from the declared method.strengths"
                )
        if self.method.layer >= self.model.num_layers:
            raise ValueError(
                f"method.layer {self.method.layer} is not a layer of a {self.model.num_layers}-layer model"
            )
        return self


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
    data = sub.model_dump(mode="json")
    for concept in data["concepts"].values():  # the optional section is absent, not null, when not made
        if concept.get("generations") is None:
            concept.pop("generations", None)
    return _compact_json(data) + "\n"


def json_schema() -> dict[str, Any]:
    schema = Submission.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = f"https://steer-pu/submissions/schema-v{SCHEMA_VERSION}.json"
    return schema


def schema_text() -> str:
    """The exported JSON Schema as committed in ``submissions/schema.json``."""
    return json.dumps(json_schema(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"
