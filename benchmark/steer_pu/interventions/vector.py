"""Vector form: h_L ← h_L + m·v on the output of decoder block L, at every position."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn

from steer_pu.architectures import block_hidden, decoder_layers, with_block_hidden
from steer_pu.interventions.base import Intervention, Strength, TrainDropout, scale


class VectorIntervention(Intervention):
    form = "vector"
    tensor_names = ("vector",)

    @property
    def vector(self) -> torch.Tensor:
        return self.tensors["vector"]

    def _rows(self, hidden: torch.Tensor, dropout: TrainDropout | None) -> torch.Tensor:
        """v per batch row, (batch, 1, d): under training dropout one mask per row over the hidden
        dimensions, shared by every position (the reference drops out v itself)."""
        v = self.vector.to(hidden).view(1, 1, -1).expand(hidden.shape[0], 1, -1)
        if dropout is None or dropout.p == 0:
            return v
        return v * dropout.mask((hidden.shape[0], 1, hidden.shape[-1]), hidden)

    def _hook(self, model: nn.Module, strength: Strength, dropout: TrainDropout | None):
        def add_vector(_module, _inputs, output):
            # Decoder blocks return a tensor or a tuple whose first item is the hidden states.
            hidden = block_hidden(output)
            return with_block_hidden(output, hidden + scale(strength, self._rows(hidden, dropout)))

        return decoder_layers(model)[self.layer].register_forward_hook(add_vector)

    @contextmanager
    def null_out(self, model: nn.Module, dropout: TrainDropout | None = None) -> Iterator[nn.Module]:
        """RePS's subtraction side for vectors (the reference's "null-it-out"): remove the positive
        part of each state's component along v, h ← h − ReLU(h·v)/‖v‖²·v, whatever the strength.
        Training only; under dropout the removed direction is the dropped-out v, its norm the whole v's."""

        def project_out(_module, _inputs, output):
            hidden = block_hidden(output)
            v = self.vector.to(hidden)
            along = torch.relu(hidden @ v) / v.dot(v).clamp_min(torch.finfo(hidden.dtype).tiny)
            return with_block_hidden(output, hidden - along.unsqueeze(-1) * self._rows(hidden, dropout))

        handle = decoder_layers(model)[self.layer].register_forward_hook(project_out)
        try:
            yield model
        finally:
            handle.remove()
