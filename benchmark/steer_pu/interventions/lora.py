"""LoRA form: W_down ← W_down + m·B·A at layer L (rank r, no alpha/r scaling)."""

from __future__ import annotations

from torch import nn

from steer_pu.architectures import register_mlp_update
from steer_pu.interventions.base import Intervention, Strength, TrainDropout, dropped, scale


class LoRAIntervention(Intervention):
    form = "lora"
    # peft's layout: lora_A is (r, in_features), lora_B is (out_features, r).
    tensor_names = ("lora_A", "lora_B")

    def _hook(self, model: nn.Module, strength: Strength, dropout: TrainDropout | None):
        a, b = self.tensors["lora_A"], self.tensors["lora_B"]

        def add_low_rank(x, output):
            # (W + m·B·A) x = W x + m·B(A x): never materialise or write the weight. Training
            # dropout acts on the m-scaled update, as in the reference (not on x, as in peft).
            return output + dropped(scale(strength, (x @ a.T.to(output.dtype)) @ b.T.to(output.dtype)), dropout)

        return register_mlp_update(model, self.layer, add_low_rank)
