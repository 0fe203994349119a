"""Validate a concept-task suite (or one concept folder), collecting every problem at once.

Each problem names its file and, where it applies, the line. Rules in :data:`INTEGRITY`
make a concept unusable; the others are the suite's quality bar (balance, length,
duplicates, size, the card's ``why_included`` rationale, manifest).
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

import yaml
from pydantic import ValidationError

from steer_pu.errors import SteerPuError, field_errors
from steer_pu.paths import default_suite_dir
from steer_pu.suite.concepts import (
    CONCEPT_FILES,
    MAX_CARD_BYTES,
    MAX_SPLIT_BYTES,
    SPLITS,
    Card,
    Pair,
    json_object_line,
    outside_of,
    read_bytes_checked,
)
from steer_pu.suite.keywords import keyword_hit, keyword_pattern

MIN_PAIRS = {"train": 100, "test": 100}  # suite 3.0.0: ±0.05 on p at 95 % needs ~100 test pairs
YES_FRACTION = (0.45, 0.55)
MAX_MEAN_WORDS_RATIO = 1.15  # mean words of the longer pole / the shorter, per split
MAX_PAIR_WORDS_RATIO = 2.0
MAX_COMPLETION_WORDS = 40
NEAR_DUP_CONTAINMENT = 0.6  # |A∩B| / min(|A|, |B|) over word 3-grams
NEAR_DUP_MIN_SHARED = 3  # fewer shared 3-grams than this is never a near-duplicate
FRAMING_MIN_PROMPTS, FRAMING_FRACTION = 5, 0.02  # a 3-gram this common is framing, not content
CHOICE_SUFFIX = "Answer with Yes or No."  # bare answers, as persona imports bring them
CHOICE_REASON_SUFFIX = "Answer Yes or No, then give your reason in one short sentence."
CHOICE_ANSWERS = frozenset({"Yes", "No"})
_REASONED = re.compile(r"^(Yes|No), \S")
INTEGRITY = frozenset({"encoding", "schema", "card", "id", "choice", "link"})
_SEMVER = re.compile(r"^\d+\.\d+\.\d+$")
_QUOTED = re.compile(r"[\"“](.+)[\"”]", re.S)
_NON_WORD = re.compile(r"[\W_]+")
_LINE_BREAKERS = frozenset("\u2028\u2029")  # str.splitlines() breaks on these: the loader would too


@dataclass(frozen=True)
class Problem:
    """One problem: ``file:line: reason`` (line is None for file-level problems)."""

    path: Path
    reason: str
    line: int | None = None
    rule: str = "schema"

    @property
    def where(self) -> str:
        return f"{self.path}:{self.line}" if self.line else str(self.path)

    def __str__(self) -> str:
        return f"{self.where}: {self.reason}"


@dataclass(frozen=True)
class SplitSummary:
    pairs: int
    words_positive: float
    words_negative: float
    yes_fraction: float | None  # choice tasks only


@dataclass(frozen=True)
class ConceptSummary:
    name: str
    format: str | None
    splits: dict[str, SplitSummary]


@dataclass(frozen=True)
class Report:
    problems: list[Problem]
    concepts: list[ConceptSummary]

    @property
    def ok(self) -> bool:
        return not self.problems


@dataclass(frozen=True)
class _Row:
    path: Path
    line: int
    pair: Pair


def choice_answer(completion: str) -> str | None:
    """The Yes or No a choice completion gives: bare (``Yes``) or reasoned (``Yes, <reason>``)."""
    if completion in CHOICE_ANSWERS:
        return completion
    match = _REASONED.match(completion)
    return match.group(1) if match else None


def choice_suffix(completion: str) -> str:
    """The prompt ending that asks for this style of answer."""
    return CHOICE_SUFFIX if completion in CHOICE_ANSWERS else CHOICE_REASON_SUFFIX


def words(text: str) -> int:
    return len(text.split())


def normalise(text: str) -> list[str]:
    """Lower-cased words with punctuation and whitespace stripped."""
    return _NON_WORD.sub(" ", text.lower()).split()


def varying_part(prompt: str, fmt: str | None) -> str:
    """The part of a prompt that differs between pairs: the quoted statement of a choice prompt."""
    match = _QUOTED.search(prompt) if fmt == "choice" else None
    return match.group(1) if match else prompt


def _key_line(text: str, key: str) -> int | None:
    for lineno, line in enumerate(text.splitlines(), start=1):
        if line.startswith(f"{key}:"):
            return lineno
    return None


def _read(path: Path, limit: int, what: str, problems: list[Problem], rule: str) -> bytes | None:
    """The file's bytes, or None with a problem (missing, a folder, a link leaving its folder, too large)."""
    try:
        return read_bytes_checked(path, limit, what)
    except SteerPuError as exc:
        problems.append(Problem(path, str(exc).removeprefix(f"{path}: "), rule=rule))
        return None


def check_card(path: Path, problems: list[Problem]) -> Card | None:
    """Validate ``card.yaml``, appending every problem; the card if it is usable."""
    data = _read(path, MAX_CARD_BYTES, "card file", problems, "card")
    if data is None:
        return None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        problems.append(Problem(path, f"not valid UTF-8 ({exc.reason} at byte {exc.start})", rule="encoding"))
        return None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problems.append(
            Problem(path, f"not valid YAML ({getattr(exc, 'problem', exc)})", mark.line + 1 if mark else None, "card")
        )
        return None
    except RecursionError:
        problems.append(Problem(path, "not valid YAML (nested too deeply)", rule="card"))
        return None
    if not isinstance(raw, dict):
        problems.append(Problem(path, "expected a mapping of card fields", rule="card"))
        return None
    card = None
    try:
        card = Card.model_validate(raw)
    except ValidationError as exc:
        for err, reason in zip(exc.errors(), field_errors(exc)):
            key = str(err["loc"][0]) if err["loc"] else ""
            problems.append(Problem(path, reason, _key_line(text, key), "card"))
    name, version = raw.get("name"), raw.get("version")
    if isinstance(name, str) and name != path.parent.name:
        problems.append(
            Problem(
                path,
                f"field 'name' is '{name}' but the folder is '{path.parent.name}'",
                _key_line(text, "name"),
                "card",
            )
        )
    if isinstance(version, str) and not _SEMVER.match(version):
        problems.append(
            Problem(path, f"field 'version': '{version}' is not MAJOR.MINOR.PATCH", _key_line(text, "version"), "card")
        )
    why = raw.get("why_included")
    if not (isinstance(why, str) and why.strip()):
        # A quality rule, not integrity: an import is usable before someone writes the rationale.
        problems.append(
            Problem(path, "field 'why_included' missing: say why the concept is in the suite", rule="rationale")
        )
    return card


def _check_text(path: Path, line: int, name: str, value: str, problems: list[Problem]) -> None:
    if value != value.strip():
        problems.append(Problem(path, f"field '{name}': leading or trailing whitespace", line, "encoding"))
    bad = sorted({c for c in value if c in _LINE_BREAKERS or (c != "\n" and unicodedata.category(c) == "Cc")})
    if bad:
        codes = ", ".join(f"U+{ord(c):04X}" for c in bad)
        problems.append(Problem(path, f"field '{name}': control character(s) {codes}", line, "encoding"))


def _check_pair(row: _Row, prefix: str, fmt: str | None, problems: list[Problem]) -> None:
    path, line, pair = row.path, row.line, row.pair
    for name, value in pair.model_dump().items():
        _check_text(path, line, name, value, problems)
    if not pair.id.startswith(prefix) or pair.id == prefix:
        problems.append(Problem(path, f"field 'id': '{pair.id}' must start with '{prefix}'", line, "id"))
    if fmt == "choice":
        answers = {choice_answer(pair.positive), choice_answer(pair.negative)}
        bare = {pair.positive in CHOICE_ANSWERS, pair.negative in CHOICE_ANSWERS}
        if answers != CHOICE_ANSWERS or len(bare) > 1:
            problems.append(
                Problem(
                    path,
                    "choice completions must be 'Yes' and 'No', or 'Yes, <reason>' and 'No, <reason>' "
                    f"(got '{pair.positive}' / '{pair.negative}')",
                    line,
                    "choice",
                )
            )
        elif not pair.prompt.endswith(suffix := choice_suffix(pair.positive)):
            problems.append(Problem(path, f"choice prompt must end with '{suffix}'", line, "prompt"))
        if not _QUOTED.search(pair.prompt):
            problems.append(Problem(path, "choice prompt has no quoted statement", line, "prompt"))
    counts = {pole: words(getattr(pair, pole)) for pole in ("positive", "negative")}
    for pole, n in counts.items():
        if n > MAX_COMPLETION_WORDS:
            problems.append(
                Problem(path, f"field '{pole}': {n} words (at most {MAX_COMPLETION_WORDS})", line, "length")
            )
    if min(counts.values()) and max(counts.values()) / min(counts.values()) > MAX_PAIR_WORDS_RATIO:
        problems.append(
            Problem(
                path,
                f"poles unbalanced: {counts['positive']} vs {counts['negative']} words "
                f"(ratio at most {MAX_PAIR_WORDS_RATIO:g})",
                line,
                "length",
            )
        )


def read_split(path: Path, problems: list[Problem]) -> list[_Row]:
    """Parse a JSONL split, appending a problem for every bad line and keeping the good ones."""
    data = _read(path, MAX_SPLIT_BYTES, "split file", problems, "schema")
    if data is None:
        return []
    lines = data.split(b"\n")
    if lines[-1] == b"":
        lines.pop()
    rows: list[_Row] = []
    for lineno, raw in enumerate(lines, start=1):
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            problems.append(
                Problem(path, f"not valid UTF-8 ({exc.reason} at column {exc.start + 1})", lineno, "encoding")
            )
            continue
        if not text.strip():
            problems.append(Problem(path, "blank line", lineno))
            continue
        try:
            record = json_object_line(text)
        except ValueError as exc:
            problems.append(Problem(path, str(exc), lineno))
            continue
        try:
            rows.append(_Row(path, lineno, Pair.model_validate(record)))
        except ValidationError as exc:
            problems.extend(Problem(path, reason, lineno) for reason in field_errors(exc))
    if not lines:
        problems.append(Problem(path, "no pairs"))
    return rows


def _concept_folders(suite: Path, problems: list[Problem]) -> list[Path]:
    """The suite's concept folders; one that is a link leaving the suite is a problem, not a concept."""
    folders = []
    for folder in sorted(p for p in suite.iterdir() if (p / "card.yaml").is_file()):
        if outside_of(folder, suite):
            problems.append(
                Problem(folder, f"a symbolic link to {folder.resolve()}, outside the suite folder {suite}", rule="link")
            )
        else:
            folders.append(folder)
    return folders


def _summarise(rows: list[_Row], fmt: str | None) -> SplitSummary:
    n = max(len(rows), 1)
    positive = sum(words(r.pair.positive) for r in rows) / n
    negative = sum(words(r.pair.negative) for r in rows) / n
    yes = sum(choice_answer(r.pair.positive) == "Yes" for r in rows) / n if rows and fmt == "choice" else None
    return SplitSummary(len(rows), positive, negative, yes)


def _check_split(path: Path, split: str, summary: SplitSummary, fmt: str | None, problems: list[Problem]) -> None:
    if summary.pairs < MIN_PAIRS[split]:
        problems.append(
            Problem(
                path,
                f"{summary.pairs} pairs (a suite concept needs at least {MIN_PAIRS[split]} {split} pairs)",
                rule="count",
            )
        )
    low, high = sorted((summary.words_positive, summary.words_negative))
    if low and high / low > MAX_MEAN_WORDS_RATIO:
        problems.append(
            Problem(
                path,
                f"poles unbalanced: mean {summary.words_positive:.1f} (positive) "
                f"vs {summary.words_negative:.1f} (negative) words, "
                f"more than {MAX_MEAN_WORDS_RATIO - 1:.0%} apart",
                rule="balance",
            )
        )
    if summary.yes_fraction is not None and not YES_FRACTION[0] <= summary.yes_fraction <= YES_FRACTION[1]:
        problems.append(
            Problem(
                path,
                f"positive is 'Yes' in {summary.yes_fraction:.0%} of pairs "
                f"(needs {YES_FRACTION[0]:.0%}–{YES_FRACTION[1]:.0%})",
                rule="balance",
            )
        )


def _check_concept(folder: Path, problems: list[Problem]) -> tuple[ConceptSummary, list[tuple[_Row, str | None]]]:
    for name in CONCEPT_FILES:
        if (folder / name).is_symlink() and outside_of(folder / name, folder):
            problems.append(Problem(folder / name, "a symbolic link outside the concept folder", rule="link"))
    for extra in sorted(p for p in folder.iterdir() if p.name not in CONCEPT_FILES and not p.name.startswith(".")):
        problems.append(
            Problem(
                extra, f"unexpected file in a concept folder (expected only {', '.join(CONCEPT_FILES)})", rule="layout"
            )
        )
    card = check_card(folder / "card.yaml", problems)
    fmt = card.format if card else None
    seen: dict[str, _Row] = {}
    summaries: dict[str, SplitSummary] = {}
    prompts: list[tuple[_Row, str | None]] = []
    for split in SPLITS:
        path = folder / f"{split}.jsonl"
        rows = read_split(path, problems)
        for row in rows:
            if row.pair.id in seen:
                first = seen[row.pair.id]
                problems.append(
                    Problem(
                        path,
                        f"field 'id': '{row.pair.id}' already used at {first.path.name}:{first.line}",
                        row.line,
                        "id",
                    )
                )
            seen.setdefault(row.pair.id, row)
            _check_pair(row, f"{folder.name}-{split}-", fmt, problems)
            if card and card.keywords and keyword_hit(row.pair.negative, card.keywords):
                found = keyword_pattern(card.keywords).search(row.pair.negative).group(0)
                problems.append(
                    Problem(path, f"field 'negative' mentions '{found}', a keyword of the card", row.line, "keyword")
                )
            prompts.append((row, fmt))
        summaries[split] = _summarise(rows, fmt)
        if path.is_file():
            _check_split(path, split, summaries[split], fmt, problems)
    return ConceptSummary(folder.name, fmt, summaries), prompts


def _shingles(tokens: list[str]) -> set[tuple[str, ...]]:
    return {tuple(tokens[i : i + 3]) for i in range(len(tokens) - 2)}


def check_duplicates(prompts: list[tuple[_Row, str | None]], problems: list[Problem]) -> None:
    """Exact (normalised) and near-duplicate prompts, via an inverted index of word 3-grams.

    Only the varying part is compared (a choice prompt's quoted statement), and 3-grams
    shared by many prompts (framing such as "write a sentence about") are ignored.
    """
    tokens = [normalise(varying_part(row.pair.prompt, fmt)) for row, fmt in prompts]
    shingles = [_shingles(t) for t in tokens]
    frequency = Counter(g for s in shingles for g in s)
    framing_at = max(FRAMING_MIN_PROMPTS, FRAMING_FRACTION * len(prompts))
    framing = {g for g, n in frequency.items() if n >= framing_at}
    shingles = [s - framing for s in shingles]
    exact: dict[str, int] = {}
    index: dict[tuple[str, ...], list[int]] = defaultdict(list)
    for j, ((row, _), toks, grams) in enumerate(zip(prompts, tokens, shingles)):
        key = "".join(toks)
        if key in exact:
            other = prompts[exact[key]][0]
            problems.append(Problem(row.path, f"prompt duplicates {_loc(other, row)}", row.line, "duplicate"))
        else:
            exact[key] = j
            shared = Counter(i for g in grams for i in index[g])
            for i, n in sorted(shared.items()):
                containment = n / min(len(grams), len(shingles[i]))
                if n >= NEAR_DUP_MIN_SHARED and containment > NEAR_DUP_CONTAINMENT:
                    other = prompts[i][0]
                    problems.append(
                        Problem(
                            row.path,
                            f"prompt near-duplicates {_loc(other, row)} ({containment:.0%} of word 3-grams shared)",
                            row.line,
                            "duplicate",
                        )
                    )
                    break
        for g in grams:
            index[g].append(j)


def _loc(other: _Row, row: _Row) -> str:
    name = other.path.name if other.path.parent == row.path.parent else f"{other.path.parent.name}/{other.path.name}"
    return f"{name}:{other.line}"


def validate(path: Path | None = None) -> Report:
    """Validate a suite folder (every concept, across concepts, manifest) or one concept folder."""
    from steer_pu.suite.manifest import MANIFEST_NAME, check_manifest

    path = Path(path) if path is not None else default_suite_dir()
    if not path.is_dir():
        raise SteerPuError(f"{path}: not a folder (give a suite folder or a concept folder)")
    problems: list[Problem] = []
    is_concept = (path / "card.yaml").is_file()
    folders = [path] if is_concept else _concept_folders(path, problems)
    if not is_concept:
        linked = {p.path for p in problems if p.rule == "link"}
        for sub in sorted(
            p for p in path.iterdir() if p.is_dir() and not p.name.startswith(".") and p not in folders + [*linked]
        ):
            problems.append(Problem(sub, "folder has no card.yaml (not a concept)", rule="layout"))
        if not folders:
            problems.append(Problem(path, "no concept folders (none holds a card.yaml)", rule="layout"))
    summaries, prompts = [], []
    for folder in folders:
        summary, concept_prompts = _check_concept(folder, problems)
        summaries.append(summary)
        prompts.extend(concept_prompts)
    check_duplicates(prompts, problems)
    if not is_concept and folders and not any(p.rule == "link" for p in problems):
        problems.extend(Problem(path / MANIFEST_NAME, reason, rule="manifest") for reason in check_manifest(path))
    return Report(_in_file_order(problems), summaries)


def _in_file_order(problems: list[Problem]) -> list[Problem]:
    """Files in the order first met; within a file by line, file-level problems last."""
    order: dict[Path, int] = {}
    for p in problems:
        order.setdefault(p.path, len(order))
    return sorted(problems, key=lambda p: (order[p.path], p.line or float("inf")))
