"""Load a control artifact trained elsewhere: ``steer-pu run --artifact PATH``.

Accepted layouts (safetensors only — pickles are refused):

* a steer-pu intervention folder: ``intervention.safetensors`` + ``meta.json``;
* a peft LoRA adapter folder (``adapter_config.json`` + ``adapter_model.safetensors``)
  on ``mlp.down_proj`` of exactly one layer; peft's lora_alpha / r scaling is folded into B
  so that strength m = 1 reproduces the adapter;
* a prompting folder (``prompts.json``), as written by the prompting method;
* a single ``.safetensors`` file holding one 1-D tensor: a steering vector (layer from
  its metadata field ``layer`` or ``--layer``).

An artifact folder may also hold one such artifact per concept in ``PATH/<concept>/``.

Everything is checked before it is used or anything is written: metadata and configs by pydantic
models (types and ranges), tensors by :func:`steer_pu.interventions.base.check_tensors` (names,
floating point, finite, magnitude, consistent shapes) and, once the model is known, by
:func:`check_fits`. Every problem is a SteerPuError naming the file and the field or tensor.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from steer_pu.errors import SteerPuError, first_field_error
from steer_pu.interventions import Intervention, LoRAIntervention, VectorIntervention, load_intervention
from steer_pu.interventions.base import TENSORS_FILE, check_layer, check_tensors
from steer_pu.io import load_tensors, sha256_file
from steer_pu.methods.prompting import PROMPT_FILE, PromptControl
from steer_pu.suite.concepts import MAX_PROMPT_CHARS

PEFT_CONFIG = "adapter_config.json"
PEFT_WEIGHTS = "adapter_model.safetensors"
MAX_CONFIG_BYTES = 2**20  # adapter_config.json / prompts.json (the committed ones are under 1 KB)
MAX_LORA_RANK = 4096


class PeftConfig(BaseModel):
    """The fields of a peft ``adapter_config.json`` steer-pu reads (the others are ignored)."""

    model_config = ConfigDict(extra="allow", allow_inf_nan=False)
    r: Annotated[int, Field(strict=True, ge=1, le=MAX_LORA_RANK)]
    lora_alpha: Annotated[float, Field(allow_inf_nan=False, gt=0.0, le=1e6)]
    use_rslora: bool = False


class PromptsFile(BaseModel):
    """``prompts.json``: one instruction per strength key (``+1``, ``-2``, ``+0.5``)."""

    model_config = ConfigDict(extra="forbid")
    form: Annotated[str, StringConstraints(pattern=r"^prompt$")] = "prompt"
    instructions: Annotated[
        dict[
            Annotated[str, StringConstraints(pattern=r"^[+-][0-9]{1,5}(\.[0-9]{1,6})?$")],
            Annotated[str, StringConstraints(min_length=1, max_length=MAX_PROMPT_CHARS)],
        ],
        Field(min_length=1, max_length=64),
    ]


def _read_json_object(path: Path) -> dict[str, Any]:
    """A small JSON file holding one object; every failure names the file."""
    if path.is_symlink() or not path.is_file():
        raise SteerPuError(f"{path}: not a regular file")
    size = path.stat().st_size
    if size > MAX_CONFIG_BYTES:
        raise SteerPuError(f"{path}: {size} bytes (at most {MAX_CONFIG_BYTES})")
    try:
        raw = json.loads(path.read_bytes().decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise SteerPuError(f"{path}: not valid UTF-8 ({exc.reason} at byte {exc.start})") from None
    except RecursionError:
        raise SteerPuError(f"{path}: JSON nested too deeply") from None
    except ValueError as exc:
        raise SteerPuError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(raw, dict):
        raise SteerPuError(f"{path}: must be a JSON object, got {type(raw).__name__}")
    return raw


def _validated(model: type[BaseModel], raw: dict, path: Path) -> Any:
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        raise SteerPuError(f"{path}: {first_field_error(exc)}") from None


def _peft_key() -> re.Pattern[str]:
    """``…<blocks>.<N>.<down-projection>.lora_A/B[.default].weight`` for every supported family."""
    from steer_pu.architectures import ARCHITECTURES

    blocks = "|".join(sorted({re.escape(a.layers) for a in ARCHITECTURES}))
    downs = "|".join(sorted({re.escape(a.down_proj) for a in ARCHITECTURES}))
    return re.compile(rf"(?:^|\.)(?:{blocks})\.(\d+)\.(?:{downs})\.lora_([AB])(?:\.default)?\.weight$")


_PEFT_KEY = _peft_key()


def artifact_for(root: Path, concept: str, n_concepts: int) -> Path:
    """The artifact of ``concept`` under ``root``: ``root/<concept>/`` or ``root`` itself."""
    root = Path(root)
    if not root.exists():
        raise SteerPuError(f"--artifact {root}: no such file or folder")
    if (root / concept).is_dir():
        return root / concept
    if _looks_like_artifact(root):
        if n_concepts > 1:
            raise SteerPuError(
                f"--artifact {root}: one artifact for {n_concepts} concepts; give one concept, "
                f"or put one artifact per concept in {root}/<concept>/"
            )
        return root
    raise SteerPuError(f"--artifact {root}: no artifact for concept '{concept}' (expected {root / concept}/)")


def _looks_like_artifact(path: Path) -> bool:
    if path.is_file():
        return path.suffix == ".safetensors" or path.suffix in (".pt", ".pth", ".bin", ".pkl")
    return any((path / name).is_file() for name in (TENSORS_FILE, PEFT_CONFIG, PROMPT_FILE))


def load_artifact(path: Path, layer: int | None = None, num_layers: int | None = None) -> Intervention | PromptControl:
    """Read any accepted layout (see the module docstring) as a checked intervention;
    ``num_layers``, when known, bounds its layer."""
    path = Path(path)
    if path.is_file():
        return _load_vector_file(path, layer, num_layers)
    if (path / TENSORS_FILE).is_file():
        return load_intervention(path, num_layers)
    if (path / PEFT_CONFIG).is_file():
        return _load_peft(path, num_layers)
    if (path / PROMPT_FILE).is_file():
        prompts = _validated(PromptsFile, _read_json_object(path / PROMPT_FILE), path / PROMPT_FILE)
        return PromptControl(dict(prompts.instructions))
    pickles = [p.name for p in path.glob("*") if p.suffix in (".pt", ".pth", ".bin", ".pkl")]
    if pickles:
        raise SteerPuError(
            f"{path}: holds {', '.join(sorted(pickles))}; steer-pu only loads safetensors (pickles can run code)"
        )
    raise SteerPuError(f"{path}: not an artifact (expected {TENSORS_FILE}, {PEFT_CONFIG} or {PROMPT_FILE})")


def _load_vector_file(path: Path, layer: int | None, num_layers: int | None = None) -> VectorIntervention:
    if path.suffix != ".safetensors":
        raise SteerPuError(f"{path}: steer-pu only loads .safetensors files (pickles can run arbitrary code)")
    tensors, metadata = load_tensors(path)
    if len(tensors) != 1:
        raise SteerPuError(
            f"{path}: a vector file holds exactly one tensor, found {len(tensors)} ({', '.join(tensors)})"
        )
    ((name, vector),) = tensors.items()
    if vector.ndim != 1:
        raise SteerPuError(f"{path}: tensor '{name}' has shape {tuple(vector.shape)}; a steering vector is 1-D")
    if layer is None:
        if not isinstance(metadata, dict) or "layer" not in metadata:
            raise SteerPuError(f"{path}: metadata field 'layer' missing; pass --layer")
        layer = metadata["layer"]
    layer = check_layer(path, layer, num_layers)
    check_tensors(path, "vector", ("vector",), {"vector": vector})
    return VectorIntervention(layer, {"vector": vector.float()})


def _load_peft(path: Path, num_layers: int | None = None) -> LoRAIntervention:
    config_path = path / PEFT_CONFIG
    config = _validated(PeftConfig, _read_json_object(config_path), config_path)
    rank, alpha = config.r, config.lora_alpha
    weights = path / PEFT_WEIGHTS
    if not weights.is_file():
        pickles = [p.name for p in path.glob("adapter_model.bin")]
        hint = " (found adapter_model.bin: a pickle, refused)" if pickles else ""
        raise SteerPuError(f"{weights}: file not found{hint}")
    tensors, _ = load_tensors(weights)
    found: dict[int, dict[str, object]] = {}
    for key, tensor in tensors.items():
        match = _PEFT_KEY.search(key)
        if match is None:
            raise SteerPuError(
                f"{weights}: tensor '{key}' is not a LoRA on a decoder block's MLP down-projection "
                "(mlp.down_proj, mlp.c_proj, mlp.dense_4h_to_h, fc2); only those adapters are supported"
            )
        found.setdefault(int(match.group(1)), {})[match.group(2)] = tensor
    if len(found) != 1:
        raise SteerPuError(
            f"{weights}: adapter touches layers {sorted(found)}; a steer-pu LoRA acts at exactly one layer"
        )
    ((layer, pair),) = found.items()
    if set(pair) != {"A", "B"}:
        raise SteerPuError(f"{weights}: layer {layer} needs both lora_A and lora_B")
    check_layer(weights, layer, num_layers)
    check_tensors(weights, "lora", ("lora_A", "lora_B"), {"lora_A": pair["A"], "lora_B": pair["B"]})
    if pair["A"].shape[0] != rank:
        raise SteerPuError(
            f"{weights}: tensor 'lora_A' has {pair['A'].shape[0]} rows but {PEFT_CONFIG} field 'r' is {rank}"
        )
    scaling = alpha / math.sqrt(rank) if config.use_rslora else alpha / rank
    return LoRAIntervention(layer, {"lora_A": pair["A"].float(), "lora_B": pair["B"].float() * scaling})


def check_fits(control: Intervention | PromptControl, model: Any, where: Path | str) -> None:
    """The control's layer and tensor shapes against a loaded model (a ``transformers`` model):
    refuse, naming the tensor, what would fail or broadcast wrongly inside a forward pass.

    Shapes come from the family's own modules (:mod:`steer_pu.architectures`): the block output is as
    wide as the down-projection's output, the MLP's hidden state as its input. A peft adapter sits on
    the down-projection, so on a family whose native update goes to the block output past a norm
    (Gemma-2/3) it would be applied somewhere else than peft applies it: refused."""
    from steer_pu.architectures import architecture, decoder_layers, down_projection, projection_shape

    if not isinstance(control, Intervention):
        return
    arch = architecture(model)
    check_layer(Path(where), control.layer, len(decoder_layers(model)))
    if (
        isinstance(control, LoRAIntervention)
        and (Path(where) / PEFT_CONFIG).is_file()
        and arch.mlp_update != "down_proj"
    ):
        raise SteerPuError(
            f"{Path(where) / PEFT_CONFIG}: a peft adapter on the down-projection cannot be run as steer-pu's LoRA on "
            f"{arch.family}, where the update is added to the block output past the norm that follows the MLP "
            "(as in the paper's reference code); train it with steer-pu or convert it to an intervention folder"
        )
    out_features, in_features = projection_shape(down_projection(model, control.layer))
    expected: dict[str, tuple[int | None, ...]] = {
        "vector": (out_features,),
        "lora_A": (None, in_features),
        "lora_B": (out_features, None),
        "delta_weight": (out_features, in_features),
        "delta_bias": (out_features,),
    }
    for name, tensor in control.tensors.items():
        want = expected[name]
        if len(want) != tensor.ndim or any(w is not None and w != got for w, got in zip(want, tensor.shape)):
            shown = "(" + ", ".join("r" if w is None else str(w) for w in want) + ("," if len(want) == 1 else "") + ")"
            raise SteerPuError(
                f"{where}: tensor '{name}' has shape {tuple(tensor.shape)}; the model needs {shown} "
                f"(hidden size {out_features}, MLP size {in_features})"
            )


def artifact_sha256(path: Path) -> str:
    """One hash over every file of an artifact (names and bytes, sorted), for provenance."""
    path = Path(path)
    files = (
        [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith("."))
    )
    digest = hashlib.sha256()
    for file in files:
        digest.update(str(file.relative_to(path) if path.is_dir() else file.name).encode() + b"\0")
        digest.update(bytes.fromhex(sha256_file(file)))
    return digest.hexdigest()
