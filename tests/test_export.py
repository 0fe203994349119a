"""Exports for lm-eval: the steered config and the peft adapter reproduce steer-pu's own hooks."""

from __future__ import annotations

import pytest
import torch
import transformers
from transformers import AutoModelForCausalLM

from steer_pu.errors import SteerPuError
from steer_pu.integrations.export import export_delta, export_peft, export_steered, steered_config
from steer_pu.interventions import LocalWeightIntervention, LoRAIntervention, VectorIntervention

LAYER = 2


def _ids(tokenizer) -> torch.Tensor:
    return torch.tensor([tokenizer("<|im_start|>user\nhello there, how are you?<|im_end|>\n").input_ids])


def _vector(hidden: int = 32) -> VectorIntervention:
    torch.manual_seed(1)
    return VectorIntervention(LAYER, {"vector": torch.randn(hidden)})


def _lora(hidden: int = 32, inner: int = 64, rank: int = 4) -> LoRAIntervention:
    torch.manual_seed(2)
    return LoRAIntervention(
        LAYER, {"lora_A": torch.randn(rank, inner) * 0.3, "lora_B": torch.randn(hidden, rank) * 0.3}
    )


def test_steered_config_has_lm_eval_layout(tmp_path):
    vec = _vector()
    path = export_steered(vec, 3.5, tmp_path / "cfg.pt")
    cfg = torch.load(path, weights_only=False)
    assert list(cfg) == [f"layers.{LAYER}"]
    entry = cfg[f"layers.{LAYER}"]
    assert entry["action"] == "add" and entry["bias"] is None and entry["head_index"] is None
    assert entry["steering_coefficient"] == 3.5
    assert torch.equal(entry["steering_vector"], vec.vector)


def test_lm_eval_steered_model_equals_vector_hook(tmp_path, tiny_model_dir, tiny_tokenizer):
    from lm_eval.models.hf_steered import SteeredModel

    vec, m = _vector(), 2.5
    lm = SteeredModel(
        pretrained=str(tiny_model_dir),
        steer_path=str(export_steered(vec, m, tmp_path / "cfg.pt")),
        device="cpu",
        dtype="float32",
    )
    ids = _ids(tiny_tokenizer)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()
    with torch.inference_mode():
        with vec.apply(model, m):
            native = model(input_ids=ids).logits
        plain = model(input_ids=ids).logits
        got = lm._model_call(ids)
    assert torch.allclose(got, native, atol=1e-5)
    assert not torch.allclose(got, plain, atol=1e-2)  # the steering really acts


@pytest.mark.parametrize("m", [0.0, 1.7, -0.8])
def test_peft_adapter_equals_lora_hook(tmp_path, tiny_model_dir, tiny_tokenizer, m):
    from peft import PeftModel

    lora = _lora()
    out = export_peft(lora, m, tmp_path / "adapter", base_model=str(tiny_model_dir))
    ids = _ids(tiny_tokenizer)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()
    with torch.inference_mode():
        with lora.apply(model, m):
            native = model(input_ids=ids).logits
        plain = model(input_ids=ids).logits
    peft_model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_model_dir), out).eval()
    with torch.inference_mode():
        got = peft_model(input_ids=ids).logits
    assert torch.allclose(got, native, atol=1e-5)
    assert torch.allclose(got, plain, atol=1e-6) == (m == 0.0)


def test_export_replaces_an_earlier_adapter_but_refuses_other_folders(tmp_path, tiny_model_dir):
    lora = _lora()
    out = export_peft(lora, 1.0, tmp_path / "adapter", tiny_model_dir)
    export_peft(lora, 2.0, out, tiny_model_dir)  # re-export at another strength: replaced in place
    assert sorted(p.name for p in out.iterdir()) == [
        "adapter_config.json",
        "adapter_model.safetensors",
        "steer_pu_export.json",
    ]
    other = tmp_path / "notes"
    other.mkdir()
    (other / "keep.txt").write_text("mine")
    with pytest.raises(SteerPuError, match="not an earlier export"):
        export_peft(lora, 1.0, other, tiny_model_dir)
    assert [p.name for p in other.iterdir()] == ["keep.txt"]


def test_export_refuses_the_wrong_form_and_suffix(tmp_path, tiny_model_dir):
    local = LocalWeightIntervention(LAYER, {"delta_weight": torch.zeros(32, 64), "delta_bias": torch.zeros(32)})
    with pytest.raises(SteerPuError, match="'form' is 'local_weight'; this export needs form 'vector'"):
        steered_config(local, 1.0)
    with pytest.raises(SteerPuError, match="'form' is 'vector'; this export needs form 'lora'"):
        export_peft(_vector(), 1.0, tmp_path / "a", tiny_model_dir)
    with pytest.raises(SteerPuError, match=r"\.pt"):
        export_steered(_vector(), 1.0, tmp_path / "cfg.safetensors")
    assert list(tmp_path.iterdir()) == []


def test_export_reads_a_saved_artifact(tmp_path):
    vec = _vector()
    vec.save(tmp_path / "art")
    cfg = steered_config(tmp_path / "art", -2.0)
    assert torch.equal(cfg[f"layers.{LAYER}"]["steering_vector"], vec.vector)


def _local(bias_scale: float = 0.0) -> LocalWeightIntervention:
    torch.manual_seed(4)
    return LocalWeightIntervention(
        LAYER, {"delta_weight": 0.2 * torch.randn(32, 64), "delta_bias": bias_scale * torch.randn(32)}
    )


def test_lm_eval_delta_equals_local_weight_hook(tmp_path, tiny_model_dir, tiny_tokenizer):
    from lm_eval.models.huggingface import HFLM

    local, m = _local(), 1.3
    out = export_delta(local, m, tmp_path / "delta", tiny_model_dir)
    lm = HFLM(pretrained=str(tiny_model_dir), delta=str(out), device="cpu", dtype="float32")
    ids = _ids(tiny_tokenizer)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()
    with torch.inference_mode():
        with local.apply(model, m):
            native = model(input_ids=ids).logits
        plain = model(input_ids=ids).logits
        got = lm._model_call(ids)
    assert torch.allclose(got, native, atol=1e-5)
    assert not torch.allclose(got, plain, atol=1e-2)


def test_delta_export_refuses_a_bias_the_model_lacks_and_never_overwrites_a_model(tmp_path, tiny_model_dir):
    with pytest.raises(SteerPuError, match="'delta_bias' is non-zero"):
        export_delta(_local(bias_scale=1.0), 1.0, tmp_path / "delta", tiny_model_dir)
    assert not (tmp_path / "delta").exists()
    with pytest.raises(SteerPuError, match="not an earlier export"):
        export_delta(_local(), 1.0, tiny_model_dir, tiny_model_dir)


@pytest.mark.parametrize("family", ["gemma2", "gemma3_text"])
def test_weight_exports_are_refused_where_the_update_is_past_a_norm(tmp_path, family):
    """On Gemma-2/3 the native update is added past post_feedforward_layernorm; a peft adapter or
    delta on the down-projection would be a different model, so neither export is written."""
    config_class = {"gemma2": transformers.Gemma2Config, "gemma3_text": transformers.Gemma3TextConfig}[family]
    base = tmp_path / "gemma"
    config_class(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=3,
                 num_attention_heads=4, num_key_value_heads=2, head_dim=8).save_pretrained(base)  # fmt: skip
    with pytest.raises(SteerPuError, match="past the norm that follows the MLP.*steer_pu model"):
        export_peft(_lora(), 1.0, tmp_path / "adapter", base)
    assert not (tmp_path / "adapter").exists()


def test_peft_export_refuses_a_layer_the_model_lacks(tmp_path, tiny_model_dir):
    lora = _lora()
    far = LoRAIntervention(99, dict(lora.tensors))
    with pytest.raises(SteerPuError, match="layer 99 is not a layer"):
        export_peft(far, 1.0, tmp_path / "adapter", tiny_model_dir)
