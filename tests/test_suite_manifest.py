"""The suite manifest: the committed one matches the files (so changing a task file without
bumping the version fails here), and `steer-pu tasks manifest` refuses unbumped changes."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from steer_pu.cli.main import app
from steer_pu.errors import SteerPuError
from steer_pu.paths import default_suite_dir
from steer_pu.suite.audit import Tokenizers, embedded_tokenizers
from steer_pu.suite.concepts import concept_sha256, load_concepts
from steer_pu.suite.manifest import (
    MANIFEST_NAME,
    bump_version,
    check_manifest,
    load_manifest,
    release_problems,
    suite_info,
    write_manifest,
)

runner = CliRunner()


def test_committed_manifest_matches_the_files():
    suite = default_suite_dir()
    problems = check_manifest(suite)
    assert problems == [], "task files changed without a new suite version: " + "; ".join(problems)
    manifest = load_manifest(suite)
    assert manifest.suite == "steer_pu"
    assert manifest.history[manifest.version] == manifest.sha256
    assert len(manifest.concepts) == 12 and len(manifest.files) == 36


def test_suite_sha256_is_the_sorted_sha256sum_listing():
    suite = default_suite_dir()
    files = sorted(
        p.relative_to(suite).as_posix()
        for p in suite.glob("*/*")
        if p.name in ("card.yaml", "train.jsonl", "test.jsonl")
    )
    listing = "".join(f"{hashlib.sha256((suite / f).read_bytes()).hexdigest()}  {f}\n" for f in files)
    assert hashlib.sha256(listing.encode()).hexdigest() == load_manifest(suite).sha256


def test_suite_info_cites_version_and_hashes():
    suite = default_suite_dir()
    manifest = load_manifest(suite)
    version, sha, concepts = suite_info(suite)
    assert (version, sha) == (manifest.version, manifest.sha256)
    assert concepts == {name: concept_sha256(suite / name) for name in manifest.concepts}


def test_shipped_splits_as_datasets():
    for concept in load_concepts(default_suite_dir()):
        for split, n in (("train", len(concept.train)), ("test", len(concept.test))):
            ds = concept.dataset(split)
            assert ds.num_rows == n and ds.column_names == ["id", "prompt", "positive", "negative"]
            assert ds[0] == concept.split(split)[0].model_dump()


@pytest.fixture()
def suite_copy(tmp_path) -> Path:
    copy = tmp_path / "steer_pu"
    shutil.copytree(default_suite_dir(), copy)
    return copy


def change_a_file(suite: Path) -> None:
    path = suite / "optimism" / "test.jsonl"
    record = json.loads(path.read_text().splitlines()[0])
    lines = path.read_text().splitlines()
    lines[0] = json.dumps({**record, "prompt": record["prompt"] + " Be honest."})
    path.write_text("\n".join(lines) + "\n")


def add_a_shortcut(suite: Path) -> None:
    """Every optimism positive ends in "!" (no negative does): punctuation alone then picks it."""
    for split in ("train", "test"):
        path = suite / "optimism" / f"{split}.jsonl"
        records = [json.loads(line) for line in path.read_text().splitlines()]
        path.write_text("".join(json.dumps({**r, "positive": r["positive"][:-1] + "!"}) + "\n" for r in records))


def test_refuses_changed_files_without_bump(suite_copy):
    before = (suite_copy / MANIFEST_NAME).read_bytes()
    version = load_manifest(suite_copy).version
    unchanged = runner.invoke(app, ["tasks", "manifest", "--suite", str(suite_copy)])
    assert unchanged.exit_code == 0, unchanged.output
    assert (suite_copy / MANIFEST_NAME).read_bytes() == before  # rewriting an unchanged suite is a no-op

    change_a_file(suite_copy)
    assert (
        f"optimism/test.jsonl: sha256 differs from the manifest (the file changed since version {version})"
        in check_manifest(suite_copy)
    )
    assert suite_info(suite_copy).version == f"{version}+modified"
    refused = runner.invoke(app, ["tasks", "manifest", "--suite", str(suite_copy)])
    assert refused.exit_code == 2
    assert f"the suite files changed since version {version}" in " ".join(refused.output.split())
    assert (suite_copy / MANIFEST_NAME).read_bytes() == before  # nothing written
    assert not [p for p in suite_copy.iterdir() if p.name.startswith(".")]

    # a cue only the positives carry is a surface shortcut: the release gate refuses it
    add_a_shortcut(suite_copy)
    gated = runner.invoke(app, ["tasks", "manifest", "--suite", str(suite_copy), "--bump", "minor"])
    assert gated.exit_code == 2 and "refusing to release version" in gated.output, gated.output
    assert (suite_copy / MANIFEST_NAME).read_bytes() == before  # nothing written
    manifest = write_manifest(suite_copy, "minor", gate=False)
    assert manifest == load_manifest(suite_copy)
    new = bump_version(version, "minor")
    assert manifest.version == new and set(manifest.history) == {*json.loads(before)["history"], new}
    assert manifest.history[version] == json.loads(before)["sha256"]
    assert check_manifest(suite_copy) == []
    again = runner.invoke(app, ["tasks", "manifest", "--suite", str(suite_copy), "--bump", "patch"])
    assert again.exit_code == 2 and "nothing changed since version" in again.output


def test_older_release_is_recognised(suite_copy):
    released = load_manifest(suite_copy).version
    original = (suite_copy / "optimism" / "test.jsonl").read_bytes()
    change_a_file(suite_copy)
    assert write_manifest(suite_copy, "patch", gate=False).version == bump_version(released, "patch")
    (suite_copy / "optimism" / "test.jsonl").write_bytes(original)
    assert suite_info(suite_copy).version == released


def test_new_suite_starts_at_1_0_0(tmp_path, suite_copy):
    (suite_copy / MANIFEST_NAME).unlink()
    assert suite_info(suite_copy).version == "unversioned"
    assert write_manifest(suite_copy).version == "1.0.0"
    assert check_manifest(suite_copy) == []


def test_broken_manifest_is_reported(suite_copy):
    (suite_copy / MANIFEST_NAME).write_text("{")
    assert check_manifest(suite_copy)[0].startswith("not valid JSON")
    with pytest.raises(SteerPuError, match="MANIFEST.json: not valid JSON"):
        write_manifest(suite_copy, "patch", gate=False)


@pytest.mark.parametrize(("part", "expected"), [("major", "2.0.0"), ("minor", "1.3.0"), ("patch", "1.2.4")])
def test_bump_version(part, expected):
    assert bump_version("1.2.3", part) == expected


# --------------------------------------------------------------------------- the release gate

WORDS = ("the cat sat on the mat and then it " * 4).split()


def words_only() -> Tokenizers:
    """One 'tokenizer' counting whitespace words: the gate's logic without loading a model's tokenizer."""
    return Tokenizers({"words": lambda text: len(text.split())}, ())


def write_gate_concept(root: Path, name: str, cue: str = "", card_extra: str = "") -> Path:
    """A 60/60-pair concept: clean (equal words, the positive longer in half the pairs), or with a planted
    ``cue``: "!" (function words), "long" (the positive 4 words longer), "opener" (first word)."""
    folder = root / name
    folder.mkdir(parents=True)
    (folder / "card.yaml").write_text(
        f"name: {name}\nversion: 1.0.0\nformat: open\ndescription: d\npositive_pole: p\nnegative_pole: n\n"
        f"source: tests\nlicense: Apache-2.0\nauthoring: tests\n{card_extra}"
    )
    for split in ("train", "test"):
        rows = []
        for i in range(60):
            pos_n, neg_n = (12 + i % 2, 12 + (i + 1) % 2) if cue != "long" else (16, 12)
            pos, neg = " ".join(WORDS[:pos_n]) + f" {i}.", " ".join(WORDS[:neg_n]) + f" {i}."
            if cue == "!":
                pos = pos[:-1] + "!"
            if cue == "opener":
                pos, neg = "Indeed " + pos, "Maybe " + neg
            rows.append({"id": f"{name}-{split}-{i:04d}", "prompt": f"Prompt {split} {i}.", "positive": pos,
                         "negative": neg})  # fmt: skip
        (folder / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return folder


@pytest.fixture()
def gate_suite(tmp_path) -> Path:
    root = tmp_path / "gate"
    write_gate_concept(root, "clean")
    write_manifest(root)
    return root


def test_release_gate_passes_a_clean_suite(gate_suite):
    assert release_problems(gate_suite, words_only()) == []
    write_gate_concept(gate_suite, "clean2")
    assert write_manifest(gate_suite, "minor", tokenizers=words_only()).version == "1.1.0"


def test_release_gate_names_each_concept_and_figure(gate_suite):
    before = (gate_suite / MANIFEST_NAME).read_bytes()
    write_gate_concept(gate_suite, "bang", "!")
    write_gate_concept(gate_suite, "long", "long")
    write_gate_concept(gate_suite, "opener", "opener")
    problems = release_problems(gate_suite, words_only())
    assert problems == [
        "bang: function_words classifier picks the positive in 1.00 of 60 test pairs (limit 0.60)",
        "long: length classifier (words tokens) picks the positive in 1.00 of 60 test pairs (limit 0.60)",
        "long: function_words classifier picks the positive in 1.00 of 60 test pairs (limit 0.60)",  # the, on
        "long: length control fails under the words tokenizer: 0% of pairs within 2 tokens (needs >= 90%), "
        "positive longer in 100% of unequal pairs (needs 40-60%), mean difference +4.00",
        "opener: first_word classifier picks the positive in 1.00 of 60 test pairs (limit 0.60)",
    ]
    with pytest.raises(SteerPuError, match="refusing to release version 1.1.0: 5 problem") as refused:
        write_manifest(gate_suite, "minor", tokenizers=words_only())
    assert all(line in str(refused.value) for line in problems)
    assert (gate_suite / MANIFEST_NAME).read_bytes() == before  # nothing written
    # rewriting the hashes of an unchanged version is not gated; a new suite's first manifest neither
    shutil.rmtree(gate_suite / "bang"), shutil.rmtree(gate_suite / "long"), shutil.rmtree(gate_suite / "opener")
    assert write_manifest(gate_suite).version == "1.0.0"


def test_allow_shortcuts_excuses_imported_data(gate_suite):
    write_gate_concept(gate_suite, "long", "long", card_extra="allow_shortcuts: imported as published by its authors\n")
    assert load_concepts(gate_suite, ["long"])[0].card.allow_shortcuts == "imported as published by its authors"
    assert release_problems(gate_suite, words_only()) == []
    assert write_manifest(gate_suite, "minor", tokenizers=words_only()).version == "1.1.0"


def test_cli_gate_under_the_embedded_tokenizers(gate_suite):
    write_gate_concept(gate_suite, "long", "long")
    refused = runner.invoke(app, ["tasks", "manifest", "--suite", str(gate_suite), "--bump", "minor"])
    assert refused.exit_code == 2, refused.output
    flat = " ".join(refused.output.split())
    assert "long: length classifier" in flat
    tokenizers = embedded_tokenizers()
    for model in tokenizers.counters:
        assert f"long: length control fails under the {model} tokenizer: 0% of pairs within 2 tokens" in flat
    assert "allow_shortcuts" in flat
    shutil.rmtree(gate_suite / "long")
    write_gate_concept(gate_suite, "fine")
    released = runner.invoke(app, ["tasks", "manifest", "--suite", str(gate_suite), "--bump", "minor"])
    assert released.exit_code == 0, released.output
    assert load_manifest(gate_suite).version == "1.1.0"
