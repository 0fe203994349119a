"""`steer-pu tasks report`'s shortcut and length columns, on the tiny model (fast; the run on
smollm2-135m is tests/integration/test_task_report.py)."""

from __future__ import annotations

import numpy as np

from steer_pu.models import load_model
from steer_pu.report.concept_report import build_report, pearson, render_markdown
from steer_pu.runs.run import load_scores
from steer_pu.suite.audit import audit_concept, length_balance
from steer_pu.suite.concepts import load_concepts

from .conftest import write_concept


def test_report_has_audit_and_length_columns(tmp_path, tiny_model_dir):
    suite = tmp_path / "suite"
    for name, n_test in (("cheer", 4), ("calm", 5), ("glee", 6)):
        write_concept(suite, name, 6, n_test)
    loaded = load_model(str(tiny_model_dir))
    report = build_report(loaded, str(tiny_model_dir), suite, tmp_path / "runs", strengths=[0.0, 1.0], layer=1)

    def count(text: str) -> int:
        return len(loaded.tokenizer(text, add_special_tokens=False).input_ids)

    concepts = {c.name: c for c in load_concepts(suite)}
    for row in report.rows:
        concept = concepts[row.name]
        audit = audit_concept(concept, count)
        assert row.audit == {r.name: r.accuracy for r in audit.results}
        assert row.within_2 == length_balance(concept, count).within_2
        run_dir = next((tmp_path / "runs").glob(f"*/{row.name}-*"))
        s0 = load_scores(run_dir, row.name, "diffmean-vector")[0.0]
        diff = np.asarray(s0.len_pos) - np.asarray(s0.len_neg)
        assert row.mean_len_diff == diff.mean()
        assert row.len_pref_r == pearson(diff, np.asarray(s0.nll_neg) - np.asarray(s0.nll_pos))
        assert row.len_pref_r is not None and -1 <= row.len_pref_r <= 1  # the completions' lengths vary
    assert report.len_p0_r == pearson([r.mean_len_diff for r in report.rows], [r.p0 for r in report.rows])

    text = render_markdown(report, "steer-pu tasks report")
    assert "## Shortcuts and length" in text
    row = next(line for line in text.splitlines() if line.startswith("| calm |") and "%" in line)
    cells = [c.strip() for c in row.strip("|").split("|")]
    calm = next(r for r in report.rows if r.name == "calm")
    assert cells[1:5] == [f"{calm.audit[k]:.2f}" for k in ("length", "first_word", "function_words", "bag_of_words")]
    assert cells[5:] == [f"{calm.within_2:.0%}", f"{calm.mean_len_diff:+.2f}", f"{calm.len_pref_r:+.2f}"]
    assert "Across the 3 concepts, the correlation of mean ΔT with p(0) is " in text


def test_pearson_undefined_cases():
    assert pearson([1, 2], [1, 2]) is None  # fewer than 3 points
    assert pearson([1, 1, 1], [1, 2, 3]) is None  # a constant side
    assert pearson([1, 2, None], [1, 2, 3]) is None
    assert abs(pearson([1, 2, 3], [2, 4, 7]) - np.corrcoef([1, 2, 3], [2, 4, 7])[0, 1]) < 1e-12


def test_before_after_table_pairs_each_concept_with_the_older_suite(tmp_path, tiny_model_dir):
    """`tasks report --before OLD`: the older suite's figures at m = 0 beside this one's."""
    old, new = tmp_path / "old", tmp_path / "new"
    for name, n_test in (("cheer", 4), ("calm", 5), ("glee", 6)):
        write_concept(old, name, 6, n_test)
        write_concept(new, name, 6, n_test + 2)
    loaded = load_model(str(tiny_model_dir))
    after = build_report(loaded, str(tiny_model_dir), new, tmp_path / "runs", strengths=[0.0, 1.0], layer=1)
    before = build_report(loaded, str(tiny_model_dir), old, tmp_path / "runs", strengths=[], layer=1)
    assert before.strengths == [0.0]  # the older suite is only scored unsteered
    text = render_markdown(after, "steer-pu tasks report --before old", before)
    assert "## Suite" in text
    row = next(line for line in text.splitlines() if line.startswith("| glee |") and "→" in line)
    cells = [c.strip() for c in row.strip("|").split("|")]
    b, a = (next(r for r in rep.rows if r.name == "glee") for rep in (before, after))
    assert cells[1] == "6 → 8"
    assert cells[2] == f"{b.audit['length']:.2f} → {a.audit['length']:.2f}"
    assert cells[-1] == f"{b.p0:.3f} → {a.p0:.3f}"
    assert "r(mean ΔT, p(0))" in text
