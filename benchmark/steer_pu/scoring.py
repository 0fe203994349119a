"""Summed completion NLLs per pair: the raw numbers every metric is computed from.

The batched scorer packs (prompt + completion) sequences by length under a token budget,
runs the decoder once per batch, and applies the vocabulary projection only at the
positions that predict completion tokens. :func:`score_pairs_plain` is the one-sequence,
full-logits reference it is tested against.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
from transformers import PreTrainedModel

from .encoding import EncodedPair
from .pair_scores import PairScores

DEFAULT_TOKEN_BUDGET = 8192  # tokens per forward batch: bounds memory, not the pair count


@dataclass(frozen=True)
class Sequence:
    """One prompt + completion token sequence; ``index`` is 2·pair (+1 for the negative)."""

    index: int  # position in the flat output (2 per pair: positive, then negative)
    ids: tuple[int, ...]
    completion_len: int


def pair_sequences(pairs: list[EncodedPair]) -> list[Sequence]:
    out = []
    for i, pair in enumerate(pairs):
        out.append(Sequence(2 * i, pair.prompt_ids + pair.pos_ids, len(pair.pos_ids)))
        out.append(Sequence(2 * i + 1, pair.prompt_ids + pair.neg_ids, len(pair.neg_ids)))
    return out


def length_batches(seqs: list[Sequence], token_budget: int) -> Iterator[list[Sequence]]:
    """Group sequences of similar length so that batch_size × max_len ≤ token_budget."""
    ordered = sorted(seqs, key=lambda s: (-len(s.ids), s.index))
    batch: list[Sequence] = []
    for seq in ordered:
        width = len(batch[0].ids) if batch else len(seq.ids)
        if batch and (len(batch) + 1) * width > token_budget:
            yield batch
            batch = []
        batch.append(seq)
    if batch:
        yield batch


def output_logits(model: PreTrainedModel, hidden: torch.Tensor, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """Vocabulary logits for selected final hidden states (with Gemma-style soft-capping).

    Scoring accumulates in float64; training passes float32 (a quarter of the memory).
    """
    logits = model.get_output_embeddings()(hidden).to(dtype)
    cap = getattr(model.config, "final_logit_softcapping", None)
    if cap:
        logits = torch.tanh(logits / cap) * cap
    return logits


def right_pad(batch: list[Sequence]) -> tuple[torch.Tensor, torch.Tensor]:
    """Input ids and attention mask, right-padded to the longest sequence of the batch."""
    width = max(len(seq.ids) for seq in batch)
    input_ids = torch.zeros(len(batch), width, dtype=torch.long)
    attention = torch.zeros(len(batch), width, dtype=torch.long)
    for r, seq in enumerate(batch):
        input_ids[r, : len(seq.ids)] = torch.tensor(seq.ids)
        attention[r, : len(seq.ids)] = 1
    return input_ids, attention


@dataclass(frozen=True)
class CompletionIndex:
    """Where, in a padded batch, the hidden states that predict completion tokens sit."""

    rows: torch.Tensor
    cols: torch.Tensor
    targets: torch.Tensor
    owner: torch.Tensor  # batch row each scored token belongs to
    batch_size: int

    @classmethod
    def of(cls, batch: list[Sequence]) -> "CompletionIndex":
        rows, cols, targets = [], [], []
        for r, seq in enumerate(batch):
            n = len(seq.ids)
            start = n - seq.completion_len  # first completion token
            rows.extend([r] * seq.completion_len)
            cols.extend(range(start - 1, n - 1))  # hidden state at t predicts token t + 1
            targets.extend(seq.ids[start:])
        rows_t = torch.tensor(rows)
        return cls(rows_t, torch.tensor(cols), torch.tensor(targets), rows_t, len(batch))

    def nll(self, model: PreTrainedModel, final_hidden: torch.Tensor, dtype: torch.dtype = torch.float64) -> torch.Tensor:
        """Summed NLL per batch row from final (normed) hidden states: vocab projection only here."""
        logits = output_logits(model, final_hidden[self.rows, self.cols], dtype)
        token_nll = torch.logsumexp(logits, dim=-1) - logits.gather(1, self.targets[:, None])[:, 0]
        return torch.zeros(self.batch_size, dtype=dtype).index_add_(0, self.owner, token_nll)


def _batch_nll(model: PreTrainedModel, batch: list[Sequence]) -> torch.Tensor:
    input_ids, attention = right_pad(batch)
    hidden = model.model(input_ids=input_ids, attention_mask=attention, use_cache=False).last_hidden_state
    return CompletionIndex.of(batch).nll(model, hidden)


def score_pairs(
    model: PreTrainedModel, pairs: list[EncodedPair], token_budget: int = DEFAULT_TOKEN_BUDGET
) -> PairScores:
    """Summed NLL of each pair's positive and negative completion given its prompt."""
    seqs = pair_sequences(pairs)
    flat = torch.zeros(len(seqs), dtype=torch.float64)
    with torch.inference_mode():
        for batch in length_batches(seqs, token_budget):
            flat[torch.tensor([s.index for s in batch])] = _batch_nll(model, batch)
    return collect(pairs, flat.numpy())


def score_pairs_plain(model: PreTrainedModel, pairs: list[EncodedPair]) -> PairScores:
    """Reference: one sequence per forward, full logits, no packing (slow, obviously right)."""
    flat = np.zeros(2 * len(pairs))
    with torch.inference_mode():
        for seq in pair_sequences(pairs):
            ids = torch.tensor([seq.ids])
            logprobs = torch.log_softmax(model(input_ids=ids).logits[0].double(), dim=-1)
            start = len(seq.ids) - seq.completion_len
            targets = torch.tensor(seq.ids[start:])
            flat[seq.index] = -logprobs[start - 1 : len(seq.ids) - 1].gather(1, targets[:, None]).sum().item()
    return collect(pairs, flat)


def collect(pairs: list[EncodedPair], flat: np.ndarray) -> PairScores:
    return PairScores(
        nll_pos=flat[0::2].copy(),
        nll_neg=flat[1::2].copy(),
        len_pos=np.array([len(p.pos_ids) for p in pairs]),
        len_neg=np.array([len(p.neg_ids) for p in pairs]),
    )
