"""Train an intervention's tensors with the model frozen, running layers < L only once.

The layers below the steering layer L are frozen and no intervention touches them, so
their output is the same in every epoch. :func:`prepare_batches` runs the unsteered model
once over the training pairs, keeping per minibatch the block-L input (via
:class:`~steer_pu.engine.blocks.BlockRecorder`) and the unsteered log-probabilities (RePS's
reference). Each optimisation step then replays only blocks ≥ L with the intervention's
hooks at the sampled strengths and back-propagates through those blocks alone.

Schedule (docs/science.md §4): a strength factor is drawn per example from the form's list;
with ``add_sub`` every pair is also trained reversed (the negative completion wins at
−m); AdamW, learning rate decaying linearly to 0, no warm-up, grad-norm clip.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import nn
from transformers import PreTrainedModel

from steer_pu.architectures import down_projection, projection_shape
from steer_pu.engine.blocks import BlockRecorder, record_batch
from steer_pu.engine.encoding import EncodedPair
from steer_pu.engine.scoring import CompletionIndex, PackedBatch, check_packable, longest_first, pack
from steer_pu.errors import SteerPuError
from steer_pu.interventions import FORMS, Intervention


@dataclass(frozen=True)
class Completions:
    """One side (winning or losing) of a minibatch: summed log-probs, lengths, reference."""

    logp: torch.Tensor  # under steering, differentiable
    length: torch.Tensor
    ref: torch.Tensor  # under the unsteered model, constant


Objective = Callable[[Completions, Completions], torch.Tensor]


@dataclass
class TrainBatch:
    """A fixed group of packed pairs (outputs 2i = positive, 2i+1 = negative) and its recorded prefix."""

    recorder: BlockRecorder
    index: CompletionIndex
    lengths: torch.Tensor
    ref_logp: torch.Tensor

    @property
    def n_pairs(self) -> int:
        return self.index.batch_size // 2


@dataclass(frozen=True)
class TrainConfig:
    lr: float
    epochs: int
    batch_pairs: int
    factors: tuple[float, ...]
    add_sub: bool = True
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0


@contextmanager
def frozen(model: nn.Module) -> Iterator[None]:
    """Model parameters get no gradient inside the block; their flags are restored after."""
    flags = [p.requires_grad for p in model.parameters()]
    model.requires_grad_(False)
    try:
        yield
    finally:
        for p, flag in zip(model.parameters(), flags):
            p.requires_grad_(flag)


def prepare_batches(model: PreTrainedModel, layer: int, pairs: list[EncodedPair], batch_pairs: int) -> list[TrainBatch]:
    """Group pairs of similar length and run the unsteered model over each group once."""
    items = longest_first(pack(pairs))
    check_packable(model, items)
    batches = []
    with torch.no_grad():  # not inference_mode: the recorded tensors feed autograd later
        for start in range(0, len(items), batch_pairs):
            group = items[start : start + batch_pairs]
            packed = PackedBatch.of(group)
            recorder, base = record_batch(model, layer, packed)
            lengths = torch.tensor(
                [float(n) for item in group for n in (item.pos_len, item.neg_len)], dtype=torch.float64
            )
            batches.append(TrainBatch(recorder, packed.index, lengths, -packed.index.nll(model, base)))
    return batches


def steered_logp(
    model: PreTrainedModel, intervention: Intervention, batch: TrainBatch, strengths: torch.Tensor
) -> torch.Tensor:
    """Summed completion log-probs of every row with row r steered at ``strengths[r]``."""
    with intervention.apply(model, strengths):
        final = batch.recorder.replay(model)
    return -batch.index.nll(model, final, torch.float32).double()


def batch_loss(
    model: PreTrainedModel,
    intervention: Intervention,
    batch: TrainBatch,
    m: torch.Tensor,
    objective: Objective,
    add_sub: bool,
) -> torch.Tensor:
    """The objective at per-pair strengths ``m`` (+ the reversed pairs at −m with ``add_sub``)."""
    logp = steered_logp(model, intervention, batch, m)
    pos = Completions(logp[0::2], batch.lengths[0::2], batch.ref_logp[0::2])
    neg = Completions(logp[1::2], batch.lengths[1::2], batch.ref_logp[1::2])
    loss = objective(pos, neg)
    if not add_sub:
        return loss
    logp_rev = steered_logp(model, intervention, batch, -m)
    pos_rev = Completions(logp_rev[0::2], pos.length, pos.ref)
    neg_rev = Completions(logp_rev[1::2], neg.length, neg.ref)
    return 0.5 * (loss + objective(neg_rev, pos_rev))


def initial_intervention(
    form: str, model: PreTrainedModel, layer: int, rank: int, generator: torch.Generator
) -> Intervention:
    """Fresh trainable tensors: zero vector / zero deltas; LoRA B = 0 and A uniform ±1/√r.

    A's bound is the reference code's: ``kaiming_uniform_(a=√5)`` on an (in, r) tensor, whose fan-in
    is r, gives U(±1/√r) — 19.6× peft's U(±1/√in) on smollm2-135m (in = 1536, r = 4).
    """
    if form == "vector":
        tensors = {"vector": torch.zeros(model.config.hidden_size)}
    else:
        out_features, in_features = projection_shape(down_projection(model, layer))
        if form == "lora":
            bound = 1.0 / math.sqrt(rank)
            a = (torch.rand(rank, in_features, generator=generator) * 2 - 1) * bound
            tensors = {"lora_A": a, "lora_B": torch.zeros(out_features, rank)}
        elif form == "local_weight":
            tensors = {"delta_weight": torch.zeros(out_features, in_features), "delta_bias": torch.zeros(out_features)}
        else:
            raise SteerPuError(f"cannot train form '{form}'; trainable forms are vector, lora, local_weight")
    for t in tensors.values():
        t.requires_grad_(True)
    return FORMS[form](layer, tensors)


def train_intervention(
    model: PreTrainedModel,
    layer: int,
    pairs: list[EncodedPair],
    form: str,
    objective: Objective,
    config: TrainConfig,
    seed: int,
    rank: int = 4,
    on_step: Callable[[int, int, float], None] | None = None,
) -> tuple[Intervention, list[float]]:
    """Train one intervention; returns it (tensors detached) and the mean loss of each epoch."""
    if not pairs:
        raise SteerPuError("training needs at least one pair")
    generator = torch.Generator().manual_seed(seed)
    with frozen(model):
        intervention = initial_intervention(form, model, layer, rank, generator)
        batches = prepare_batches(model, layer, pairs, config.batch_pairs)
        params = intervention.parameters()
        optimizer = torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
        total = config.epochs * len(batches)
        schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0 - step / total)
        factors = torch.tensor(config.factors, dtype=torch.float32)
        history, step = [], 0
        for _ in range(config.epochs):
            epoch_loss = 0.0
            for b in torch.randperm(len(batches), generator=generator).tolist():
                batch = batches[b]
                m = factors[torch.randint(len(factors), (batch.n_pairs,), generator=generator)]
                loss = batch_loss(model, intervention, batch, m, objective, config.add_sub)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(params, config.max_grad_norm)
                optimizer.step()
                schedule.step()
                step += 1
                epoch_loss += loss.item() * batch.n_pairs
                if on_step:
                    on_step(step, total, loss.item())
            history.append(epoch_loss / len(pairs))
    trained = {name: t.detach().clone() for name, t in intervention.tensors.items()}
    return FORMS[form](layer, trained), history
