"""`steer-pu tasks report` on smollm2-135m: one small concept, a 2-point grid, then a cached re-run."""

from __future__ import annotations

import pandas as pd
import pytest
from typer.testing import CliRunner

from steer_pu.cli.main import app
from steer_pu.paths import default_suite_dir
from steer_pu.report.concept_report import ConceptRow, summarise_sweep

pytestmark = pytest.mark.integration


def small_suite(root, concept: str, n_train: int, n_test: int):
    src, dst = default_suite_dir() / concept, root / concept
    dst.mkdir(parents=True)
    (dst / "card.yaml").write_text((src / "card.yaml").read_text())
    for split, n in (("train", n_train), ("test", n_test)):
        (dst / f"{split}.jsonl").write_text("\n".join((src / f"{split}.jsonl").read_text().splitlines()[:n]) + "\n")
    return root


def test_report_one_concept_then_cached(tmp_path, monkeypatch):
    suite = small_suite(tmp_path / "suite", "callousness", 12, 6)
    args = [
        "tasks",
        "report",
        "--suite",
        str(suite),
        "--runs",
        str(tmp_path / "runs"),
        "--strengths",
        "0,2",
        "--out",
        str(tmp_path / "R.md"),
    ]
    first = CliRunner().invoke(app, args)
    assert first.exit_code == 0, first.output
    run_dirs = list((tmp_path / "runs" / "smollm2-135m").iterdir())
    assert len(run_dirs) == 1 and run_dirs[0].name.startswith("callousness-")
    table = pd.read_csv(run_dirs[0] / "results.csv")
    assert sorted(table["m"]) == [0.0, 2.0]
    p0 = table.loc[table["m"] == 0, "p"].item()
    best = table.loc[table["u"] >= 0.9, "p"].max()
    report = (tmp_path / "R.md").read_text()
    row = next(line for line in report.splitlines() if line.startswith("| callousness |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[1:4] == ["choice", "3.0.0", "12/6"]
    tokens = [float(t) for t in cells[4].split("/")]
    assert all(8 < t < 30 for t in tokens)  # "Yes, <6–18 word reason>." + the end-of-turn token
    assert cells[5] == f"{p0:.3f}" and cells[6] == f"{best:.3f}" and 0 < p0 < 1
    # Re-running resumes from the cached sweep: scoring anything again would raise.
    monkeypatch.setattr("steer_pu.runs.run.score_strengths", lambda *a, **k: pytest.fail("re-scored a cached unit"))
    monkeypatch.setattr("steer_pu.runs.run._fit_or_load", lambda *a, **k: pytest.fail("re-fitted a cached artifact"))
    again = CliRunner().invoke(app, args)
    assert again.exit_code == 0, again.output
    assert (tmp_path / "R.md").read_text() == report


def test_best_p_respects_the_utility_floor():
    table = pd.DataFrame({"m": [-2.0, 0.0, 2.0, 4.0], "p": [0.30, 0.50, 0.62, 0.90], "u": [0.95, 1.0, 0.93, 0.40]})
    assert summarise_sweep(table) == (0.50, 0.62, 2.0, 0.93, 0.30)  # m = 4 has the top p but u < 0.9


@pytest.mark.parametrize(
    ("p0", "best_p", "flags"),
    [(0.5, 0.7, []), (0.95, 0.99, ["saturated", "unmoved"]), (0.05, 0.2, ["saturated"]), (0.5, 0.53, ["unmoved"])],
)
def test_flags(p0, best_p, flags):
    row = ConceptRow("c", "open", "1.0.0", 96, 48, 20.0, 20.0, p0, best_p, 2.0, 0.95, p0)
    assert row.flags == flags
