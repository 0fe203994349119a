"""SFT: cross-entropy of the target completion under steering (science.md §4)."""

from __future__ import annotations

import torch

from .base import register
from .losses import sft_loss
from .trained import TrainedMethod
from .trainer import Completions


@register
class SFT(TrainedMethod):
    name = "sft"

    def objective(self, win: Completions, lose: Completions) -> torch.Tensor:
        return sft_loss(win.logp, win.length)
