"""verify: a clean entry passes; edited numbers, changed hashes and bad artifacts fail by name."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from steer_pu.analysis.frontier import concept_scores, suite_score, summarise
from steer_pu.analysis.pair_scores import PairScores
from steer_pu.cli.main import app
from steer_pu.errors import SteerPuError
from steer_pu.io import sha256_file
from steer_pu.submission.schema import generations_sha256
from steer_pu.submission.verify import verify

from .conftest import build_model, build_tokenizer
from .submission_helpers import Entry

runner = CliRunner()


def failures(report) -> list[str]:
    return [f"{c.scope} {c.what}: {c.detail}" for c in report.failures()]


def test_clean_entry_verifies_from_artifacts_and_by_retraining(base_entry: Entry):
    report = verify(base_entry.file, suite_dir=base_entry.suite)
    assert report.ok, failures(report)
    assert set(report.rescored) == {"calm", "cheer"}
    assert all(r["max_dnll"] <= 1e-6 for r in report.rescored.values())
    retrained = verify(base_entry.file, suite_dir=base_entry.suite, retrain=True, concepts=["cheer"])
    assert retrained.ok, failures(retrained)
    assert set(retrained.rescored) == {"cheer"} and retrained.rescored["cheer"]["artifact_identical"] == 1.0


def test_cli_prints_table_and_exits_0(base_entry: Entry):
    result = runner.invoke(
        app, ["verify", str(base_entry.file), "--suite", str(base_entry.suite), "--concepts", "calm"]
    )
    assert result.exit_code == 0, result.output
    assert "verified:" in result.output and "pass" in result.output and "1 concept(s) re-scored" in result.output


def test_hand_edited_aggregate_fails_naming_the_field(entry: Entry):
    data = entry.data()
    data["concepts"]["cheer"]["strengths"][2]["p"] += 0.01
    entry.write(data)
    result = runner.invoke(app, ["verify", str(entry.file), "--suite", str(entry.suite), "--no-rescore"])
    assert result.exit_code == 1
    assert "concepts.cheer.strengths.2.p (m=2)" in result.output and "NOT verified" in result.output


def test_consistently_edited_numbers_fail_the_rescore(entry: Entry):
    """A forger who lowers NLLs and recomputes every aggregate is caught by re-scoring."""
    data = entry.data()
    sweeps = {}
    for name, result in data["concepts"].items():
        for s in result["strengths"]:
            if s["m"] > 0:
                s["nll_pos"] = [x * 0.9 for x in s["nll_pos"]]
        sweep = {
            s["m"]: PairScores(s["nll_pos"], s["nll_neg"], result["len_pos"], result["len_neg"])
            for s in result["strengths"]
        }
        sweeps[name] = sweep
        for s, row in zip(result["strengths"], summarise(sweep)):
            s.update({k: row[k] for k in ("pref_logodds", "util_logodds", "p", "u")})
        cs = concept_scores(sweep)
        result.update(fa=cs.fa, fa_gain=cs.fa_gain, fa_negative=cs.fa_negative, base_p=cs.base_p)
    score = suite_score(sweeps, n_boot=data["suite_score"]["n_boot"], seed=data["seeds"]["bootstrap"])
    data["suite_score"].update(mean_fa=score.mean_fa, ci_low=score.ci_low, ci_high=score.ci_high)
    entry.write(data)
    report = verify(entry.file, suite_dir=entry.suite)
    assert {(c.scope, c.what) for c in report.failures()} == {("calm", "rescore"), ("cheer", "rescore")}
    assert "concepts.calm.strengths.2.nll_pos.0 (m=2" in report.failures()[0].detail


def test_suite_hash_mismatch_fails_and_skips_the_rescore(entry: Entry):
    path = entry.suite / "cheer" / "test.jsonl"
    path.write_text(path.read_text().replace("lovely", "lively", 1))
    report = verify(entry.file, suite_dir=entry.suite)
    details = failures(report)
    assert any("suite.sha256" in d for d in details) and any("suite.concepts.cheer: sha256" in d for d in details)
    assert report.status("cheer", "rescore") == "FAIL" and not report.rescored


def test_other_model_fails_the_model_hashes(entry: Entry, tmp_path):
    other = tmp_path / "other-model"
    tok = build_tokenizer()
    build_model(len(tok), seed=1).save_pretrained(other)
    tok.save_pretrained(other)
    report = verify(entry.file, suite_dir=entry.suite, model=str(other))
    assert any("model.weights_sha256" in d for d in failures(report))
    assert not report.rescored


def test_recorded_model_hash_edited_fails(entry: Entry):
    data = entry.data()
    data["model"]["tokenizer_sha256"] = "0" * 64
    entry.write(data)
    report = verify(entry.file, suite_dir=entry.suite, rescore=False)
    assert failures(report) == [
        "model model: model.tokenizer_sha256 does not match the tokenizer of " + str(entry.model)
    ]


def test_altered_and_missing_artifacts_fail(entry: Entry):
    target = entry.artifact("cheer")
    raw = bytearray(target.read_bytes())
    raw[-1] ^= 0xFF  # one flipped bit of the vector
    target.write_bytes(bytes(raw))
    entry.artifact("calm").unlink()
    report = verify(entry.file, suite_dir=entry.suite)
    details = failures(report)
    assert any("concepts.cheer.artifact.files.0" in d and "file altered" in d for d in details), details
    assert any("concepts.calm.artifact.files.0" in d and "missing" in d for d in details), details
    assert report.status("cheer", "rescore") == "FAIL" and report.status("calm", "rescore") == "FAIL"


class _Boom:
    """Unpickling this would create a file: proof that a pickle artifact was never loaded."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_pickle_artifact_is_refused_and_never_loaded(entry: Entry, tmp_path):
    marker = tmp_path / "pwned"
    target = entry.artifact("cheer")
    torch.save({"vector": torch.zeros(32), "payload": _Boom(str(marker))}, target)
    # the forger also updates the recorded hash and size
    data = entry.data()
    files = data["concepts"]["cheer"]["artifact"]["files"]
    files[0].update(sha256=sha256_file(target), bytes=target.stat().st_size)
    entry.write(data)
    report = verify(entry.file, suite_dir=entry.suite)
    assert any("pickle" in d and "concepts.cheer.artifact.files.0" in d for d in failures(report))
    target.write_bytes(pickle.dumps(_Boom(str(marker))))
    files[0].update(sha256=sha256_file(target), bytes=target.stat().st_size)
    entry.write(data)
    assert any("pickle" in d for d in failures(verify(entry.file, suite_dir=entry.suite)))
    assert not marker.exists()


def test_plugin_method_is_never_imported(entry: Entry, tmp_path):
    marker = tmp_path / "imported"
    module = tmp_path / "evil_mod.py"
    module.write_text(f"open({str(marker)!r}, 'w').close()\n")
    data = entry.data()
    data["method"]["name"] = "evil_mod:Method"
    data["method"]["code"] = {"kind": "plugin", "reference": "evil_mod:Method", "version": "1"}
    entry.write(data)
    import sys

    sys.path.insert(0, str(tmp_path))
    try:
        report = verify(entry.file, suite_dir=entry.suite, retrain=True)
    finally:
        sys.path.remove(str(tmp_path))
    assert any("not a built-in method" in d for d in failures(report))
    assert not marker.exists()
    assert verify(entry.file, suite_dir=entry.suite).ok  # its artifacts still re-score without its code


def test_uncommitted_artifact_needs_retrain(entry: Entry):
    data = entry.data()
    for result in data["concepts"].values():
        result["artifact"]["path"] = None
    entry.write(data)
    report = verify(entry.file, suite_dir=entry.suite)
    assert any("not committed; verify it with --retrain" in d for d in failures(report))
    assert verify(entry.file, suite_dir=entry.suite, retrain=True).ok


def test_artifact_path_escaping_the_folder_is_refused(entry: Entry):
    data = entry.data()
    data["concepts"]["cheer"]["artifact"]["path"] = "/etc"
    entry.write(data)
    with pytest.raises(SteerPuError, match="field 'concepts.cheer.artifact.path'"):
        verify(entry.file, suite_dir=entry.suite, rescore=False)
    link = entry.file.parent / "escape"
    link.symlink_to(entry.file.parent.parent.parent, target_is_directory=True)
    data["concepts"]["cheer"]["artifact"]["path"] = "escape/subs"
    entry.write(data)
    report = verify(entry.file, suite_dir=entry.suite, rescore=False)
    assert any("leaves the submission's folder" in d for d in failures(report))


def test_unknown_rescore_concept_is_a_user_error(base_entry: Entry):
    with pytest.raises(SteerPuError, match="--concepts: nope not in"):
        verify(base_entry.file, suite_dir=base_entry.suite, concepts=["nope"])


def test_rescore_tolerance_is_tight_enough_to_catch_small_edits(entry: Entry):
    data = entry.data()
    s = data["concepts"]["calm"]["strengths"][1]  # m = 0
    s["nll_neg"][0] += 0.01
    entry.write(data)
    report = verify(entry.file, suite_dir=entry.suite, concepts=["calm"])
    # the numbers check catches the changed mean first, the re-score the pair itself
    assert report.status("calm", "numbers") == "FAIL" and report.status("calm", "rescore") == "FAIL"
    assert np.isclose(report.rescored["calm"]["max_dnll"], 0.01, atol=1e-6)
    assert json.loads(entry.file.read_text())["concepts"]["calm"]["strengths"][1]["nll_neg"][0] == s["nll_neg"][0]


def test_spot_check_rescores_only_the_first_pairs(base_entry: Entry):
    report = verify(base_entry.file, suite_dir=base_entry.suite, pairs=2)
    assert report.ok, failures(report)
    assert {name: r["pairs"] for name, r in report.rescored.items()} == {"calm": 2.0, "cheer": 2.0}
    with pytest.raises(SteerPuError, match="--pairs: must be at least 1"):
        verify(base_entry.file, suite_dir=base_entry.suite, pairs=0)


# --------------------------------------------------------------------------- older suite releases


def release_changed_suite(entry: Entry) -> str:
    """Change one of cheer's test prompts and release the suite as a new major version; returns it."""
    from steer_pu.suite.manifest import write_manifest

    path = entry.suite / "cheer" / "test.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    rows[0]["prompt"] += " Be brief."
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return write_manifest(entry.suite, "major", gate=False).version  # a tiny suite: not a release candidate


def test_entry_on_an_older_suite_is_older_not_tampered(entry: Entry):
    old = entry.data()["suite"]["version"]
    current = release_changed_suite(entry)
    report = verify(entry.file, suite_dir=entry.suite)
    assert report.ok, failures(report)
    assert report.older_suite == (old, current)
    assert report.suite_note.startswith(f"older suite {old} (current {current}): numbers, artifacts and model hashes")
    assert report.status("suite", "suite") == "older"
    assert report.status("cheer", "suite") == "older" and report.status("cheer", "rescore") == "older"
    assert report.status("calm", "suite") == "ok" and set(report.rescored) == {"calm"}  # unchanged: re-scored
    assert report.status("cheer", "numbers") == "ok" and report.status("suite", "numbers") == "ok"
    result = runner.invoke(app, ["verify", str(entry.file), "--suite", str(entry.suite), "--no-rescore"])
    assert result.exit_code == 0, result.output
    assert f"verified on an older suite {old} (current {current})" in " ".join(result.output.split())


def test_older_entry_numbers_are_still_checked(entry: Entry):
    release_changed_suite(entry)
    data = entry.data()
    data["concepts"]["cheer"]["fa"] += 0.01
    entry.write(data)
    report = verify(entry.file, suite_dir=entry.suite, rescore=False)
    assert [(c.scope, c.what) for c in report.failures()] == [("cheer", "numbers")]


def test_wrong_hash_for_the_current_or_an_older_release_fails(entry: Entry):
    old = entry.data()["suite"]["version"]
    current = release_changed_suite(entry)
    data = entry.data()
    data["suite"]["version"] = current  # claims the current version with the old files' hash
    entry.write(data)
    report = verify(entry.file, suite_dir=entry.suite, rescore=False)
    assert report.older_suite is None and report.status("suite", "suite") == "FAIL"
    assert "suite.sha256" in report.failures()[0].detail
    data["suite"]["version"] = old
    data["suite"]["sha256"] = "0" * 64  # an older release, but not its hash
    entry.write(data)
    report = verify(entry.file, suite_dir=entry.suite, rescore=False)
    assert report.older_suite is None and not report.ok
    assert f"nor release {old}'s sha256" in report.failures()[0].detail


@pytest.mark.parametrize("edit", ["dropped", "foreign"])
def test_pair_ids_are_checked_against_the_current_suite(entry: Entry, edit: str):
    """On the suite it was scored on, an entry's pair ids must be the concept's test ids in order:
    a dropped pair or an id the suite lacks fails, naming the field (the hostile corpus's committed
    entries are on an older suite, where pair ids cannot be checked, so the check is pinned here)."""
    data = entry.data()
    ids = data["concepts"]["cheer"]["pair_ids"]
    if edit == "dropped":  # the last pair out of every per-pair array too, so the file stays consistent
        n = len(ids)
        ids.pop()
        data["concepts"]["cheer"]["len_pos"].pop()
        data["concepts"]["cheer"]["len_neg"].pop()
        for point in data["concepts"]["cheer"]["strengths"]:
            for value in point.values():
                if isinstance(value, list) and len(value) == n:
                    value.pop()
            point["n"] = n - 1
    else:
        ids[0] = "cheer-test-9999"
    entry.write(data)
    result = runner.invoke(app, ["verify", str(entry.file), "--suite", str(entry.suite), "--no-rescore"])
    assert result.exit_code == 1, result.output
    assert "concepts.cheer.pair_ids" in result.output and "NOT verified" in result.output


def _rehash(generations: dict) -> None:
    """Recompute a generations section's sha256 after an edit (as a careful forger would)."""
    strengths = [
        (s["m"], [x["token_ids"] for x in s["samples"]], [x["text"] for x in s["samples"]])
        for s in generations["strengths"]
    ]
    generations["sha256"] = generations_sha256(generations["pair_ids"], strengths)


def test_generations_are_checked_offline_and_regenerated_token_for_token(base_entry: Entry):
    report = verify(base_entry.file, suite_dir=base_entry.suite)
    assert report.ok, failures(report)
    for name in ("calm", "cheer"):
        assert report.status(name, "generations") == "ok" and report.status(name, "regenerate") == "ok"
        assert report.rescored[name]["generations_identical"] == 1.0
    retrained = verify(base_entry.file, suite_dir=base_entry.suite, retrain=True, concepts=["calm"])
    assert retrained.ok, failures(retrained)
    assert retrained.status("calm", "regenerate") == "ok"


@pytest.mark.parametrize("edit", ["text", "tokens", "prompts", "stats"])
def test_edited_generations_fail_naming_the_field(entry: Entry, edit: str):
    data = entry.data()
    gen = data["concepts"]["cheer"]["generations"]
    sample = gen["strengths"][1]["samples"][0]
    if edit == "text":  # not re-hashed: the offline check sees it
        sample["text"] = "an edited continuation"
        expected = "cheer generations: concepts.cheer.generations.sha256"
    elif edit == "tokens":  # re-hashed: only the regeneration can tell
        sample["token_ids"] = [sample["token_ids"][0] + 1, *sample["token_ids"][1:]]
        _rehash(gen)
        expected = "cheer regenerate: concepts.cheer.generations.strengths.1.samples.0.token_ids"
    elif edit == "prompts":  # another choice of prompts than the seeded rule's
        gen["pair_ids"] = list(reversed(data["concepts"]["cheer"]["pair_ids"][-2:]))
        _rehash(gen)
        expected = "cheer generations: concepts.cheer.generations.pair_ids: not the seeded choice"
    else:
        sample["repetition"] = 0.5 if sample["repetition"] != 0.5 else 0.25
        expected = "cheer generations: concepts.cheer.generations.strengths.1.samples.0.repetition"
    entry.write(data)
    report = verify(entry.file, suite_dir=entry.suite, concepts=["cheer"])
    assert not report.ok
    assert any(f.startswith(expected) for f in failures(report)), failures(report)
