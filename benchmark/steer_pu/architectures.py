"""Where each model family keeps the parts the harness hooks: one small table, one lookup.

Every control method acts at decoder block L of a causal LM, in one of two places:

- the **block output** (the residual stream after block L): a vector intervention adds to it;
- the **MLP down-projection** of block L (``mlp.down_proj``, GPT-2's ``mlp.c_proj``, Pythia's and
  Falcon's ``mlp.dense_4h_to_h``, OPT's ``fc2``): LoRA and local weight read its input (the MLP's
  hidden state) and add their update to its output — or, where a family's
  :attr:`Architecture.mlp_update` says ``"block"``, to the block output instead (past any norm
  that follows the MLP).

The engine's replay of blocks ≥ L also needs the list of blocks and the modules that turn the
last block's output into the base model's ``last_hidden_state`` (the final norm; OPT's
``project_out``), and packed scoring its boolean attention mask in the form the model's attention
implementation takes (:func:`attention_mask_for`). Blocks are replayed with exactly the
positional and keyword arguments the model called them with (:mod:`steer_pu.engine.blocks`),
so masks, rotary tables and each family's calling convention need no entry here.

A family is looked up by ``config.model_type``; anything else raises one :class:`SteerPuError`
naming the model type and what was looked for.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from steer_pu.errors import SteerPuError

if TYPE_CHECKING:  # torch loads with the first lookup: the core stays cheap to import
    import torch
    from torch import nn

#: where LoRA / local weight add their update: the down-projection's output, or the block's output
UPDATE_POINTS = ("down_proj", "block")


@dataclass(frozen=True)
class Architecture:
    """The module paths of one model family, relative to the base model (``model.base_model``)."""

    family: str
    model_types: tuple[str, ...]
    layers: str  # the nn.ModuleList of decoder blocks
    down_proj: str  # inside a block: the MLP's output projection (nn.Linear or GPT-2's Conv1D)
    final: tuple[str, ...]  # applied in order after the last block; a path that holds None is skipped
    mlp_update: str = "down_proj"  # one of UPDATE_POINTS
    flat_mlp: bool = False  # the MLP runs on (batch·T, features), not (batch, T, features): OPT


_LLAMA_LIKE = {"layers": "layers", "down_proj": "mlp.down_proj", "final": ("norm",)}

ARCHITECTURES: tuple[Architecture, ...] = (
    Architecture("Llama", ("llama",), **_LLAMA_LIKE),
    Architecture("Mistral", ("mistral",), **_LLAMA_LIKE),
    Architecture("Qwen2", ("qwen2",), **_LLAMA_LIKE),
    Architecture("Qwen3", ("qwen3",), **_LLAMA_LIKE),
    Architecture("Gemma", ("gemma",), **_LLAMA_LIKE),
    # Gemma-2/3 re-normalise the MLP output (post_feedforward_layernorm) before the residual add;
    # the paper's reference code adds the m-scaled update past that norm, to the block output.
    Architecture("Gemma-2", ("gemma2",), **_LLAMA_LIKE, mlp_update="block"),
    Architecture("Gemma-3", ("gemma3_text",), **_LLAMA_LIKE, mlp_update="block"),
    Architecture("Phi-3", ("phi3",), **_LLAMA_LIKE),
    Architecture("GPT-2", ("gpt2",), layers="h", down_proj="mlp.c_proj", final=("ln_f",)),
    Architecture(
        "GPT-NeoX", ("gpt_neox",), layers="layers", down_proj="mlp.dense_4h_to_h", final=("final_layer_norm",)
    ),
    Architecture(
        "OPT",
        ("opt",),
        layers="decoder.layers",
        down_proj="fc2",
        final=("decoder.final_layer_norm", "decoder.project_out"),
        flat_mlp=True,
    ),
    Architecture("Falcon", ("falcon",), layers="h", down_proj="mlp.dense_4h_to_h", final=("ln_f",)),
)
BY_MODEL_TYPE: dict[str, Architecture] = {t: arch for arch in ARCHITECTURES for t in arch.model_types}


def _model_type(model: Any) -> str | None:
    return getattr(getattr(model, "config", None), "model_type", None)


def architecture(model: nn.Module) -> Architecture:
    """The family entry of ``model`` (a causal LM or its base model), checked against the model."""
    model_type = _model_type(model)
    arch = BY_MODEL_TYPE.get(model_type)
    if arch is None:
        raise SteerPuError(
            f"unsupported architecture: model type {model_type!r} ({type(model).__name__}); steer-pu looks up "
            f"config.model_type to find the decoder blocks, block outputs and MLP down-projections, and knows "
            f"{', '.join(sorted(BY_MODEL_TYPE))}"
        )
    if model_type == "falcon" and getattr(model.config, "alibi", False):
        raise SteerPuError(
            "unsupported architecture: Falcon with ALiBi (config.alibi = true) builds its position bias from a 2-D "
            "padding mask, which packed scoring replaces by a 4-D one; only rotary Falcon models are supported"
        )
    return arch


def _resolve(root: nn.Module, path: str) -> Any:
    value: Any = root
    for part in path.split("."):
        value = getattr(value, part, None)
    return value


def base_model(model: nn.Module) -> nn.Module:
    """The decoder without its LM head (``model.model`` of a Llama, ``model.transformer`` of GPT-2)."""
    architecture(model)
    return model.base_model


def decoder_layers(model: nn.Module) -> nn.ModuleList:
    """The list of decoder blocks (``model.model.layers``, ``transformer.h``, ``model.decoder.layers`` …)."""
    from torch import nn

    arch = architecture(model)
    layers = _resolve(model.base_model, arch.layers)
    if not isinstance(layers, nn.ModuleList):
        raise SteerPuError(
            f"{type(model).__name__} (model type {_model_type(model)!r}, family {arch.family}): "
            f"cannot find the decoder blocks, looked for an nn.ModuleList at base_model.{arch.layers}"
        )
    return layers


def down_projection(model: nn.Module, layer: int) -> nn.Module:
    """Block ``layer``'s MLP output projection, whose input is the MLP hidden state."""
    arch = architecture(model)
    module = _resolve(decoder_layers(model)[layer], arch.down_proj)
    if module is None or not hasattr(module, "weight"):
        raise SteerPuError(
            f"{type(model).__name__} (model type {_model_type(model)!r}, family {arch.family}): "
            f"cannot find the MLP down-projection, looked for block {layer}'s {arch.down_proj}"
        )
    return module


def down_projection_name(model: nn.Module, layer: int) -> str:
    """The dotted module name of block ``layer``'s down-projection within ``model`` (peft, exports)."""
    target = down_projection(model, layer)
    return next(name for name, module in model.named_modules() if module is target)


def projection_shape(module: nn.Module) -> tuple[int, int]:
    """(out_features, in_features) of a down-projection: nn.Linear, or Conv1D whose weight is (in, out)."""
    if hasattr(module, "nf") and hasattr(module, "nx"):  # transformers' Conv1D (GPT-2)
        return int(module.nf), int(module.nx)
    out_features, in_features = module.weight.shape
    return int(out_features), int(in_features)


def block_hidden(output: Any) -> torch.Tensor:
    """The hidden states in a block's output (a tensor, or a tuple whose first item they are)."""
    return output[0] if isinstance(output, tuple) else output


def with_block_hidden(output: Any, hidden: torch.Tensor) -> Any:
    """A block's output with its hidden states replaced, in the block's own shape."""
    return (hidden, *output[1:]) if isinstance(output, tuple) else hidden


def final_hidden(model: nn.Module, hidden: torch.Tensor) -> torch.Tensor:
    """The base model's ``last_hidden_state`` from the last block's output (final norm, OPT's project_out)."""
    arch = architecture(model)
    for path in arch.final:
        module = _resolve(model.base_model, path)
        if module is not None:
            hidden = module(hidden)
    return hidden


def attention_mask_for(model: nn.Module, allowed: torch.Tensor) -> torch.Tensor:
    """A boolean (batch, 1, T, T) "may attend" mask in the form the model's attention takes: as it is
    for SDPA, additive (0 where allowed, the dtype's minimum elsewhere) for eager attention, which adds
    the mask to its scores (Gemma-2 runs eager by default, for its attention soft-capping)."""
    import torch

    if getattr(model.config, "_attn_implementation", None) != "eager" or allowed.dtype != torch.bool:
        return allowed
    dtype = model.dtype
    return torch.zeros(allowed.shape, dtype=dtype, device=allowed.device).masked_fill(~allowed, torch.finfo(dtype).min)


class _Handles:
    """Several hook handles removed as one."""

    def __init__(self, *handles):
        self.handles = handles

    def remove(self) -> None:
        for handle in self.handles:
            handle.remove()


#: an MLP update: (down-projection input x, tensor to add to) → the tensor's new value
MlpUpdate = Callable[["torch.Tensor", "torch.Tensor"], "torch.Tensor"]


def register_mlp_update(model: nn.Module, layer: int, update: MlpUpdate, point: str | None = None) -> _Handles:
    """Hook ``update`` at block ``layer``: it sees the down-projection's input ``x`` and returns the new
    value of the tensor it is added to — the down-projection's output (``point="down_proj"``) or the
    block's output hidden states (``"block"``); ``None``: the family's :attr:`Architecture.mlp_update`.
    Both arguments come as (batch, T, features), also where a family runs its MLP on flattened tokens.
    Returns a handle whose ``remove()`` takes every hook off again."""
    arch = architecture(model)
    point = point or arch.mlp_update
    if point not in UPDATE_POINTS:
        raise SteerPuError(f"unknown MLP update point {point!r}; expected one of {', '.join(UPDATE_POINTS)}")
    down, block = down_projection(model, layer), decoder_layers(model)[layer]
    handles = []
    lead: list[int] = []  # (batch, T) of the block's input, for a family whose MLP sees (batch·T, features)

    def unflatten(t: torch.Tensor) -> torch.Tensor:
        return t.view(*lead, t.shape[-1]) if arch.flat_mlp and t.ndim == 2 else t

    if arch.flat_mlp:

        def keep_shape(_module, args, kwargs):
            lead[:] = (args[0] if args else kwargs["hidden_states"]).shape[:-1]

        handles.append(block.register_forward_pre_hook(keep_shape, with_kwargs=True))
    if point == "down_proj":

        def on_output(_module, inputs, output):
            if not arch.flat_mlp:
                return update(inputs[0], output)
            return update(unflatten(inputs[0]), unflatten(output)).view(output.shape)

        handles.append(down.register_forward_hook(on_output))
        return _Handles(*handles)
    seen: list[torch.Tensor] = []

    def keep_input(_module, inputs):
        seen[:] = [unflatten(inputs[0])]

    def add_to_block(_module, _inputs, output):
        return with_block_hidden(output, update(seen.pop(), block_hidden(output)))

    handles += [down.register_forward_pre_hook(keep_input), block.register_forward_hook(add_to_block)]
    return _Handles(*handles)
