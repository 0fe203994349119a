"""Score interventions made elsewhere ("ready artifacts") with the harness, unchanged.

``steer-pu run`` loads an artifact that is already in its run directory instead of
training one (``RUN_DIR/artifacts/<concept>/<method>-<form>/``, see :mod:`steer_pu.run`).
:class:`ReadyArtifact` is the method to name for such a run: it trains nothing, and
refuses with a clear message for a concept whose artifact was not put in place.

    steer-pu run --method steer_pu.ready:ReadyArtifact --form vector --strengths ... --out RUN_DIR
"""

from __future__ import annotations

from typing import Any

from .encoding import PromptFormat
from .errors import SteerPuError
from .interventions import Intervention
from .methods import Method
from .models import LoadedModel
from .tasks import Pair

REFERENCE = "steer_pu.ready:ReadyArtifact"


class ReadyArtifact(Method):
    name = REFERENCE
    forms = ("vector", "lora", "local_weight")
    # Declare your own grid with --strengths; these defaults follow the paper's ranges.
    default_strengths = {
        "vector": (-8.0, -4.0, -2.0, 2.0, 4.0, 6.0, 8.0, 12.0, 16.0, 20.0),
        "lora": (-2.0, -1.0, -0.5, 0.5, 1.0, 1.5, 2.0),
        "local_weight": (-2.0, -1.0, -0.5, 0.5, 1.0, 1.5, 2.0),
    }

    def fit(self, model: LoadedModel, fmt: PromptFormat, layer: int, train: list[Pair], seed: int, *_: Any, **__: Any) -> Intervention:
        raise SteerPuError(
            f"{REFERENCE}: no artifact in the run directory for this concept; put intervention.safetensors and "
            f"meta.json in RUN_DIR/artifacts/<concept>/{REFERENCE}-{self.form}/ before running"
        )
