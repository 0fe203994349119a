"""Export steer-pu intervention artifacts in the formats lm-evaluation-harness 0.4.13 reads.

- vector → the ``steered`` model's config (``--model steered --model_args steer_path=…``): a
  ``torch.save``-d dict ``{hookpoint: {steering_vector, steering_coefficient, action, bias,
  head_index}}``. lm-eval hooks ``model.base_model`` (``model.model`` of a Llama), so block L is
  ``layers.L``; action ``add`` adds coefficient·vector at every position, which is the
  vector form's h_L + m·v.
- LoRA → a standard peft adapter directory (``peft=…``) with B scaled by m and
  ``lora_alpha = r``, so peft's alpha/r factor is 1 and the update is W + m·B·A.
- local weight: not exported. lm-eval's ``delta=`` needs a whole model of weight deltas and
  has no slot for a bias delta; use the ``steer_pu`` lm-eval model type instead.
"""

from __future__ import annotations

import io
import os
import shutil
import tempfile
from pathlib import Path

import torch

from .errors import SteerPuError
from .interventions import Intervention, LoRAIntervention, VectorIntervention, load_intervention
from .io import atomic_write_bytes

PEFT_FILES = ("adapter_config.json", "adapter_model.safetensors")


def _load(artifact: Path | Intervention, form: type[Intervention]) -> Intervention:
    intervention = artifact if isinstance(artifact, Intervention) else load_intervention(Path(artifact))
    if not isinstance(intervention, form):
        source = f"{Path(artifact) / 'intervention.safetensors'}" if not isinstance(artifact, Intervention) else "intervention"
        raise SteerPuError(f"{source}: field 'form' is '{intervention.form}'; this export needs form '{form.form}'")
    return intervention


def steered_config(artifact: Path | Intervention, strength: float) -> dict[str, dict]:
    """The dict lm-eval's ``steered`` model reads, for a vector artifact at ``strength``."""
    vec = _load(artifact, VectorIntervention)
    return {
        f"layers.{vec.layer}": {
            "steering_vector": vec.vector.detach().float().cpu().clone(),
            "steering_coefficient": float(strength),
            "action": "add",
            "bias": None,
            "head_index": None,
        }
    }


def export_steered(artifact: Path | Intervention, strength: float, out: Path) -> Path:
    """Write the ``steered`` config (a ``.pt`` file, as lm-eval requires) atomically."""
    out = Path(out)
    if out.suffix not in (".pt", ".pth"):
        raise SteerPuError(f"{out}: lm-eval's steered model only reads .pt/.pth files; name the output *.pt")
    buffer = io.BytesIO()
    torch.save(steered_config(artifact, strength), buffer)
    atomic_write_bytes(out, buffer.getvalue())
    return out


def export_peft(artifact: Path | Intervention, strength: float, out_dir: Path, base_model: str | None = None) -> Path:
    """Write a peft LoRA adapter directory equivalent to the artifact at ``strength``.

    The directory appears complete or not at all; an existing earlier export is replaced,
    any other existing path is refused.
    """
    from peft import LoraConfig
    from safetensors.torch import save_file

    lora = _load(artifact, LoRAIntervention)
    a, b = lora.tensors["lora_A"].detach().float().cpu(), lora.tensors["lora_B"].detach().float().cpu()
    rank = int(a.shape[0])
    out_dir = Path(out_dir)
    if out_dir.exists() and not (out_dir / PEFT_FILES[0]).is_file():
        raise SteerPuError(f"{out_dir}: exists and is not a peft adapter directory; choose a new --out")
    module = f"model.layers.{lora.layer}.mlp.down_proj"
    config = LoraConfig(
        r=rank,
        lora_alpha=rank,  # scaling alpha/r = 1: the artifact's update has no extra factor
        lora_dropout=0.0,
        target_modules=[module],
        bias="none",
        task_type="CAUSAL_LM",
        base_model_name_or_path=base_model,
        inference_mode=True,
    )
    prefix = f"base_model.model.{module}"
    tensors = {f"{prefix}.lora_A.weight": a, f"{prefix}.lora_B.weight": float(strength) * b}
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}-", dir=out_dir.parent))
    try:
        config.save_pretrained(tmp)
        save_file({k: v.contiguous() for k, v in tensors.items()}, tmp / PEFT_FILES[1], metadata={"format": "pt"})
        if out_dir.exists():
            shutil.rmtree(out_dir)
        os.replace(tmp, out_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out_dir
