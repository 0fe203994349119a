"""Greedy continuations under a control, and the unsteered model's NLL of them (the fluency proxy).

Generation goes through the same intervention hooks as scoring (``intervention.apply``), with
transformers' ``generate`` (KV cache, left padding). Rows are prompts × strengths: an activation
or weight intervention takes one strength per row (:func:`steer_pu.interventions.base.scale`), so
a whole sweep's continuations come from one batched call per chunk of rows; a prompting control
re-encodes its prompts per strength. Chunks hold at most ``token_budget`` tokens (prompt + new
tokens per row) and are fixed by the inputs alone, so a rerun on one machine gives the same
token ids; a chunk that runs out of memory is split in half and retried, never dropped.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

import torch
from transformers import GenerationConfig, PreTrainedModel, PreTrainedTokenizerBase

from steer_pu.architectures import base_model
from steer_pu.devices import accumulation_dtype, input_device, split_on_oom
from steer_pu.engine.encoding import PromptFormat
from steer_pu.engine.scoring import output_logits, token_nll
from steer_pu.errors import SteerPuError
from steer_pu.interventions import Intervention

MAX_NEW_TOKENS = 48  # the and AxBench's short-continuation length
Row = TypeVar("Row")


@dataclass(frozen=True)
class GenerationRequest:
    """One row: a prompt's token ids and the strength it is generated at."""

    prompt_ids: tuple[int, ...]
    strength: float


def stop_token_ids(fmt: PromptFormat) -> list[int]:
    """Tokens that end a continuation: the end-of-turn token (when it is one token) and EOS."""
    tok = fmt.tokenizer
    ids = tok(fmt.end_of_turn, add_special_tokens=False).input_ids
    stops = list(ids) if len(ids) == 1 else []
    if tok.eos_token_id is not None and tok.eos_token_id not in stops:
        stops.append(int(tok.eos_token_id))
    if not stops:
        raise SteerPuError(f"tokenizer {tok.name_or_path}: no end-of-turn or EOS token to stop generation")
    return stops


def _pad_id(tokenizer: PreTrainedTokenizerBase, stops: list[int]) -> int:
    return int(tokenizer.pad_token_id) if tokenizer.pad_token_id is not None else stops[0]


def _padded_size(rows: Sequence[Row], width: Callable[[Row], int]) -> int:
    """Tokens in a batch of ``rows`` padded to its widest row (what a chunk's memory scales with)."""
    return len(rows) * max(map(width, rows))


def _chunks(rows: Sequence[Row], width: Callable[[Row], int], token_budget: int) -> list[list[Row]]:
    """Consecutive rows in groups of at most ``token_budget`` padded tokens (at least one row each)."""
    out: list[list[Row]] = []
    for row in rows:
        if out and _padded_size([*out[-1], row], width) <= token_budget:
            out[-1].append(row)
        else:
            out.append([row])
    return out


def _left_padded(
    prompts: list[tuple[int, ...]], pad_id: int, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(p) for p in prompts)
    ids = torch.full((len(prompts), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(prompts), width), dtype=torch.long)
    for r, p in enumerate(prompts):
        ids[r, width - len(p) :] = torch.tensor(p, dtype=torch.long)
        mask[r, width - len(p) :] = 1
    return ids.to(device), mask.to(device)


def _trimmed(new_ids: list[int], stops: list[int]) -> tuple[int, ...]:
    """Generated ids up to and including the first stop token (generate pads after it)."""
    for i, token in enumerate(new_ids):
        if token in stops:
            return tuple(new_ids[: i + 1])
    return tuple(new_ids)


def generate(
    model: PreTrainedModel,
    fmt: PromptFormat,
    requests: Sequence[GenerationRequest],
    intervention: Intervention | None,
    token_budget: int,
    max_new_tokens: int = MAX_NEW_TOKENS,
) -> list[tuple[int, ...]]:
    """Greedy continuations (token ids, the stop token included where one was made), one per request.

    Under ``intervention`` each row is steered at its own strength; without one every strength
    must be 0 (a prompting control encodes its strength in the prompt ids instead).
    """
    if intervention is None and any(r.strength != 0 for r in requests):
        raise ValueError("steered rows need an intervention")
    stops = stop_token_ids(fmt)
    pad = _pad_id(fmt.tokenizer, stops)
    config = GenerationConfig(
        max_new_tokens=max_new_tokens,
        do_sample=False,
        eos_token_id=stops,
        pad_token_id=pad,
        temperature=None,
        top_p=None,
        top_k=None,
    )  # fmt: skip  -- greedy whatever the model's own generation_config says
    device = input_device(model)
    if intervention is not None:  # its hooks add the tensors on the steered block's device
        intervention.tensors = {k: v.to(device) for k, v in intervention.tensors.items()}

    def run(rows: list[GenerationRequest]) -> list[tuple[int, ...]]:
        ids, mask = _left_padded([r.prompt_ids for r in rows], pad, device)
        with torch.inference_mode():
            if intervention is None:
                out = model.generate(input_ids=ids, attention_mask=mask, generation_config=config)
            else:
                strength = torch.tensor([r.strength for r in rows], dtype=accumulation_dtype(device), device=device)
                with intervention.apply(model, strength):
                    out = model.generate(input_ids=ids, attention_mask=mask, generation_config=config)
        return [_trimmed(row[ids.shape[1] :].tolist(), stops) for row in out.cpu()]

    def width(r: GenerationRequest) -> int:
        return len(r.prompt_ids) + max_new_tokens

    chunks = _chunks(list(requests), width, token_budget)
    too_large = f"out of memory generating one continuation on {device}"
    done = split_on_oom(chunks, lambda b: _padded_size(b, width), run, device, lambda _: too_large)
    return [ids for _, batch_ids in done for ids in batch_ids]


def continuation_nll(
    model: PreTrainedModel,
    prompts: Sequence[tuple[int, ...]],
    continuations: Sequence[tuple[int, ...]],
    token_budget: int,
) -> list[float]:
    """The model's mean per-token NLL of each continuation after its prompt (the fluency proxy).

    Right-padded batches under ``token_budget``; log-softmax and sums in float64 (float32 on MPS)
    whatever the model dtype, as in scoring.
    """
    if len(prompts) != len(continuations):
        raise ValueError("one continuation per prompt")
    if any(not c for c in continuations):
        raise ValueError("every continuation needs at least one token")
    device = input_device(model)
    dtype = accumulation_dtype(device)
    rows = list(range(len(prompts)))

    def run(batch: list[int]) -> list[float]:
        seqs = [prompts[i] + continuations[i] for i in batch]
        width = max(len(s) for s in seqs)
        ids = torch.zeros((len(batch), width), dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for r, s in enumerate(seqs):
            ids[r, : len(s)] = torch.tensor(s, dtype=torch.long)
            mask[r, : len(s)] = 1
        with torch.inference_mode():
            # the decoder's normed last states; the vocabulary projection only where a token is predicted
            final = base_model(model)(input_ids=ids.to(device), attention_mask=mask.to(device)).last_hidden_state
            out = []
            for r, i in enumerate(batch):
                start, n = len(prompts[i]), len(continuations[i])
                logits = output_logits(model, final[r, start - 1 : start + n - 1], dtype)
                targets = torch.tensor(continuations[i], device=logits.device)
                out.append(float(token_nll(logits, targets).sum()) / n)
        return out

    def width(i: int) -> int:
        return len(prompts[i]) + len(continuations[i])

    chunks = _chunks(rows, width, token_budget)
    too_large = f"out of memory scoring one continuation on {device}"
    done = split_on_oom(chunks, lambda b: _padded_size(b, width), run, device, lambda _: too_large)
    return [nll for _, batch_nll in done for nll in batch_nll]
