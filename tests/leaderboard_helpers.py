"""Shared set-up of the leaderboard tests: a submissions folder built from generated entries.

Holds valid synthetic entries for two models (SPLIT among them), a malformed file, a file
missing a required field, and a schema-valid file whose stored FA was edited.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from steer_pu.analysis.text_stats import text_stats
from steer_pu.leaderboard.synth import synthetic_submission, write_synthetic
from steer_pu.paths import default_suite_dir
from steer_pu.submission.schema import (
    GeneratedText,
    Generations,
    StrengthGenerations,
    Submission,
    dump_submission,
    generations_sha256,
)
from steer_pu.suite.concepts import load_card
from steer_pu.suite.generation_prompts import generation_prompt_ids

MAIN = "smollm2-135m"
OTHER = "gemma3-270m"
# (name, method, form, strength, damage): spread so that some CIs overlap and some do not
MAIN_ENTRIES = [
    ("split-vector", "split", "vector", 2.0, 0.3),
    ("diffmean-vector", "diffmean", "vector", 0.6, 1.2),
    ("sft-lora", "sft", "lora", 1.2, 0.8),
    ("reps-vector", "reps", "vector", 1.25, 0.8),
    ("split-lora", "split", "lora", 0.4, 1.8),
    ("prompting-prompt", "prompting", "prompt", 1.0, 1.0),
]
OTHER_ENTRIES = [("diffmean-vector", "diffmean", "vector", 1.0, 1.0), ("split-vector", "split", "vector", 1.5, 0.5)]


def build_board(root: Path) -> Path:
    suite = default_suite_dir()
    for model, entries in ((MAIN, MAIN_ENTRIES), (OTHER, OTHER_ENTRIES)):
        for seed, (name, method, form, strength, damage) in enumerate(entries):
            sub = synthetic_submission(
                name, method, form, suite, model=model, strength=strength, damage=damage, seed=seed, n_boot=200
            )
            write_synthetic(sub, root)
    folder = root / MAIN
    (folder / "broken.json").write_text('{"schema_version": 1, "name": ', encoding="utf-8")
    data = json.loads((folder / "split-vector.json").read_text())
    del data["suite_score"]
    data["name"] = "no-score"
    (folder / "no-score.json").write_text(json.dumps(data), encoding="utf-8")
    tampered = synthetic_submission("tampered", "sft", "vector", suite, model=MAIN, seed=40, n_boot=200)
    text = json.loads(dump_submission(tampered))
    first = sorted(text["concepts"])[0]
    text["concepts"][first]["fa"] = min(1.0, text["concepts"][first]["fa"] + 0.05)  # an edited claim
    (folder / "tampered.json").write_text(json.dumps(text), encoding="utf-8")
    return root


def with_generations(sub: Submission, concept: str, text_at, k: int = 2) -> Submission:
    """``sub`` with a generations section for ``concept``: ``text_at(m, i)`` is the i-th of ``k``
    continuations at strength m; the statistics are recomputed from the text (keyword hits against
    the suite's card), fluency NLL rises with |m|, the prompts are the seeded choice and the sha256
    is the schema's own: the section passes the offline checks."""
    result = sub.concepts[concept]
    keywords = load_card(default_suite_dir() / concept / "card.yaml").keywords or []
    strengths, hashed = [], []
    for s in result.strengths:
        samples = []
        for i in range(k):
            text = text_at(s.m, i)
            stats = text_stats(text, keywords)
            samples.append(
                GeneratedText(
                    token_ids=[7 + i, 11, 13], text=text, fluency_nll=2.0 + abs(s.m) / 4 + i / 10,
                    repetition=stats.repetition, distinct2=stats.distinct2,
                    keyword_hit=stats.keyword_hit if keywords else None,
                )
            )  # fmt: skip
        strengths.append(StrengthGenerations(m=s.m, samples=samples))
        hashed.append((s.m, [x.token_ids for x in samples], [x.text for x in samples]))
    pair_ids = generation_prompt_ids(result.pair_ids, k, sub.seeds.method)
    section = Generations(
        version=1,
        max_new_tokens=48,
        pair_ids=pair_ids,
        strengths=strengths,
        sha256=generations_sha256(pair_ids, hashed),
    )
    concepts = {**sub.concepts, concept: result.model_copy(update={"generations": section})}
    return sub.model_copy(update={"concepts": concepts})


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def independent_fa(concept: dict) -> float:
    """FA of one concept straight from the file's per-pair NLLs, written apart from the harness.

    p and u from the definitions in docs/metrics.md; the area summed over the intervals
    between consecutive u values, each at the best p still reachable at its right end.
    """
    lp, ln = np.asarray(concept["len_pos"], float), np.asarray(concept["len_neg"], float)
    base = next(s for s in concept["strengths"] if s["m"] == 0)
    base_ll = np.logaddexp(-np.asarray(base["nll_pos"]), -np.asarray(base["nll_neg"]))
    points = []
    for s in concept["strengths"]:
        pos, neg = np.asarray(s["nll_pos"]), np.asarray(s["nll_neg"])
        p = float(np.mean(_sigmoid(neg - pos)))
        u = float(np.exp(min(0.0, np.mean((np.logaddexp(-pos, -neg) - base_ll) / ((lp + ln) / 2)))))
        points.append((u, p))
        if s["m"] == 0:
            points.append((1.0, p))
    xs = sorted({0.0, *(u for u, _ in points)})
    return sum((b - a) * max(p for u, p in points if u >= b) for a, b in zip(xs, xs[1:]))


def independent_ranking(folder: Path) -> list[tuple[str, float]]:
    """(name, mean FA over concepts) of every parseable entry in ``folder``, best first."""
    scored = []
    for path in sorted(folder.glob("*.json")):
        try:
            data = json.loads(path.read_text())
            scored.append((data["name"], float(np.mean([independent_fa(c) for c in data["concepts"].values()]))))
        except (json.JSONDecodeError, KeyError):
            continue  # the malformed file; the entry without suite_score still has concepts
    return sorted(scored, key=lambda t: (-t[1], t[0]))
