"""Interventions on a tiny model: the unified update, exact restoration, equivalences, files."""

import copy

import pytest
import torch
from peft import LoraConfig, get_peft_model

from steer_pu.errors import SteerPuError
from steer_pu.interventions import LocalWeightIntervention, LoRAIntervention, VectorIntervention, load_intervention

from .conftest import build_model

LAYER = 2
HIDDEN, INTER, RANK = 32, 64, 4


def random_interventions(seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    return [
        VectorIntervention(LAYER, {"vector": torch.randn(HIDDEN, generator=g)}),
        LoRAIntervention(
            LAYER, {"lora_A": torch.randn(RANK, INTER, generator=g), "lora_B": torch.randn(HIDDEN, RANK, generator=g)}
        ),
        LocalWeightIntervention(
            LAYER,
            {
                "delta_weight": 0.1 * torch.randn(HIDDEN, INTER, generator=g),
                "delta_bias": torch.randn(HIDDEN, generator=g),
            },
        ),
    ]


def ids():
    return torch.tensor([[5, 9, 100, 42, 7, 250, 13], [3, 3, 80, 81, 82, 1, 2]])


def logits(model, **kw):
    with torch.no_grad():
        return model(input_ids=ids(), **kw).logits


@pytest.mark.parametrize("intervention", random_interventions(), ids=lambda i: i.form)
def test_zero_strength_is_unsteered_and_nonzero_changes_output(tiny_model, intervention):
    base = logits(tiny_model)
    with intervention.apply(tiny_model, 0.0):
        assert torch.equal(logits(tiny_model), base)
    with intervention.apply(tiny_model, 1.5):
        assert not torch.allclose(logits(tiny_model), base)


@pytest.mark.parametrize("intervention", random_interventions(), ids=lambda i: i.form)
def test_model_restored_bit_for_bit_even_on_error(tiny_model, intervention):
    state = copy.deepcopy(tiny_model.state_dict())
    base = logits(tiny_model)
    with pytest.raises(RuntimeError, match="boom"), intervention.apply(tiny_model, 3.0):
        logits(tiny_model)
        raise RuntimeError("boom")
    assert all(torch.equal(state[k], v) for k, v in tiny_model.state_dict().items())
    assert not any(m._forward_hooks for m in tiny_model.modules())
    assert torch.equal(logits(tiny_model), base)


def block_inputs(model, layers):
    """Capture the inputs of the given decoder blocks during one forward."""
    seen = {}
    handles = [
        model.model.layers[i].register_forward_pre_hook(
            lambda _m, args, kw, i=i: seen.__setitem__(i, (args or (kw["hidden_states"],))[0].clone()), with_kwargs=True
        )
        for i in layers
    ]
    try:
        logits(model)
    finally:
        for h in handles:
            h.remove()
    return seen


def test_vector_adds_to_block_output(tiny_model):
    vec = random_interventions()[0]
    base = block_inputs(tiny_model, [LAYER, LAYER + 1])
    with vec.apply(tiny_model, 2.5):
        steered = block_inputs(tiny_model, [LAYER, LAYER + 1])
    # the input of block L + 1 is the output of block L: exactly h + m·v there, unchanged below
    torch.testing.assert_close(steered[LAYER + 1], base[LAYER + 1] + 2.5 * vec.vector, rtol=0, atol=1e-5)
    assert torch.equal(steered[LAYER], base[LAYER])


def test_lora_equals_peft_adapter_with_scaled_B(tiny_model):
    lora = random_interventions()[1]
    m = 1.7
    with lora.apply(tiny_model, m):
        ours = logits(tiny_model)
    config = LoraConfig(
        r=RANK, lora_alpha=RANK, target_modules=["down_proj"], layers_to_transform=[LAYER], lora_dropout=0.0
    )
    peft_model = get_peft_model(copy.deepcopy(tiny_model), config).eval()
    module = peft_model.base_model.model.model.layers[LAYER].mlp.down_proj
    with torch.no_grad():
        module.lora_A["default"].weight.copy_(lora.tensors["lora_A"])
        module.lora_B["default"].weight.copy_(m * lora.tensors["lora_B"])
    torch.testing.assert_close(ours, logits(peft_model), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("mlp_bias", [False, True])
def test_local_weight_equals_editing_down_proj(tiny_tokenizer, mlp_bias):
    model = build_model(len(tiny_tokenizer), mlp_bias=mlp_bias)
    local = random_interventions()[2]
    m = -0.8
    with local.apply(model, m):
        ours = logits(model)
    edited = copy.deepcopy(model)
    down = edited.model.layers[LAYER].mlp.down_proj
    with torch.no_grad():
        down.weight += m * local.tensors["delta_weight"]
        if mlp_bias:
            down.bias += m * local.tensors["delta_bias"]
        else:
            down.bias = torch.nn.Parameter(m * local.tensors["delta_bias"])
    torch.testing.assert_close(ours, logits(edited), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("intervention", random_interventions(), ids=lambda i: i.form)
def test_per_row_strengths_equal_separate_runs(tiny_model, intervention):
    strengths = torch.tensor([0.5, -2.0])
    with intervention.apply(tiny_model, strengths):
        batched = logits(tiny_model)
    for row, m in enumerate(strengths.tolist()):
        with intervention.apply(tiny_model, m):
            torch.testing.assert_close(batched[row], logits(tiny_model)[row], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("intervention", random_interventions(), ids=lambda i: i.form)
def test_safetensors_round_trip(tmp_path, intervention):
    intervention.save(tmp_path / "art", {"method": "test"})
    loaded = load_intervention(tmp_path / "art")
    assert type(loaded) is type(intervention) and loaded.layer == LAYER
    assert all(torch.equal(loaded.tensors[k], v) for k, v in intervention.tensors.items())


def test_pickle_is_refused(tmp_path):
    (tmp_path / "art").mkdir()
    torch.save({"vector": torch.zeros(3)}, tmp_path / "art" / "intervention.safetensors")
    with pytest.raises(SteerPuError, match="pickle / torch.save file; steer-pu only loads safetensors"):
        load_intervention(tmp_path / "art")


def test_nan_tensor_is_refused(tmp_path):
    VectorIntervention(1, {"vector": torch.tensor([1.0, float("nan")])}).save(tmp_path / "art")
    with pytest.raises(SteerPuError, match="tensor 'vector' contains NaN or inf"):
        load_intervention(tmp_path / "art")


def test_garbage_file_is_refused(tmp_path):
    (tmp_path / "intervention.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00garbage!")
    with pytest.raises(SteerPuError, match="not a valid safetensors file"):
        load_intervention(tmp_path / "intervention.safetensors")


def _block_output(model, run):
    """Block LAYER's output hidden states during ``run()``."""
    seen = {}
    handle = model.model.layers[LAYER].register_forward_hook(lambda _m, _a, out: seen.update(h=out))
    try:
        run()
    finally:
        handle.remove()
    h = seen["h"]
    return h[0] if isinstance(h, tuple) else h


def test_null_it_out_removes_the_positive_component_along_v(tiny_model):
    """RePS's vector subtraction side: h − ReLU(h·v)/‖v‖²·v at every position, restored after."""
    vec = random_interventions()[0]
    plain = _block_output(tiny_model, lambda: logits(tiny_model))
    with vec.null_out(tiny_model):
        nulled = _block_output(tiny_model, lambda: logits(tiny_model))
    v = vec.vector
    expected = plain - (torch.relu(plain @ v) / v.dot(v)).unsqueeze(-1) * v
    torch.testing.assert_close(nulled, expected, rtol=1e-5, atol=1e-5)
    assert (nulled @ v).max() <= 1e-4  # no state keeps a positive component along v
    assert torch.equal(_block_output(tiny_model, lambda: logits(tiny_model)), plain)


def test_training_dropout_is_per_row_for_vectors_and_reproducible(tiny_model):
    """Dropout on v: one inverted mask per batch row over the hidden dims, the same at every position;
    the same generator seed gives the same masks; without dropout the update is whole."""
    from steer_pu.interventions.base import TrainDropout

    vec, m = random_interventions()[0], 2.0
    plain = _block_output(tiny_model, lambda: logits(tiny_model))

    def steered(dropout):
        with vec.apply(tiny_model, m, dropout):
            return _block_output(tiny_model, lambda: logits(tiny_model))

    whole = steered(None)
    torch.testing.assert_close(whole - plain, (m * vec.vector).expand_as(plain), rtol=1e-5, atol=1e-5)
    first = steered(TrainDropout(0.5, torch.Generator().manual_seed(3))) - plain
    again = steered(TrainDropout(0.5, torch.Generator().manual_seed(3))) - plain
    assert torch.equal(first, again)
    ratio = first / (m * vec.vector)
    assert torch.allclose(ratio, ratio[:, :1].expand_as(ratio), atol=1e-4)  # same mask at every position
    kept = ratio[:, 0].round()
    assert set(kept.flatten().tolist()) <= {0.0, 2.0} and 0 < kept.count_nonzero() < kept.numel()


@pytest.mark.parametrize("index", [1, 2])
def test_training_dropout_on_weight_forms_acts_on_the_scaled_update(tiny_model, index):
    from steer_pu.interventions.base import TrainDropout

    control, m = random_interventions()[index], 1.5
    plain = _block_output(tiny_model, lambda: logits(tiny_model))
    with control.apply(tiny_model, m):
        whole = _block_output(tiny_model, lambda: logits(tiny_model)) - plain
    with control.apply(tiny_model, m, TrainDropout(0.5, torch.Generator().manual_seed(0))):
        part = _block_output(tiny_model, lambda: logits(tiny_model)) - plain
    ratio = (part / whole)[whole.abs() > 1e-3]
    assert torch.allclose(ratio.round(), ratio, atol=1e-3) and set(ratio.round().tolist()) == {0.0, 2.0}
