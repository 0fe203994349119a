"""DiffMean against an independent computation from output_hidden_states."""

import pytest
import torch

from steer_pu.engine.encoding import PromptFormat
from steer_pu.errors import SteerPuError
from steer_pu.methods import DiffMean, check_grid, get_method
from steer_pu.models import load_model
from steer_pu.suite.concepts import load_concepts


def test_diffmean_matches_reference(tiny_model_dir, tiny_suite):
    """The reference code's CAA: the answer text after the prompt, alone (no end-of-turn token),
    its block-L outputs averaged; v = mean over pairs of the positive − negative means."""
    loaded = load_model(str(tiny_model_dir))
    concept = load_concepts(tiny_suite, ["cheer"])[0]
    fmt = PromptFormat(loaded.tokenizer, True)
    layer = 1
    vec = DiffMean().fit(loaded, fmt, layer, concept.train, seed=0)

    diffs = []
    for pair, text in zip(fmt.encode_all(concept.train), concept.train):
        means = []
        for answer in (text.positive, text.negative):
            completion = loaded.tokenizer(answer, add_special_tokens=False).input_ids
            ids = torch.tensor([list(pair.prompt_ids) + completion])
            with torch.no_grad():
                h = loaded.model(input_ids=ids, output_hidden_states=True).hidden_states[layer + 1][0]
            means.append(h[len(pair.prompt_ids) :].double().mean(0))
        diffs.append(means[0] - means[1])
    expected = torch.stack(diffs).mean(0).float()
    assert vec.layer == layer
    torch.testing.assert_close(vec.vector, expected, rtol=1e-5, atol=1e-5)


def test_registry_and_grid_rules():
    assert get_method("diffmean") is DiffMean
    with pytest.raises(SteerPuError, match="unknown method 'nope'"):
        get_method("nope")
    with pytest.raises(SteerPuError, match="cannot import"):
        get_method("no_such_pkg.mod:Cls")
    with pytest.raises(SteerPuError, match="has no form 'lora'"):
        DiffMean("lora")
    with pytest.raises(SteerPuError, match="unknown hyper-parameter"):
        DiffMean(lr=1.0)
    assert check_grid([4, 2, 2, -1]) == [-1.0, 0.0, 2.0, 4.0]
    with pytest.raises(SteerPuError, match="at most 16"):
        check_grid(list(range(1, 17)))
    with pytest.raises(SteerPuError, match="finite"):
        check_grid([float("nan")])
