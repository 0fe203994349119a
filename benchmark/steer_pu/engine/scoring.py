"""Summed completion NLLs per pair: the raw numbers every metric is computed from.

The batched scorer puts each pair in one row — prompt, positive, negative — so the prompt
is encoded once for both completions (a tree-shaped attention mask keeps the two
completions apart), groups rows by length under a token budget, runs the decoder once per
batch, and applies the vocabulary projection only at the positions that predict
completion tokens. :func:`score_pairs_plain` is the one-sequence,
full-logits reference it is tested against.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
import torch
from transformers import PreTrainedModel

from steer_pu import devices
from steer_pu.analysis.pair_scores import PairScores
from steer_pu.architectures import attention_mask_for, base_model
from steer_pu.devices import accumulation_dtype, auto_token_budget, input_device
from steer_pu.engine.encoding import EncodedPair
from steer_pu.errors import SteerPuError

DEFAULT_TOKEN_BUDGET = 8192  # tokens per forward batch: bounds memory, not the pair count
Result = TypeVar("Result")


@dataclass(frozen=True)
class PackedPair:
    """A pair in one row, prompt + positive + negative, with the prompt encoded once.

    The attention mask lets negative tokens see the prompt and each other but not the
    positive completion, and their position ids restart after the prompt, so each
    completion is scored exactly as if it followed the prompt alone.
    """

    index: int  # pair position in the caller's list
    prompt_len: int
    pos_len: int
    neg_len: int
    ids: tuple[int, ...]

    @property
    def width(self) -> int:
        return len(self.ids)


def pack(pairs: list[EncodedPair]) -> list[PackedPair]:
    return [
        PackedPair(i, len(p.prompt_ids), len(p.pos_ids), len(p.neg_ids), p.prompt_ids + p.pos_ids + p.neg_ids)
        for i, p in enumerate(pairs)
    ]


def longest_first(items: list[PackedPair]) -> list[PackedPair]:
    """Rows by decreasing width (ties by pair index): neighbours pad little when batched."""
    return sorted(items, key=lambda s: (-s.width, s.index))


def length_batches(items: list[PackedPair], token_budget: int) -> Iterator[list[PackedPair]]:
    """Group rows of similar length so that batch_size × max_len ≤ token_budget."""
    batch: list[PackedPair] = []
    for item in longest_first(items):
        width = batch[0].width if batch else item.width
        if batch and (len(batch) + 1) * width > token_budget:
            yield batch
            batch = []
        batch.append(item)
    if batch:
        yield batch


def resolve_token_budget(model: PreTrainedModel, token_budget: int | None) -> int:
    """``token_budget`` as given, or (None) the one the model's device has free memory for."""
    if token_budget is None:
        return auto_token_budget(model)
    if token_budget < 1:
        raise SteerPuError(f"token budget must be at least 1, got {token_budget}")
    return token_budget


def split_on_oom(
    items: list[PackedPair], token_budget: int, score: Callable[[list[PackedPair]], Result], device: torch.device
) -> Iterator[tuple[list[PackedPair], Result]]:
    """``(batch, score(batch))`` for length batches covering every item exactly once, a batch
    that runs out of memory split in half and retried (:func:`steer_pu.devices.split_on_oom`)."""
    return devices.split_on_oom(
        length_batches(items, token_budget),
        lambda batch: len(batch) * batch[0].width,
        score,
        device,
        lambda batch: (
            f"out of memory scoring one pair of {batch[0].width} tokens on {device}; "
            "use a device with more memory, a smaller dtype or --device auto-map"
        ),
    )


def output_logits(model: PreTrainedModel, hidden: torch.Tensor, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """Vocabulary logits for selected final hidden states (with Gemma-style soft-capping).

    Scoring accumulates in float64 (float32 on MPS); training passes float32 (a quarter of the
    memory). The projection itself runs in the model's dtype, as the model's own forward does.
    """
    # upcast before the soft-cap and log-softmax: a bfloat16 logsumexp over a 49k vocabulary would
    # lose ~2 significant digits, so the reduction is never done in the model dtype
    logits = model.get_output_embeddings()(hidden).to(dtype)
    cap = getattr(model.config, "final_logit_softcapping", None)
    if cap:
        logits = torch.tanh(logits / cap) * cap
    return logits


_PROMPT, _POS, _NEG, _PAD = 0, 1, 2, 3
#: logits per vocabulary projection (positions × vocabulary): 1024 positions of SmolLM2's 49k
#: vocabulary, 192 of Gemma-3's 262k. In float64, with the model-dtype copy and logsumexp's
#: temporary, a chunk stays under 1 GB whatever the token budget (a fixed 1024 positions took
#: gemma3-270m's scoring to 6.2 GB peak RSS).
PROJECTION_ELEMENTS = 1024 * 49_152


def projection_chunk(vocab_size: int) -> int:
    """Completion positions per vocabulary projection for a vocabulary of ``vocab_size``."""
    return max(1, PROJECTION_ELEMENTS // vocab_size)


@dataclass(frozen=True)
class CompletionIndex:
    """Where, in a packed batch, the hidden states that predict completion tokens sit.

    Output row 2r is row r's positive completion, 2r + 1 its negative.
    """

    rows: torch.Tensor
    cols: torch.Tensor
    targets: torch.Tensor
    owner: torch.Tensor  # output row each scored token belongs to
    batch_size: int  # output rows: 2 per packed row

    @classmethod
    def of(cls, batch: list[PackedPair]) -> CompletionIndex:
        rows, cols, targets, owner = [], [], [], []
        for r, item in enumerate(batch):
            p, a, b = item.prompt_len, item.pos_len, item.neg_len
            # The hidden state at t predicts token t + 1; both completions start from the
            # last prompt position p − 1, then continue inside their own segment.
            pos_cols = range(p - 1, p + a - 1)
            neg_cols = [p - 1, *range(p + a, p + a + b - 1)]
            rows.extend([r] * (a + b))
            cols.extend([*pos_cols, *neg_cols])
            targets.extend(item.ids[p:])
            owner.extend([2 * r] * a + [2 * r + 1] * b)
        return cls(torch.tensor(rows), torch.tensor(cols), torch.tensor(targets), torch.tensor(owner), 2 * len(batch))

    def nll(self, model: PreTrainedModel, final_hidden: torch.Tensor, dtype: torch.dtype | None = None) -> torch.Tensor:
        """Summed NLL per completion from final (normed) hidden states: vocab projection only here,
        :func:`projection_chunk` positions at a time (a full batch's float64 logits would take GBs).

        On ``final_hidden``'s device, in ``dtype`` (default: float64, float32 on MPS)."""
        device = final_hidden.device
        # log-softmax and sums in float64 whatever the model dtype: a bfloat16 or float32 sum over
        # a completion's tokens would add rounding of its own to the model's (see output_logits)
        dtype = dtype or accumulation_dtype(device)
        states = final_hidden[self.rows.to(device), self.cols.to(device)]
        targets = self.targets.to(device)
        step = projection_chunk(model.get_output_embeddings().weight.shape[0])
        chunks = [slice(i, i + step) for i in range(0, states.shape[0], step)]
        per_token = torch.cat([token_nll(output_logits(model, states[c], dtype), targets[c]) for c in chunks])
        return torch.zeros(self.batch_size, dtype=dtype, device=device).index_add_(0, self.owner.to(device), per_token)


def token_nll(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Per position, −log softmax(logits)[target] (logits (n, vocab) in the accumulation dtype)."""
    return torch.logsumexp(logits, dim=-1) - logits.gather(1, targets[:, None])[:, 0]


@dataclass(frozen=True)
class PackedBatch:
    """Model inputs for packed rows: ids, a (batch, 1, T, T) boolean mask, position ids."""

    input_ids: torch.Tensor
    attention: torch.Tensor
    position_ids: torch.Tensor
    index: CompletionIndex

    @classmethod
    def of(cls, batch: list[PackedPair]) -> PackedBatch:
        width = max(item.width for item in batch)
        input_ids = torch.zeros(len(batch), width, dtype=torch.long)
        segment = torch.full((len(batch), width), _PAD)
        position_ids = torch.zeros(len(batch), width, dtype=torch.long)
        for r, item in enumerate(batch):
            p, a, b = item.prompt_len, item.pos_len, item.neg_len
            input_ids[r, : item.width] = torch.tensor(item.ids)
            segment[r, :p], segment[r, p : p + a], segment[r, p + a : item.width] = _PROMPT, _POS, _NEG
            position_ids[r, : p + a] = torch.arange(p + a)
            position_ids[r, p + a : item.width] = torch.arange(p, p + b)
        causal = torch.ones(width, width, dtype=torch.bool).tril()
        seg_q, seg_k = segment[:, :, None], segment[:, None, :]
        # A token sees earlier prompt tokens and earlier tokens of its own segment; padding
        # sees only padding (never an empty row, which would make NaNs).
        attention = causal & ((seg_k == _PROMPT) & (seg_q != _PAD) | (seg_k == seg_q))
        return cls(input_ids, attention[:, None], position_ids, CompletionIndex.of(batch))

    def hidden(self, model: PreTrainedModel) -> torch.Tensor:
        """Final (normed) hidden states of the unsteered — or hooked — decoder (inputs moved to its device)."""
        device = input_device(model)
        return base_model(model)(
            input_ids=self.input_ids.to(device),
            attention_mask=attention_mask_for(model, self.attention.to(device)),
            position_ids=self.position_ids.to(device),
            use_cache=False,
        ).last_hidden_state


def check_packable(model: PreTrainedModel, items: list[PackedPair]) -> None:
    """A packed mask replaces sliding-window masks; only safe while rows fit in the window."""
    window = getattr(model.config, "sliding_window", None)
    longest = max((item.width for item in items), default=0)
    if window and longest > window:
        raise SteerPuError(f"a packed pair has {longest} tokens, more than the model's sliding window ({window})")


def score_pairs(
    model: PreTrainedModel, pairs: list[EncodedPair], token_budget: int | None = DEFAULT_TOKEN_BUDGET
) -> PairScores:
    """Summed NLL of each pair's positive and negative completion given its prompt.

    ``token_budget`` None: what the device's free memory allows; a batch that runs out of
    memory is split in half and retried (:func:`split_on_oom`)."""
    items = pack(pairs)
    check_packable(model, items)
    flat = torch.zeros(2 * len(pairs), dtype=torch.float64)

    def score(batch: list[PackedPair]) -> torch.Tensor:
        packed = PackedBatch.of(batch)
        return packed.index.nll(model, packed.hidden(model)).to("cpu", torch.float64)

    with torch.inference_mode():
        budget = resolve_token_budget(model, token_budget)
        for batch, nll in split_on_oom(items, budget, score, input_device(model)):
            flat[output_rows(batch)] = nll
    return collect(pairs, flat.numpy())


def output_rows(batch: list[PackedPair]) -> torch.Tensor:
    """Flat positions (2·pair, 2·pair + 1) of a batch's completions, in CompletionIndex order."""
    return torch.tensor([2 * item.index + side for item in batch for side in (0, 1)])


def score_pairs_plain(model: PreTrainedModel, pairs: list[EncodedPair]) -> PairScores:
    """Reference: one sequence per forward, full logits, no packing (slow, obviously right)."""
    flat = np.zeros(2 * len(pairs))
    device = input_device(model)
    with torch.inference_mode():
        for i, pair in enumerate(pairs):
            for side, completion in enumerate((pair.pos_ids, pair.neg_ids)):
                ids = pair.prompt_ids + completion
                logits = model(input_ids=torch.tensor([ids], device=device)).logits[0]
                logprobs = torch.log_softmax(logits.to(accumulation_dtype(device)), dim=-1)
                start = len(pair.prompt_ids)
                targets = torch.tensor(completion, device=logits.device)
                flat[2 * i + side] = -logprobs[start - 1 : len(ids) - 1].gather(1, targets[:, None]).sum().item()
    return collect(pairs, flat)


def collect(pairs: list[EncodedPair], flat: np.ndarray) -> PairScores:
    return PairScores(
        nll_pos=flat[0::2].copy(),
        nll_neg=flat[1::2].copy(),
        len_pos=np.array([len(p.pos_ids) for p in pairs]),
        len_neg=np.array([len(p.neg_ids) for p in pairs]),
    )
