"""lm-eval 0.4.13 on the steer_pu tasks equals the native harness on smollm2-135m (to 1e-4).

Stock lm-eval takes the log-softmax in the model's dtype; in float32 that drifts by ~1e-5
nats per token over SmolLM2's 49k vocabulary (≈3e-4 on UtilOdds here, always the same sign),
which PrefOdds cancels but UtilOdds does not. The runs below keep float32 weights and pass
HFLM's ``softmax_dtype=float64`` (the native harness's own split: float32 forward, float64
log-softmax), as the README advises for exact comparisons. Measured on these 2 pairs: |Δ| ≤ 3.5e-5
with it, 2.9e-4 on UtilOdds without it.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from steer_pu.analysis import metrics
from steer_pu.engine.encoding import PromptFormat
from steer_pu.engine.scoring import score_pairs
from steer_pu.integrations.export import export_peft, export_steered
from steer_pu.interventions import LoRAIntervention, VectorIntervention
from steer_pu.models import load_model
from steer_pu.paths import default_suite_dir, lm_eval_task_dir
from steer_pu.suite.concepts import load_concepts

pytestmark = pytest.mark.integration

CONCEPT, LIMIT = "ocean", 2
EXACT = "softmax_dtype=float64"  # float32 weights, float64 log-softmax


@pytest.fixture(scope="module")
def smollm():
    return load_model("smollm2-135m")


@pytest.fixture(scope="module")
def unsteered(smollm) -> tuple[float, float]:
    return _native_means(smollm)


def _lm_eval_means(model: str, model_args: str) -> tuple[float, float]:
    import lm_eval
    from lm_eval.tasks import TaskManager

    metadata = dict(kv.split("=", 1) for kv in model_args.split(","))
    result = lm_eval.simple_evaluate(
        model=model,
        model_args=model_args,
        tasks=[f"steer_pu_{CONCEPT}"],
        task_manager=TaskManager(include_path=str(lm_eval_task_dir()), metadata=metadata),
        limit=LIMIT,
        device="cpu",
        batch_size=3 * LIMIT,  # one forward batch
    )
    row = result["results"][f"steer_pu_{CONCEPT}"]
    return row["pref_logodds,none"], row["util_logodds,none"]


def _native_means(smollm, intervention=None, m: float = 0.0) -> tuple[float, float]:
    pairs = PromptFormat(smollm.tokenizer, smollm.use_chat_template).encode_all(
        load_concepts(default_suite_dir(), [CONCEPT])[0].test[:LIMIT]
    )
    if intervention is None:
        scores = score_pairs(smollm.model, pairs)
    else:
        with intervention.apply(smollm.model, m):
            scores = score_pairs(smollm.model, pairs)
    return (
        float(np.mean(metrics.pref_logodds(scores.nll_pos, scores.nll_neg))),
        float(np.mean(metrics.util_logodds(scores.nll_pos, scores.nll_neg))),
    )


def _assert_equal(got: tuple[float, float], want: tuple[float, float]) -> None:
    assert got[0] == pytest.approx(want[0], abs=1e-4)
    assert got[1] == pytest.approx(want[1], abs=1e-4)


def test_unsteered(smollm, unsteered):
    _assert_equal(_lm_eval_means("hf", f"pretrained={smollm.path},{EXACT}"), unsteered)


def test_vector_through_steered_model(smollm, unsteered, tmp_path):
    gen = torch.Generator().manual_seed(0)
    vec, m = VectorIntervention(smollm.default_layer, {"vector": torch.randn(576, generator=gen)}), 4.0
    native = _native_means(smollm, vec, m)
    # the vector really acts: it moves UtilOdds (on the suite's minimal pairs a random direction
    # degrades both poles alike, so PrefOdds alone may barely move)
    assert abs(native[1] - unsteered[1]) > 0.05
    cfg = export_steered(vec, m, tmp_path / "steer.pt")
    _assert_equal(_lm_eval_means("steered", f"pretrained={smollm.path},steer_path={cfg},{EXACT}"), native)


def test_lora_through_peft(smollm, unsteered, tmp_path):
    gen = torch.Generator().manual_seed(1)
    tensors = {"lora_A": 0.2 * torch.randn(4, 1536, generator=gen), "lora_B": 0.2 * torch.randn(576, 4, generator=gen)}
    lora, m = LoRAIntervention(smollm.default_layer, tensors), 2.0
    native = _native_means(smollm, lora, m)
    assert abs(native[1] - unsteered[1]) > 0.05  # the LoRA really moves UtilOdds
    adapter = export_peft(lora, m, tmp_path / "adapter", smollm.path)
    _assert_equal(_lm_eval_means("hf", f"pretrained={smollm.path},peft={adapter},{EXACT}"), native)
