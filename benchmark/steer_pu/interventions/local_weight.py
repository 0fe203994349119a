"""Local-weight form: W_down ← W_down + m·ΔW and b ← b + m·Δb at layer L (full rank)."""

from __future__ import annotations

from torch import nn

from steer_pu.architectures import register_mlp_update
from steer_pu.interventions.base import Intervention, Strength, TrainDropout, dropped, scale


class LocalWeightIntervention(Intervention):
    form = "local_weight"
    tensor_names = ("delta_weight", "delta_bias")

    def _hook(self, model: nn.Module, strength: Strength, dropout: TrainDropout | None):
        dw, db = self.tensors["delta_weight"], self.tensors["delta_bias"]

        def add_delta(x, output):
            # Works whether or not the down-projection has a bias of its own (Llama's has none);
            # training dropout acts on the whole m-scaled update, bias included (the reference's).
            return output + dropped(scale(strength, x @ dw.T.to(output.dtype) + db.to(output.dtype)), dropout)

        return register_mlp_update(model, self.layer, add_delta)
