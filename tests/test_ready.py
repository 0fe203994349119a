"""Ready artifacts: a run that scores interventions made elsewhere, submitted and verified as a plug-in."""

from __future__ import annotations

import shutil

from typer.testing import CliRunner

from steer_pu.cli import app
from steer_pu.ready import REFERENCE
from steer_pu.run import load_scores
from steer_pu.submission import load_submission
from steer_pu.verify import verify

from .submission_helpers import Entry, base_entry  # noqa: F401  (fixture)

runner = CliRunner()


def run_args(entry: Entry, out) -> list[str]:
    return ["run", "--model", str(entry.model), "--method", REFERENCE, "--form", "vector", "--suite", str(entry.suite),
            "--strengths", "-2,0,2,4", "--layer", "1", "--threads", "1", "--out", str(out)]  # fmt: skip


def test_ready_artifacts_run_submit_and_verify_without_their_code(base_entry: Entry, tmp_path):
    run = tmp_path / "run"
    missing = runner.invoke(app, run_args(base_entry, run))
    assert missing.exit_code == 2 and "no artifact in the run directory" in missing.output
    shutil.rmtree(run)
    for concept in ("calm", "cheer"):
        shutil.copytree(base_entry.run / "artifacts" / concept / "diffmean-vector", run / "artifacts" / concept / f"{REFERENCE}-vector")
    done = runner.invoke(app, run_args(base_entry, run))
    assert done.exit_code == 0, done.output
    for concept in ("calm", "cheer"):  # the same vectors give the same numbers as the run that made them
        ours, theirs = load_scores(run, concept, f"{REFERENCE}-vector"), load_scores(base_entry.run, concept, "diffmean-vector")
        assert all(ours[m].nll_pos.tolist() == theirs[m].nll_pos.tolist() for m in theirs)
    out = tmp_path / "subs" / "ready.json"
    assert runner.invoke(app, ["submit", str(run), "--name", "ready", "-o", str(out)]).exit_code == 0
    sub = load_submission(out)
    assert sub.method.code.kind == "plugin" and sub.method.code.reference == REFERENCE
    report = verify(out, suite_dir=base_entry.suite)
    assert report.ok, [c.detail for c in report.failures()]
    assert set(report.rescored) == {"calm", "cheer"}
