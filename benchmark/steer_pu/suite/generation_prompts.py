"""Which test prompts a run continues (``run --generate K``): a seeded rule on the pair ids alone.

Fixed before anything is scored and independent of the model and the method, so every method's
generations on a concept use the same prompts, and a reviewer can recompute the choice from a
submission file without loading anything.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from steer_pu.errors import SteerPuError


def generation_prompt_ids(pair_ids: Sequence[str], k: int, seed: int) -> list[str]:
    """The K ids ranked first by sha256("steer-pu-generate:<seed>:<id>"), in the split's order."""
    if not 1 <= k <= len(pair_ids):
        raise SteerPuError(f"--generate {k}: must be between 1 and the test split's {len(pair_ids)} prompts")
    rank = {i: hashlib.sha256(f"steer-pu-generate:{seed}:{i}".encode()).hexdigest() for i in pair_ids}
    chosen = set(sorted(rank, key=rank.__getitem__)[:k])
    return [i for i in pair_ids if i in chosen]
