"""Fit table and comparison report over synthetic run directories written like steer_pu.runs.run does."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from steer_pu.analysis.curves import Decay, decay
from steer_pu.analysis.frontier import concept_scores, suite_score
from steer_pu.analysis.pair_scores import PairScores
from steer_pu.cli.main import app
from steer_pu.errors import SteerPuError
from steer_pu.io import atomic_write_json
from steer_pu.report.claims import claims_text, split_comparisons
from steer_pu.report.collect import Sweep, find_run_dirs, load_collection
from steer_pu.report.fits import fit_one
from steer_pu.runs.run import RUN_FILE, RunConfig, strength_label

runner = CliRunner()

GRID = (-8.0, -6.0, -4.0, -2.0, 0.0, 2.0, 4.0, 6.0, 8.0, 10.0, 12.0, 14.0, 16.0)
# p = 0.5: m·D(m) levels off at large |m| (linear, transition, flat — the paper's shape).
PREF_DECAY = Decay(m_pos=0.0, l_pos=16.0, p_pos=0.5, m_neg=0.0, l_neg=9.0, p_neg=0.5)
UTIL_DECAY = Decay(m_pos=1.0, l_pos=10.0, p_pos=1.0, m_neg=-1.0, l_neg=10.0, p_neg=1.0)
N_BOOT = 200


def make_sweep(grid, slope: float, util_loss: float, seed: int, n: int = 12) -> dict[float, PairScores]:
    """Per-pair NLLs whose mean PrefOdds follow (slope·m + 0.3)·D_p(m) and whose valid-completion
    NLL grows by util_loss·(1 − D_u(m)): the paper's curve shapes (util_loss < 0 lets utility rise)."""
    rng = np.random.default_rng(seed)
    base = rng.uniform(20.0, 30.0, n)
    lengths = np.full(n, 10.0)
    sweep = {}
    for m in grid:
        drift = util_loss * (1.0 - float(decay(m, UTIL_DECAY))) + rng.normal(0.0, 0.05, n)
        gap = (slope * m + 0.3) * float(decay(m, PREF_DECAY)) + rng.normal(0.0, 0.05, n)
        sweep[float(m)] = PairScores(base + drift, base + drift + gap, lengths, lengths + 2)
    return sweep


def write_run(root: Path, method: str, form: str, sweeps: dict[str, dict[float, PairScores]], model="tiny") -> Path:
    """A run directory in steer_pu.runs.run's layout: run.json plus one score file per (concept, m)."""
    out = root / f"{method}-{form}"
    grid = sorted({m for s in sweeps.values() for m in s})
    config = RunConfig(
        model=model, method=method, form=form, layer=1, concepts=sorted(sweeps), strengths=grid, suite_dir="suite"
    )
    atomic_write_json(out / RUN_FILE, {"config": config.model_dump(), "provenance": {}})
    for concept, sweep in sweeps.items():
        for m, scores in sweep.items():
            ids = [f"{concept}-{i}" for i in range(scores.n_pairs)]
            path = out / "scores" / concept / f"{method}-{form}" / f"{strength_label(m)}.json"
            atomic_write_json(path, {"concept": concept, "strength": m, "ids": ids, **scores.to_json()})
    return out


SWEEPS = {
    ("diffmean", "ocean"): make_sweep(GRID, slope=0.8, util_loss=30.0, seed=1),
    ("diffmean", "cheer"): make_sweep(GRID, slope=0.6, util_loss=25.0, seed=2),
    ("split", "ocean"): make_sweep(GRID, slope=2.0, util_loss=8.0, seed=3),
    ("split", "cheer"): make_sweep(GRID, slope=1.6, util_loss=6.0, seed=4),
    ("reps", "ocean"): make_sweep((-2.0, 0.0, 2.0, 4.0), slope=1.0, util_loss=10.0, seed=5),
}


@pytest.fixture(scope="module")
def zoo(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("zoo")
    for method in ("diffmean", "split", "reps"):
        write_run(root, method, "vector", {c: s for (m, c), s in SWEEPS.items() if m == method})
    return root


@pytest.fixture(scope="module")
def report_dir(zoo: Path) -> tuple[Path, str]:
    out = zoo.parent / "report"
    runs = [str(zoo / name) for name in ("diffmean-vector", "split-vector", "reps-vector")]
    result = runner.invoke(app, ["report", *runs, "--out", str(out), "--n-boot", str(N_BOOT)])
    assert result.exit_code == 0, result.output
    return out, result.output


def table_row(text: str, *first_cells: str, after: str = "") -> list[str]:
    """The cells of the first Markdown table row starting with ``first_cells`` below heading ``after``."""
    for line in text[text.index(after) :].splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("|") and cells[: len(first_cells)] == list(first_cells):
            return cells
    raise AssertionError(f"no table row starting with {first_cells}")


# --------------------------------------------------------------------------- report


def test_report_writes_markdown_and_figures(report_dir) -> None:
    out, _ = report_dir
    text = (out / "README.md").read_text()
    for name in ("concept-ocean.png", "concept-cheer.png", "overall.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f"]({name})" in text
    points = pd.read_csv(out / "points.csv")
    assert len(points) == sum(len(s) for s in SWEEPS.values())
    row = points[(points.concept == "ocean") & (points.method == "split") & (points.m == 4.0)].iloc[0]
    assert row.p == pytest.approx(concept_scores(SWEEPS[("split", "ocean")]).points[GRID.index(4.0)].p, abs=1e-6)
    for heading in ("## Claims check", "## Frontier area", "## Curve fits (Table 2 shape)", "## Runs"):
        assert heading in text


def test_report_fa_values_match_frontier_module(report_dir) -> None:
    text = (report_dir[0] / "README.md").read_text()
    for (method, concept), sweep in SWEEPS.items():
        scores = concept_scores(sweep)
        row = table_row(text, concept, method, "vector", after="### Per concept")
        assert row[3:7] == [
            f"{scores.base_p:.3f}",
            f"{scores.fa:.3f}",
            f"{scores.fa_gain:.3f}",
            f"{scores.fa_negative:.3f}",
        ]
    for method in ("diffmean", "split"):
        suite = suite_score({c: s for (m, c), s in SWEEPS.items() if m == method}, n_boot=N_BOOT, seed=0)
        row = table_row(text, method, "vector", "2", after="## Frontier area")
        assert row[3:5] == [f"{suite.mean_fa:.3f}", f"[{suite.ci_low:.3f}, {suite.ci_high:.3f}]"]


def test_report_r2_table_and_claims(report_dir) -> None:
    text, printed = (report_dir[0] / "README.md").read_text(), report_dir[1]
    # Table 2 shape: the clean synthetic curves are fitted on both concepts; reps has 4 strengths only.
    pref, util = table_row(text, "diffmean", "vector", after="## Curve fits")[2:4]
    assert pref.endswith("(2/2)") and float(pref.split()[0]) > 0.99
    assert util.endswith("(2/2)") and float(util.split()[0]) > 0.99
    assert table_row(text, "reps", "vector", after="## Curve fits")[2:4] == ["– (0/1)", "– (0/1)"]
    assert "(1) Preference rises and utility falls with |m| — HOLDS" in text
    assert "PrefOdds: **holds**" in text
    assert "vector, SPLIT vs diffmean: SPLIT's FA is **higher**" in text
    assert "vector, SPLIT vs reps: SPLIT's FA is **higher**" in text
    assert "vector, SPLIT vs sft: **not measured** — sft-vector not in the runs" in text
    assert "lora, SPLIT vs sft: **not measured** — split-lora, sft-lora not in the runs" in text
    assert "lora, SPLIT vs diffmean" not in text  # DiffMean has no LoRA form to compare
    assert re.search(r"SPLIT's\s+FA\s+is\s+higher", printed)  # the CLI echoes the claims (rendered Markdown)


def test_claims_flip_when_the_trade_off_is_absent() -> None:
    grid = (-4.0, -2.0, 0.0, 2.0, 4.0, 8.0)
    with_trade_off = Sweep("ocean", "diffmean", "vector", Path("."), make_sweep(grid, 0.8, 30.0, seed=6))
    # Preference falls with m and utility *rises* with |m|: the paper's claim does not hold.
    without = Sweep("ocean", "diffmean", "vector", Path("."), make_sweep(grid, -0.8, -30.0, seed=6))
    assert "HOLDS" in claims_text([fit_one(with_trade_off)], [])
    text = claims_text([fit_one(without)], [])
    assert "DOES NOT HOLD" in text and "0 of 1" in text
    assert "Where it does not hold: ocean/diffmean-vector" in text
    # 6 strengths: neither curve can be fitted, so claim (2) has nothing to judge
    assert "PrefOdds: **cannot be checked** — none of the 1 sweep(s) could be fitted" in text


def test_r2_from_barely_determined_fits_is_flagged() -> None:
    # 9 strengths: one more than PrefOdds' 8 free parameters, two more than UtilOdds' 7.
    grid = (-8.0, -4.0, -2.0, 0.0, 2.0, 4.0, 8.0, 12.0, 16.0)
    fit = fit_one(Sweep("ocean", "diffmean", "vector", Path("."), make_sweep(grid, 0.8, 30.0, seed=9)))
    assert fit.pref is not None and fit.util is not None
    text = claims_text([fit], [])
    assert "1 of these fits have fewer than 3 strengths more than the 8 free parameters" in text
    assert "1 of these fits have fewer than 3 strengths more than the 7 free parameters" in text


def test_split_comparison_flips_with_the_numbers(tmp_path) -> None:
    strong, weak = make_sweep(GRID, 2.0, 5.0, seed=7), make_sweep(GRID, 0.3, 30.0, seed=7)
    write_run(tmp_path / "a", "split", "lora", {"ocean": weak})
    write_run(tmp_path / "a", "sft", "lora", {"ocean": strong})
    comparisons = split_comparisons(load_collection([tmp_path / "a"]), n_boot=N_BOOT)
    text = claims_text([], comparisons)
    assert "lora, SPLIT vs sft: SPLIT's FA is **lower**" in text
    (c,) = [c for c in comparisons if (c.form, c.other) == ("lora", "sft")]
    assert c.split_fa == pytest.approx(concept_scores(weak).fa) and c.other_fa == pytest.approx(
        concept_scores(strong).fa
    )
    assert c.wins == 0 and c.diff_ci is not None and c.diff_ci[1] < 0


# --------------------------------------------------------------------------- fit command


def test_fit_command_reports_reasons_and_writes_files(zoo: Path, tmp_path) -> None:
    csv, js = tmp_path / "fits.csv", tmp_path / "fits.json"
    result = runner.invoke(app, ["fit", str(zoo), "--csv", str(csv), "--json", str(js)], terminal_width=250)
    assert result.exit_code == 0, result.output
    rows = {(r["concept"], r["method"]): r for r in json.loads(js.read_text())}
    assert len(rows) == 5  # the parent folder's three runs were all found
    reps = rows[("ocean", "reps")]
    assert not reps["pref_fitted"] and not reps["util_fitted"] and reps["pref_r2"] is None
    assert re.search(r"has 4 points .*at least 9", reps["pref_reason"])
    assert re.search(r"has 4 points .*at least 8", reps["util_reason"])
    good = rows[("ocean", "split")]
    assert good["pref_fitted"] and good["pref_r2"] > 0.99 and good["util_r2"] > 0.99 and good["pref_reason"] is None
    assert "ocean reps-vector PrefOdds not fitted: has 4 points" in result.output  # the table is still printed
    assert "split-vector" in result.output
    assert csv.read_text().count("\n") == 6


def test_one_sided_sweep_is_reported_not_fitted() -> None:
    sweep = make_sweep(tuple(float(m) for m in range(0, 24, 2)), 0.8, 30.0, seed=8)
    result = fit_one(Sweep("ocean", "sft", "vector", Path("."), sweep))
    assert result.pref is None and result.util is None
    assert "at least one negative and one positive strength" in result.pref_reason


# --------------------------------------------------------------------------- user errors


def test_run_discovery_from_parent_and_from_run_dirs(zoo: Path) -> None:
    explicit = find_run_dirs([zoo / "reps-vector", zoo / "split-vector", zoo / "diffmean-vector"])
    assert find_run_dirs([zoo]) == explicit and len(explicit) == 3


def test_user_errors_name_the_file(tmp_path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    result = runner.invoke(app, ["fit", str(empty)])
    assert result.exit_code == 2 and "no run directory found" in result.output

    run = write_run(tmp_path / "bad", "diffmean", "vector", {"ocean": SWEEPS[("reps", "ocean")]})
    broken = run / "scores" / "ocean" / "diffmean-vector" / "m=+2.json"
    data = json.loads(broken.read_text())
    del data["nll_neg"]
    broken.write_text(json.dumps(data))
    with pytest.raises(SteerPuError, match=r"m=\+2\.json: field 'nll_neg' missing"):
        load_collection([run])

    (run / "scores" / "ocean" / "diffmean-vector" / "m=+2.json").unlink()
    (run / "scores" / "ocean" / "diffmean-vector" / "m=+0.json").unlink()
    out = tmp_path / "never"
    result = runner.invoke(app, ["report", str(run), "--out", str(out)])
    assert result.exit_code == 2 and "no score file for m = 0" in result.output
    assert not out.exists()  # nothing half-written

    short = run / "scores" / "ocean" / "diffmean-vector" / "m=+0.json"
    one_pair = PairScores(np.ones(1), np.ones(1), np.ones(1), np.ones(1))
    atomic_write_json(short, {"concept": "ocean", "strength": 0.0, "ids": ["x"], **one_pair.to_json()})
    with pytest.raises(SteerPuError, match=r"diffmean-vector: .*pair counts differ"):
        load_collection([run])

    cfg = json.loads((run / RUN_FILE).read_text())
    del cfg["config"]["method"]
    (run / RUN_FILE).write_text(json.dumps(cfg))
    with pytest.raises(SteerPuError, match=r"run\.json: field 'config\.method'"):
        load_collection([run])


def test_duplicate_sweeps_and_mixed_models_are_refused(tmp_path) -> None:
    sweep = {"ocean": SWEEPS[("reps", "ocean")]}
    write_run(tmp_path / "a", "reps", "vector", sweep)
    write_run(tmp_path / "b", "reps", "vector", sweep)
    with pytest.raises(SteerPuError, match="also in"):
        load_collection([tmp_path / "a", tmp_path / "b"])
    for name, sha in (("d", "aaa"), ("e", "bbb")):
        run = write_run(tmp_path / name, "sft" if name == "d" else "split", "vector", sweep)
        record = json.loads((run / RUN_FILE).read_text())
        record["provenance"] = {"concepts": {"ocean": {"version": "0.0.1", "sha256": sha}}}
        atomic_write_json(run / RUN_FILE, record)
    with pytest.raises(SteerPuError, match=r"provenance\.concepts\.ocean\.sha256' differs"):
        load_collection([tmp_path / "d", tmp_path / "e"])
    write_run(tmp_path / "c", "sft", "vector", sweep, model="other")
    with pytest.raises(SteerPuError, match="different models"):
        load_collection([tmp_path / "a", tmp_path / "c"])


def test_an_entry_reports_as_its_run_does(tiny_model_dir, tiny_suite, tmp_path) -> None:
    """`report` reads entries' per-pair numbers: the same tables, fits and text trends as their runs."""
    from .test_run import run_args

    run, entry = tmp_path / "run", tmp_path / "subs" / "dm.json"
    made = runner.invoke(app, [*run_args(tiny_model_dir, tiny_suite, run), "--generate", "2"])
    assert made.exit_code == 0, made.output
    submitted = runner.invoke(app, ["submit", str(run), "--name", "dm", "-o", str(entry)])
    assert submitted.exit_code == 0, submitted.output
    for source, out in ((run, tmp_path / "from-run"), (entry, tmp_path / "from-entry")):
        result = runner.invoke(app, ["report", str(source), "--out", str(out), "--n-boot", "50"])
        assert result.exit_code == 0, result.output

    def body(folder: Path) -> list[str]:  # the report but its Runs table, which names the source
        return [line for line in (folder / "README.md").read_text().splitlines() if not line.startswith("| `")]

    assert (tmp_path / "from-run" / "points.csv").read_text() == (tmp_path / "from-entry" / "points.csv").read_text()
    assert body(tmp_path / "from-run") == body(tmp_path / "from-entry")
    assert any("keyword" in line or "fluency" in line for line in body(tmp_path / "from-entry"))
    assert f"| `{entry}` | diffmean-vector | 1 | -2 0 2 4 |" in (tmp_path / "from-entry" / "README.md").read_text()

    twice = runner.invoke(app, ["report", str(run), str(entry), "--out", str(tmp_path / "twice")])
    assert twice.exit_code == 2 and "is also in" in twice.output and "Traceback" not in twice.output
    entry.write_text(entry.read_text().replace('"fa":', '"fa": "x", "was":', 1))
    broken = runner.invoke(app, ["report", str(entry), "--out", str(tmp_path / "broken")])
    assert broken.exit_code == 2 and str(entry) in " ".join(broken.output.split()), broken.output
