"""Score a whole strength sweep at once, running the layers below L only once per batch.

For each batch the unsteered forward (m = 0, which every sweep contains) is recorded by
:func:`~steer_pu.blocks.record_batch`; each m ≠ 0 then replays only blocks L…N−1 and the
final norm, with the intervention's hooks active. Results equal per-strength
:func:`~steer_pu.scoring.score_pairs` calls.
"""

from __future__ import annotations

import torch
from transformers import PreTrainedModel

from .blocks import record_batch
from .encoding import EncodedPair
from .interventions import Intervention
from .pair_scores import PairScores
from .scoring import DEFAULT_TOKEN_BUDGET, PackedBatch, check_packable, collect, length_batches, output_rows, pack


def score_sweep(
    model: PreTrainedModel,
    pairs: list[EncodedPair],
    intervention: Intervention,
    strengths: list[float],
    token_budget: int = DEFAULT_TOKEN_BUDGET,
) -> dict[float, PairScores]:
    """Per strength, the summed completion NLLs of every pair (m = 0: the unsteered model)."""
    items = pack(pairs)
    check_packable(model, items)
    flat = {m: torch.zeros(2 * len(pairs), dtype=torch.float64) for m in strengths}
    with torch.inference_mode():
        for batch in length_batches(items, token_budget):
            where = output_rows(batch)
            packed = PackedBatch.of(batch)
            recorder, base = record_batch(model, intervention.layer, packed)
            for m in strengths:
                if m == 0:
                    flat[m][where] = packed.index.nll(model, base)
                    continue
                with intervention.apply(model, m):
                    flat[m][where] = packed.index.nll(model, recorder.replay(model))
    return {m: collect(pairs, values.numpy()) for m, values in flat.items()}
