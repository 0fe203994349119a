"""Concept tasks: a card plus train/test splits of polarity pairs, loaded with strict checks.

Layout: ``tasks/<suite>/<concept>/{card.yaml,train.jsonl,test.jsonl}``; each JSONL line is
``{"id", "prompt", "positive", "negative"}``. Any malformed file raises
:class:`~steer_pu.errors.SteerPuError` naming the file, line and field.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError, ValidationInfo, field_validator

from steer_pu.errors import SteerPuError, first_field_error
from steer_pu.io import hash_file_into

SPLITS = ("train", "test")
# Size limits, set from the suite's own maxima with a wide margin (suite 2.0.0: longest prompt
# 227 characters, longest completion 190, longest card field ~600, largest split file 44 KB):
# ~18x, ~10x and ~13x those; a split file may be 1500x larger. They keep a hostile file from
# costing minutes and gigabytes in the quality checks (a 50 MB prompt took 88 s and 2.8 GB in
# the duplicate check); the importers apply the same prompt and completion limits.
MAX_PROMPT_CHARS = 4_000
MAX_COMPLETION_CHARS = 2_000
MAX_CARD_FIELD_CHARS = 8_000
MAX_ID_CHARS = 200
MAX_SPLIT_BYTES = 64 * 2**20
MAX_CARD_BYTES = 64 * 2**10
# The one rule for a concept's name: the folder, the card's name and a submission's concept keys
# (steer_pu.submission.schema uses this pattern too).
CONCEPT_NAME_PATTERN = r"^[a-z0-9][a-z0-9_]{0,63}$"
CONCEPT_NAME_RULE = "1-64 characters of a-z, 0-9 and _, starting with a letter or digit"
Text = Annotated[str, StringConstraints(min_length=1, strip_whitespace=False)]
CardText = Annotated[str, StringConstraints(min_length=1, max_length=MAX_CARD_FIELD_CHARS)]
Keyword = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z' -]{0,39}$")]  # lower case, one word or phrase


class Pair(BaseModel):
    """One polarity pair: a prompt, its concept-positive and concept-negative completions."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    id: Annotated[str, StringConstraints(min_length=1, max_length=MAX_ID_CHARS)]
    prompt: Annotated[str, StringConstraints(min_length=1, max_length=MAX_PROMPT_CHARS)]
    positive: Annotated[str, StringConstraints(min_length=1, max_length=MAX_COMPLETION_CHARS)]
    negative: Annotated[str, StringConstraints(min_length=1, max_length=MAX_COMPLETION_CHARS)]

    @field_validator("negative")
    @classmethod
    def _distinct_poles(cls, negative: str, info: ValidationInfo) -> str:
        if negative == info.data.get("positive"):
            raise ValueError("identical to 'positive': the two poles of a pair must differ")
        return negative


class Card(BaseModel):
    """What a concept is, its two poles, and where its text came from."""

    model_config = ConfigDict(extra="forbid")
    name: str
    version: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    format: Literal["choice", "open", "presence"]
    description: CardText
    positive_pole: CardText
    negative_pole: CardText
    source: CardText
    license: CardText
    authoring: CardText
    why_included: Annotated[str, StringConstraints(max_length=MAX_CARD_FIELD_CHARS)] | None = None
    # imported third-party data whose surface shortcuts or length imbalance the suite keeps on purpose:
    # the reason, which lets `steer-pu tasks manifest --bump` release it (tasks/README.md)
    allow_shortcuts: CardText | None = None
    # topic concepts: words whose appearance in a generation counts as the concept showing up
    # (steer_pu.analysis.text_stats.keyword_hit; whole words, plurals included)
    keywords: Annotated[list[Keyword], Field(min_length=1, max_length=64)] | None = None

    @field_validator("name")
    @classmethod
    def _name(cls, name: str) -> str:
        if not re.match(CONCEPT_NAME_PATTERN, name):
            raise ValueError(f"'{name}' is not a concept name: {CONCEPT_NAME_RULE}")
        return name

    @field_validator("negative_pole")
    @classmethod
    def _distinct_poles(cls, negative: str, info: ValidationInfo) -> str:
        if negative.strip() == str(info.data.get("positive_pole", "")).strip():
            raise ValueError("identical to 'positive_pole': the two poles must differ")
        return negative


def no_duplicate_keys(pairs: list[tuple[str, object]]) -> dict[str, object]:
    """``json.loads`` hook: a key given twice is an error (json would keep the last silently)."""
    out: dict[str, object] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"duplicate key '{key}'")
        out[key] = value
    return out


def json_object_line(line: str) -> dict:
    """One JSONL line as a JSON object; any other content raises ValueError with the reason
    (invalid JSON, a duplicate key, an over-long integer, nesting too deep, not an object)."""
    try:
        record = json.loads(line, object_pairs_hook=no_duplicate_keys)
    except json.JSONDecodeError as exc:
        raise ValueError(f"invalid JSON ({exc.msg}, column {exc.colno})") from None
    except ValueError as exc:  # a duplicate key, an over-long integer
        raise ValueError(f"invalid JSON ({exc})") from None
    except RecursionError:
        raise ValueError("invalid JSON (nested too deeply)") from None
    if not isinstance(record, dict):
        raise ValueError(f"expected a JSON object, got {type(record).__name__}")
    return record


def read_bytes_checked(path: Path, limit: int, what: str) -> bytes:
    """A regular file's bytes, at most ``limit`` of them; every failure a SteerPuError naming the file."""
    path = Path(path)
    if path.is_symlink() or (path.exists() and not path.is_file()):
        kind = "a symbolic link" if path.is_symlink() else "a folder" if path.is_dir() else "a special file"
        raise SteerPuError(f"{path}: not a regular file ({kind}); a {what} must be a plain file")
    try:
        size = path.stat().st_size
        if size > limit:
            raise SteerPuError(f"{path}: {size} bytes; a {what} is at most {limit} bytes")
        return path.read_bytes()
    except FileNotFoundError:
        raise SteerPuError(f"{path}: {what} missing") from None
    except OSError as exc:
        raise SteerPuError(f"{path}: cannot read ({exc.strerror or exc})") from None


@dataclass(frozen=True)
class Concept:
    path: Path
    card: Card
    train: list[Pair] = field(repr=False)
    test: list[Pair] = field(repr=False)

    @property
    def name(self) -> str:
        return self.card.name

    def split(self, name: str) -> list[Pair]:
        if name not in SPLITS:
            raise SteerPuError(f"unknown split '{name}': use one of {', '.join(SPLITS)}")
        return self.train if name == "train" else self.test

    def dataset(self, split: str):
        """The split as a ``datasets.Dataset`` (columns id, prompt, positive, negative)."""
        import datasets

        return datasets.Dataset.from_list([pair.model_dump() for pair in self.split(split)])


def load_card(path: Path) -> Card:
    data = read_bytes_checked(path, MAX_CARD_BYTES, "card file")
    try:
        raw = yaml.safe_load(data.decode("utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise SteerPuError(f"{path}: not valid UTF-8 YAML ({' '.join(str(exc).split())})") from None
    except RecursionError:
        raise SteerPuError(f"{path}: YAML nested too deeply") from None
    if not isinstance(raw, dict):
        raise SteerPuError(f"{path}: expected a mapping of card fields")
    try:
        card = Card.model_validate(raw)
    except ValidationError as exc:
        raise SteerPuError(f"{path}: {first_field_error(exc)}") from None
    if card.name != path.parent.name:
        raise SteerPuError(f"{path}: field 'name' is '{card.name}' but the folder is '{path.parent.name}'")
    return card


def load_pairs(path: Path) -> list[Pair]:
    """Read a JSONL split; every record is validated and ids must be unique."""
    data = read_bytes_checked(path, MAX_SPLIT_BYTES, "split file")
    try:
        lines = data.decode("utf-8").splitlines()
    except UnicodeDecodeError as exc:
        raise SteerPuError(f"{path}: not valid UTF-8 ({exc.reason} at byte {exc.start})") from None
    pairs: list[Pair] = []
    seen: dict[str, int] = {}
    for lineno, line in enumerate(lines, start=1):
        if not line.strip():
            raise SteerPuError(f"{path}:{lineno}: blank line")
        try:
            record = json_object_line(line)
        except ValueError as exc:
            raise SteerPuError(f"{path}:{lineno}: {exc}") from None
        try:
            pair = Pair.model_validate(record)
        except ValidationError as exc:
            raise SteerPuError(f"{path}:{lineno}: {first_field_error(exc)}") from None
        if pair.id in seen:
            raise SteerPuError(f"{path}:{lineno}: field 'id': '{pair.id}' already used on line {seen[pair.id]}")
        seen[pair.id] = lineno
        pairs.append(pair)
    if not pairs:
        raise SteerPuError(f"{path}: no pairs")
    return pairs


def load_concept(path: Path) -> Concept:
    path = Path(path)
    if not path.is_dir():
        raise SteerPuError(f"{path}: concept folder not found")
    train, test = load_pairs(path / "train.jsonl"), load_pairs(path / "test.jsonl")
    train_ids = {pair.id for pair in train}
    for lineno, pair in enumerate(test, start=1):
        if pair.id in train_ids:
            raise SteerPuError(
                f"{path / 'test.jsonl'}:{lineno}: field 'id': '{pair.id}' is also a train pair id (train.jsonl)"
            )
    return Concept(path=path, card=load_card(path / "card.yaml"), train=train, test=test)


def outside_of(folder: Path, parent: Path) -> bool:
    """Whether ``folder`` (a link, or below one) resolves outside ``parent``."""
    return not Path(folder).resolve().is_relative_to(Path(parent).resolve())


def concept_dirs(suite_dir: Path) -> list[Path]:
    """The suite's concept folders (those holding a card.yaml); one linked outside the suite is an error."""
    suite_dir = Path(suite_dir)
    if not suite_dir.is_dir():
        raise SteerPuError(f"{suite_dir}: task suite folder not found")
    found = sorted(p for p in suite_dir.iterdir() if (p / "card.yaml").is_file())
    for folder in found:
        if outside_of(folder, suite_dir):
            raise SteerPuError(f"{folder}: a symbolic link to {folder.resolve()}, outside the suite folder {suite_dir}")
        for name in CONCEPT_FILES:
            if (folder / name).is_symlink() and outside_of(folder / name, folder):
                raise SteerPuError(f"{folder / name}: a symbolic link outside the concept folder")
    return found


def load_concepts(suite_dir: Path, names: list[str] | None = None) -> list[Concept]:
    """Load the named concepts of a suite (all of them when ``names`` is None)."""
    available = {p.name: p for p in concept_dirs(suite_dir)}
    if names is None:
        names = sorted(available)
    unknown = [n for n in names if n not in available]
    if unknown:
        raise SteerPuError(
            f"unknown concept(s) {', '.join(unknown)} in {suite_dir}; "
            f"available: {', '.join(sorted(available)) or 'none'}"
        )
    return [load_concept(available[n]) for n in names]


CONCEPT_FILES = ("card.yaml", "train.jsonl", "test.jsonl")


def concept_sha256(path: Path) -> str:
    """sha256 over a concept's three files (name and bytes of each), in a fixed order."""
    digest = hashlib.sha256()
    for name in CONCEPT_FILES:
        digest.update(name.encode() + b"\0")
        hash_file_into(digest, Path(path) / name)
        digest.update(b"\0")
    return digest.hexdigest()
