"""SPLIT-vector trained on one smollm2-135m concept raises the training pairs' PrefOdds at m > 0."""

import pytest

from steer_pu.analysis.metrics import pref_logodds, util_logodds
from steer_pu.engine.encoding import PromptFormat
from steer_pu.engine.sweep import score_sweep
from steer_pu.methods import SPLIT
from steer_pu.models import load_model
from steer_pu.paths import default_suite_dir
from steer_pu.suite.concepts import load_concepts

pytestmark = pytest.mark.integration


def test_split_vector_moves_train_preference():
    loaded = load_model("smollm2-135m")
    concept = load_concepts(default_suite_dir(), ["power_seeking"])[0]
    train = concept.train[:16]  # a small slice keeps this test short on 2 cores
    fmt = PromptFormat(loaded.tokenizer, loaded.use_chat_template)
    method = SPLIT("vector", steps=4, batch_pairs=8)
    vector = method.fit(loaded, fmt, loaded.default_layer, train, seed=0)
    assert method.last_loss_history[-1] < method.last_loss_history[0]

    scores = score_sweep(loaded.model, fmt.encode_all(train), vector, [-4.0, 0.0, 4.0, 8.0])
    pref = {m: pref_logodds(s.nll_pos, s.nll_neg).mean() for m, s in scores.items()}
    util = {m: util_logodds(s.nll_pos, s.nll_neg).mean() for m, s in scores.items()}
    print({m: (round(pref[m], 3), round(util[m], 3)) for m in pref})
    assert pref[4.0] > pref[0.0] + 0.5
    assert pref[8.0] > pref[4.0]
    assert pref[-4.0] < pref[0.0]
