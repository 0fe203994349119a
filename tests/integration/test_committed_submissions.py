"""Re-score committed submissions on the real model, on pairs an author cannot predict.

Every committed smollm2-135m entry whose artifacts are committed tensors is re-scored
(``verify(FILE, sample=...)``) and compared with its stored per-pair NLLs; hashes and the
numbers recomputed from the NLLs cover the whole entry (tests/test_committed_submissions.py).

Which pairs: a seed derived from the sha256 of the entry file picks them (``random.Random``),
so they change whenever the file changes, cannot be chosen by its author, and anyone can
reproduce them from the file alone.

* entries **new or changed** against the merge base (``git merge-base HEAD origin/main`` when
  that remote branch exists, else ``HEAD~``; working-tree changes count too) are re-scored on
  **every concept**, CHANGED_PAIRS seeded pairs each; with ``STEER_PU_VERIFY_FULL=1`` on every
  test pair of every concept (the full re-score: ~1 h for 12 concepts at 1 thread);
* the other entries are spot-checked: one seeded concept, SPOT_PAIRS seeded pairs.

In a fresh clone with no remote and no parent commit nothing counts as changed, and every
entry is spot-checked (the test says so in its output).

An entry scored on an older suite release is re-scored on that release, rebuilt from git history
(``suite_release``); without the history its offline older-suite checks still run.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import random
import subprocess
import tarfile
from pathlib import Path

import pytest

from steer_pu.interventions.base import TENSORS_FILE
from steer_pu.paths import default_submissions_dir, default_suite_dir
from steer_pu.submission.parse import load_submission
from steer_pu.submission.verify import verify
from steer_pu.suite.manifest import suite_info

pytestmark = pytest.mark.integration
SPOT_PAIRS = 4  # one concept of an unchanged entry: ~25 s at 1 thread
CHANGED_PAIRS = 4  # every concept of a changed entry: 12 x 4 pairs, ~5 min at 1 thread
FULL_ENV = "STEER_PU_VERIFY_FULL"
ROOT = default_submissions_dir()


def _cheap(path: Path) -> bool:
    sub = load_submission(path)
    return sub.model.name == "smollm2-135m" and all(
        c.artifact is not None and c.artifact.path is not None and any(f.name == TENSORS_FILE for f in c.artifact.files)
        for c in sub.concepts.values()
    )


def _git(*args: str) -> str | None:
    try:
        done = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout if done.returncode == 0 else None


def merge_base() -> tuple[str | None, str]:
    """The commit changed entries are found against, and how it was chosen."""
    if _git("rev-parse", "--verify", "--quiet", "origin/main") is not None:
        base = _git("merge-base", "HEAD", "origin/main")
        if base:
            return base.strip(), "merge base with origin/main"
    parent = _git("rev-parse", "--verify", "--quiet", "HEAD~")
    if parent:
        return parent.strip(), "HEAD~ (no origin/main)"
    return None, "no remote and no parent commit: every entry is spot-checked"


def changed_entries(entries: list[Path]) -> set[Path]:
    """Entries whose JSON or artifact folder differs from the merge base (or is new)."""
    base, _ = merge_base()
    top = _git("rev-parse", "--show-toplevel")
    if base is None or top is None:
        return set()
    listed = (_git("diff", "--name-only", base, "--", str(ROOT)) or "") + (
        _git("ls-files", "--others", "--exclude-standard", "--", str(ROOT)) or ""
    )
    paths = {(Path(top.strip()) / line).resolve() for line in listed.splitlines() if line.strip()}
    out = set()
    for entry in entries:
        folder = entry.with_suffix("").resolve()
        if entry.resolve() in paths or any(p.is_relative_to(folder) for p in paths):
            out.add(entry)
    return out


def seeded_sample(path: Path, concepts: list[str], pairs: int | None, n_pairs: dict[str, int]) -> dict[str, list[int]]:
    """Pair indices per concept, drawn with a seed from the file's sha256 (sorted; all when ``pairs`` is None)."""
    rng = random.Random(int(hashlib.sha256(path.read_bytes()).hexdigest(), 16))
    return {
        name: list(range(n_pairs[name])) if pairs is None else sorted(rng.sample(range(n_pairs[name]), pairs))
        for name in concepts
    }


ENTRIES = sorted(p for p in ROOT.glob("*/*.json"))
CHEAP = [p for p in ENTRIES if _cheap(p)]
CHANGED = changed_entries(CHEAP)


def test_at_least_one_entry_is_rescored():
    assert CHEAP, "no committed smollm2-135m entry with tensor artifacts to re-score"
    print(f"changed entries ({merge_base()[1]}): {sorted(p.name for p in CHANGED) or 'none'}")


def test_sample_is_reproducible_and_follows_the_file(tmp_path):
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    a.write_text("{}"), b.write_text("{ }")
    n = {"x": 50, "y": 50}
    assert seeded_sample(a, ["x", "y"], 4, n) == seeded_sample(a, ["x", "y"], 4, n)
    assert seeded_sample(a, ["x", "y"], 4, n) != seeded_sample(b, ["x", "y"], 4, n)


def suite_release(version: str, into: Path) -> Path | None:
    """The repo suite as released at ``version``, rebuilt from git history into ``into`` (None
    without git or without such a release): an entry scored on an older suite is re-scored on it."""
    manifest = "tasks/steer_pu/MANIFEST.json"
    for commit in (_git("log", "--format=%H", "--", manifest) or "").split():
        try:
            released = json.loads(_git("show", f"{commit}:{manifest}") or "{}").get("version")
        except json.JSONDecodeError:
            continue
        if released == version:
            archive = subprocess.run(
                ["git", "archive", commit, "tasks/steer_pu"], cwd=ROOT, capture_output=True, timeout=120
            )
            if archive.returncode != 0:
                return None
            with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
                tar.extractall(into, filter="data")
            return into / "tasks" / "steer_pu"
    return None


@pytest.mark.parametrize("path", CHEAP, ids=[p.stem for p in CHEAP])
def test_committed_entry_rescores(path, tmp_path):
    sub = load_submission(path)
    n_pairs = {name: len(c.pair_ids) for name, c in sub.concepts.items()}
    rng = random.Random(int(hashlib.sha256(path.read_bytes()).hexdigest(), 16) ^ 1)
    if path in CHANGED:
        concepts = sorted(sub.concepts)
        pairs = None if os.environ.get(FULL_ENV, "") not in ("", "0") else CHANGED_PAIRS
    else:
        concepts, pairs = [rng.choice(sorted(sub.concepts))], SPOT_PAIRS
    sample = seeded_sample(path, concepts, pairs, n_pairs)
    suite_dir = None
    if sub.suite.version != suite_info(default_suite_dir()).version:
        suite_dir = suite_release(sub.suite.version, tmp_path)
        if suite_dir is None:  # no history to rebuild it from: the older-suite checks still run
            report = verify(path, sample=sample)
            assert report.ok and report.older_suite is not None, [str(c) for c in report.failures()]
            print(f"{path.name}: scored on suite {sub.suite.version}, not in this checkout's history: not re-scored")
            return
    report = verify(path, sample=sample, suite_dir=suite_dir)
    assert report.ok, [f"{c.scope} {c.what}: {c.detail}" for c in report.failures()]
    for name, rows in sample.items():
        assert report.rescored[name]["pairs"] == len(rows)
        print(f"{path.name} {name} pairs {rows[:8]}{'…' if len(rows) > 8 else ''}: "
              f"max |dNLL| {report.rescored[name]['max_dnll']:.3g}")  # fmt: skip
