"""DiffMean: the mean difference of block-L activations between positive and negative answers.

v = mean over pairs of [mean over answer tokens of h_L(q + A_p) − same for A_n],
unnormalised (docs/science.md §4). Training-free; the seed is unused. As in the reference code,
the answer's tokens are its text's: the end-of-turn token that closes a scored completion is
left out of the mean.
"""

from __future__ import annotations

import contextlib

import torch

from steer_pu.architectures import block_hidden, decoder_layers
from steer_pu.engine.encoding import PromptFormat
from steer_pu.engine.scoring import DEFAULT_TOKEN_BUDGET, PackedBatch, length_batches, pack
from steer_pu.interventions import VectorIntervention
from steer_pu.methods.base import Method, register
from steer_pu.models import LoadedModel
from steer_pu.suite.concepts import Card, Pair


def completion_mean_activations(
    model: LoadedModel, layer: int, pairs, token_budget: int = DEFAULT_TOKEN_BUDGET, skip_last: int = 0
) -> torch.Tensor:
    """(2·pairs, hidden) mean block-``layer`` output over each completion's tokens, leaving out its
    last ``skip_last`` (the end-of-turn marker), but never its only token."""
    items = pack(pairs)
    out = torch.zeros(2 * len(items), model.model.config.hidden_size, dtype=torch.float64)
    captured: list[torch.Tensor] = []

    class _Captured(Exception):
        """Raised once block ``layer`` has run: the blocks above it are not needed."""

    def grab(_module, _inputs, output):
        captured.append(block_hidden(output))
        raise _Captured

    handle = decoder_layers(model.model)[layer].register_forward_hook(grab)
    try:
        with torch.inference_mode():
            for batch in length_batches(items, token_budget):
                captured.clear()
                with contextlib.suppress(_Captured):
                    PackedBatch.of(batch).hidden(model.model)
                hidden = captured[0]
                for r, item in enumerate(batch):
                    p, a, b = item.prompt_len, item.pos_len, item.neg_len
                    keep_a, keep_b = max(1, a - skip_last), max(1, b - skip_last)
                    out[2 * item.index] = hidden[r, p : p + keep_a].double().mean(dim=0)
                    out[2 * item.index + 1] = hidden[r, p + a : p + a + keep_b].double().mean(dim=0)
    finally:
        handle.remove()
    return out


@register
class DiffMean(Method):
    name = "diffmean"
    forms = ("vector",)
    default_strengths = {"vector": (-8.0, -4.0, -2.0, 2.0, 4.0, 6.0, 8.0, 12.0, 16.0, 20.0)}

    def fit(
        self, model: LoadedModel, fmt: PromptFormat, layer: int, train: list[Pair], seed: int, card: Card | None = None
    ) -> VectorIntervention:
        acts = completion_mean_activations(model, layer, fmt.encode_all(train), skip_last=fmt.end_of_turn_tokens)
        vector = (acts[0::2] - acts[1::2]).mean(dim=0)
        return VectorIntervention(layer, {"vector": vector.float()})
