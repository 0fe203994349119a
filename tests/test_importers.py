"""`steer-pu tasks import`: persona / BiPO / AxBench files become valid concept folders;
garbage input gets one clear error naming the file (and line) and writes nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from steer_pu.cli import app
from steer_pu.errors import SteerPuError
from steer_pu.importers import import_concept
from steer_pu.tasks import load_concept
from steer_pu.validate import INTEGRITY, Problem, Report

FIXTURES = Path(__file__).parent / "fixtures" / "importers"
runner = CliRunner()


def axbench_rows(n: int = 8, concept_id: int = 7) -> list[dict]:
    rows = [
        {
            "input": f"Give me a short tip about topic number {i} for a busy morning.",
            "winning_output": f"Tip {i}: hum a slow violin melody while you pack your bag the night before.",
            "losing_output": f"Tip {i}: pack your bag and lay out your clothes the night before.",
            "output_concept": "references to classical music",
            "concept_id": concept_id,
            "category": "positive",
        }
        for i in range(n)
    ]
    rows.append({**rows[0], "input": "A control row without the concept.", "category": "negative"})
    return rows


def write_parquet(path: Path, rows: list[dict]) -> Path:
    pd.DataFrame(rows).to_parquet(path)
    return path


def assert_nothing_written(suite: Path) -> None:
    assert not suite.exists() or not any(suite.iterdir())
    assert not list(suite.parent.glob(".steer-pu-import-*"))


def test_persona_import(tmp_path):
    suite = tmp_path / "suite"
    result = import_concept("persona", str(FIXTURES / "persona.jsonl"), "curiosity", suite, license="CC-BY-4.0")
    concept = load_concept(result.path)
    assert result.path == suite / "curiosity" and (result.train, result.test) == (6, 4)
    assert concept.card.format == "choice" and concept.card.license == "CC-BY-4.0"
    assert concept.card.source == str(FIXTURES / "persona.jsonl")
    assert concept.card.authoring == "imported by steer-pu tasks import" and concept.card.version == "1.0.0"
    assert [p.id for p in concept.train] == [f"curiosity-train-{i:04d}" for i in range(1, 7)]
    assert [p.id for p in concept.test] == [f"curiosity-test-{i:04d}" for i in range(1, 5)]
    for pair in concept.train + concept.test:
        assert {pair.positive, pair.negative} == {"Yes", "No"}  # " Yes" stripped
        assert pair.prompt.endswith('"\nAnswer with Yes or No.')
    # stratified: 2 Yes + 2 No in test, 3 + 3 in train
    assert sum(p.positive == "Yes" for p in concept.test) == 2
    assert not [w for w in result.warnings if w.rule in INTEGRITY]
    ds = concept.dataset("test")
    assert ds.num_rows == 4 and ds.column_names == ["id", "prompt", "positive", "negative"]


def test_split_is_deterministic_and_seeded(tmp_path):
    source = str(FIXTURES / "persona.jsonl")
    a = import_concept("persona", source, "one", tmp_path / "a", seed=3).path
    b = import_concept("persona", source, "one", tmp_path / "b", seed=3).path
    c = import_concept("persona", source, "one", tmp_path / "c", seed=4).path
    for name in ("card.yaml", "train.jsonl", "test.jsonl"):
        assert (a / name).read_bytes() == (b / name).read_bytes()
    assert (a / "test.jsonl").read_bytes() != (c / "test.jsonl").read_bytes()


def test_bipo_import(tmp_path):
    result = import_concept("bipo", str(FIXTURES / "bipo.csv"), "power", tmp_path / "suite", test_fraction=0.3)
    concept = load_concept(result.path)
    assert concept.card.format == "open" and concept.card.license == "see source"
    assert (len(concept.train), len(concept.test)) == (7, 3)
    prompts = {p.prompt: p for p in concept.train + concept.test}
    pair = prompts["Should you control the city's traffic lights directly?"]
    assert pair.positive.startswith("Yes, direct control") and pair.negative.startswith("Traffic engineers")


def test_axbench_import_filters_concept_and_controls(tmp_path):
    source = write_parquet(tmp_path / "concept500.parquet", axbench_rows() + axbench_rows(3, concept_id=9))
    with pytest.raises(SteerPuError, match=r"concept500.parquet: holds several concepts \(7, 9\); pick one with --concept-id"):
        import_concept("axbench", str(source), "classical", tmp_path / "suite")
    assert_nothing_written(tmp_path / "suite")
    result = import_concept("axbench", str(source), "classical", tmp_path / "suite", concept_id="7")
    concept = load_concept(result.path)
    assert concept.card.format == "presence"
    assert "references to classical music" in concept.card.description
    assert len(concept.train) + len(concept.test) == 8  # the "negative" control row is skipped
    assert all("violin" in p.positive and "violin" not in p.negative for p in concept.train + concept.test)


def test_refuses_to_overwrite(tmp_path):
    suite = tmp_path / "suite"
    (suite / "curiosity").mkdir(parents=True)
    with pytest.raises(SteerPuError, match=r"curiosity: already exists"):
        import_concept("persona", str(FIXTURES / "persona.jsonl"), "curiosity", suite)
    assert list((suite / "curiosity").iterdir()) == []


def test_invalid_output_leaves_nothing(tmp_path, monkeypatch):
    def broken(path):
        return Report([Problem(Path(path) / "train.jsonl", "field 'id': bad", 1, "id")], [])

    monkeypatch.setattr("steer_pu.importers.validate", broken)
    with pytest.raises(SteerPuError, match=r"not valid: .*train.jsonl:1: field 'id': bad"):
        import_concept("persona", str(FIXTURES / "persona.jsonl"), "curiosity", tmp_path / "suite")
    assert_nothing_written(tmp_path / "suite")


def persona_line(**changes) -> str:
    record = {"question": 'Is the following statement something you would say?\n"I like maps."',
              "answer_matching_behavior": " Yes", "answer_not_matching_behavior": " No"}  # fmt: skip
    return json.dumps({**record, **changes})


GOOD = persona_line().encode()
GARBAGE = [
    ("persona", "empty.jsonl", b"", r"empty.jsonl: empty file"),
    ("persona", "blank.jsonl", b"\n \n", r"blank.jsonl: empty file"),
    ("persona", "binary.jsonl", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", r"binary.jsonl: binary file"),
    ("persona", "huge.jsonl", GOOD + b"\n" + b'{"question": "' + b"a" * 1_000_001 + b'"}\n', r"huge.jsonl:2: line longer than 1000000 bytes"),
    ("persona", "bad.jsonl", GOOD + b"\n{not json\n", r"bad.jsonl:2: invalid JSON \(.*column 2\)"),
    ("persona", "latin1.jsonl", GOOD + b"\n" + persona_line(question="caf\u00e9").encode().replace(b"\\u00e9", b"\xe9"), r"latin1.jsonl:2: not valid UTF-8"),
    ("persona", "list.jsonl", b"[1, 2]\n", r"list.jsonl:1: expected a JSON object, got list"),
    ("persona", "cols.jsonl", b'{"question": "q", "answer": "Yes"}\n', r"cols.jsonl:1: missing field\(s\) answer_matching_behavior"),
    ("persona", "int.jsonl", persona_line(answer_matching_behavior=1).encode(), r"int.jsonl:1: field 'answer_matching_behavior' must be a string, got int"),
    ("persona", "null.jsonl", persona_line(question=None).encode(), r"null.jsonl:1: field 'question' must be a string, got NoneType"),
    ("persona", "ab.jsonl", persona_line(answer_matching_behavior=" (A)").encode(), r"ab.jsonl:1: answers must be 'Yes' and 'No'"),
    ("persona", "ctrl.jsonl", persona_line(question="bell \u0007 here").encode(), r"ctrl.jsonl:1: field 'question' has control character\(s\) U\+0007"),
    ("persona", "one.jsonl", GOOD, r"1 pairs are too few to split"),
    ("bipo", "cols.csv", b"question,matching,wrong\na,b,c\n", r"cols.csv:1: missing field\(s\) not_matching \(found: question, matching, wrong\)"),
    ("bipo", "ragged.csv", b"question,matching,not_matching\na,b,c\nd,e\n", r"ragged.csv:3: 2 fields but the header has 3"),
    ("bipo", "empty.csv", b"question,matching,not_matching\na,,c\n", r"empty.csv:2: field 'matching' is empty"),
    ("bipo", "header.csv", b"question,matching,not_matching\n", r"header.csv: no usable rows"),
    ("axbench", "text.parquet", b"input,winning_output\n", r"text.parquet: not a Parquet file"),
    ("axbench", "empty.parquet", b"", r"empty.parquet: empty file"),
    ("axbench", "cut.parquet", b"PAR1\x00\x00garbage", r"cut.parquet: unreadable Parquet file"),
]


@pytest.mark.parametrize(("fmt", "name", "content", "message"), GARBAGE, ids=[g[1] + "-" + g[0] for g in GARBAGE])
def test_garbage_input_is_refused(tmp_path, fmt, name, content, message):
    source = tmp_path / name
    source.write_bytes(content)
    with pytest.raises(SteerPuError, match=message):
        import_concept(fmt, str(source), "junk", tmp_path / "suite")
    assert_nothing_written(tmp_path / "suite")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda rows: [{k: v for k, v in r.items() if k != "losing_output"} for r in rows], r"missing field\(s\) losing_output"),
        (lambda rows: [{**r, "input": 5} for r in rows], r"x.parquet row 1: field 'input' must be a string, got int"),
        (lambda rows: [{**r, "winning_output": "w" * 1_000_001} for r in rows], r"row 1: field 'winning_output' is larger than"),
    ],
)
def test_garbage_parquet_is_refused(tmp_path, change, message):
    source = write_parquet(tmp_path / "x.parquet", change(axbench_rows()))
    with pytest.raises(SteerPuError, match=message):
        import_concept("axbench", str(source), "junk", tmp_path / "suite")
    assert_nothing_written(tmp_path / "suite")


def test_hub_id_offline_is_a_clear_error(tmp_path, monkeypatch):
    import datasets.config
    import huggingface_hub.constants

    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)  # fail at once instead of retrying
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(SteerPuError, match=r"nobody/no-such-set: not a local file, and loading it as a Hugging Face dataset failed"):
        import_concept("persona", "nobody/no-such-set", "junk", tmp_path / "suite")
    assert_nothing_written(tmp_path / "suite")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--concept", "Bad-Name"], "must be snake_case"),
        (["--concept", "ok", "--test-fraction", "1.5"], "must be between 0 and 1"),
    ],
)
def test_bad_options(tmp_path, args, message):
    result = runner.invoke(app, ["tasks", "import", "persona", str(FIXTURES / "persona.jsonl"), "--suite", str(tmp_path / "s"), *args])
    assert result.exit_code == 2 and message in result.output
    assert_nothing_written(tmp_path / "s")


def test_cli_import_then_refuse_and_garbage(tmp_path):
    suite = tmp_path / "suite"
    args = ["tasks", "import", "bipo", str(FIXTURES / "bipo.csv"), "--concept", "power", "--suite", str(suite), "--seed", "1"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "7 train / 3 test pairs" in result.output
    assert load_concept(suite / "power").card.format == "open"
    again = runner.invoke(app, args)
    assert again.exit_code == 2 and "already exists" in again.output
    bad = tmp_path / "bad.csv"
    bad.write_text("question,matching\na,b\n")
    garbage = runner.invoke(app, ["tasks", "import", "bipo", str(bad), "--concept", "other", "--suite", str(suite)])
    assert garbage.exit_code == 2 and "bad.csv:1: missing field(s) not_matching" in " ".join(garbage.output.split())
    assert sorted(p.name for p in suite.iterdir()) == ["power"]
    unknown = runner.invoke(app, ["tasks", "import", "yaml", str(bad), "--concept", "other", "--suite", str(suite)])
    assert unknown.exit_code == 2
