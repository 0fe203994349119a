"""RePS: reference-free bidirectional preference steering (Wu et al. 2025; docs/science.md §4)."""

from __future__ import annotations

from typing import Any

import torch

from steer_pu.methods.base import register
from steer_pu.methods.losses import reps_loss
from steer_pu.methods.trained import TrainedMethod
from steer_pu.methods.trainer import Completions


@register
class RePS(TrainedMethod):
    name = "reps"

    def objective_hyperparams(self) -> dict[str, Any]:
        return {"ref_scale": 1.0}

    def default_sub_mode(self) -> str:
        # the reference's RePS vectors subtract by null-it-out; its LoRA and local weight at −m
        return "null" if self.form == "vector" else "negate"

    def objective(self, win: Completions, lose: Completions) -> torch.Tensor:
        return reps_loss(
            win.logp,
            lose.logp,
            win.seq_length,
            lose.seq_length,
            win.ref,
            lose.ref,
            float(self.hyperparams["ref_scale"]),
        )
