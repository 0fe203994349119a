"""Where and in what precision a model runs: ``--device`` and ``--dtype``, resolved and checked here only.

Devices: ``auto`` (CUDA when present, else MPS when present, else CPU), ``cpu``, ``cuda``,
``cuda:N``, ``mps``, and ``auto-map`` — Hugging Face's ``device_map="auto"``, one model spread
over every GPU (and the CPU) for models larger than one device. Dtypes: float32, bfloat16,
float16 (the weights' and activations' dtype; log-softmax and NLL sums are always float64,
float32 on MPS, which has no float64 — see :func:`accumulation_dtype`).

Also here: free and peak memory of a device, the token budget that follows the free memory,
what an out-of-memory error looks like, and the device record written into provenance. torch
is imported inside the functions: this module stays as cheap to import as the registry.
"""

from __future__ import annotations

import os
import platform
import subprocess
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any, TypeVar

from steer_pu.errors import SteerPuError

if TYPE_CHECKING:
    import torch
    from torch import nn

DEVICES = ("auto", "cpu", "cuda", "cuda:N", "mps", "auto-map")
DTYPES = ("float32", "bfloat16", "float16")
AUTO_MAP = "auto-map"
DEVICE_HELP = (
    "auto (CUDA, else MPS, else CPU), cpu, cuda, cuda:N, mps, or auto-map "
    "(device_map='auto': one model over all GPUs, for models larger than one device)"
)
DTYPE_HELP = "weights and activations: float32, bfloat16 or float16 (log-softmax and NLL sums stay float64)"

#: the token budget's bounds when it follows the free memory: CPU throughput stops growing at
#: 8192 tokens per batch (docs/performance.md), a GPU keeps gaining up to far larger batches
BUDGET_MIN = 256
BUDGET_CAP = {"cpu": 8192, "cuda": 65536, "mps": 16384}
BUDGET_MEMORY_SHARE = 0.25  # of the free memory, for one batch's activations
BUDGET_ROW_WIDTH = 512  # the row width assumed for attention scores (packed rows are 100-400 tokens)


def _torch():
    import torch

    return torch


def resolve_dtype(name: str) -> str:
    """The checked dtype name (``fp32``/``bf16``/``fp16`` are accepted as aliases)."""
    aliases = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16", "half": "float16", "float": "float32"}
    resolved = aliases.get(str(name).strip().lower(), str(name).strip().lower())
    if resolved not in DTYPES:
        raise SteerPuError(f"unknown dtype '{name}': expected one of {', '.join(DTYPES)}")
    return resolved


def emulated_dtype_note(device: str, dtype: str) -> str | None:
    """Why ``dtype`` would be slow on ``device``, or None: a CPU without native bfloat16 / float16
    matrix instructions (AVX512-BF16, AMX; oneDNN's own check) emulates them, far slower than
    float32 (a 2-core AVX2 EPYC: 1.2 against 69 GFLOP/s, docs/performance.md)."""
    resolved = resolve_dtype(dtype)
    if resolved == "float32" or kind(device) != "cpu":
        return None
    torch = _torch()
    check = {"bfloat16": "_is_mkldnn_bf16_supported", "float16": "_is_mkldnn_fp16_supported"}[resolved]
    try:
        native = bool(getattr(torch.ops.mkldnn, check)())
    except (AttributeError, RuntimeError):  # a torch without the check: assume nothing
        return None
    if native:
        return None
    capability = torch.backends.cpu.get_cpu_capability()
    return (
        f"--dtype {resolved} on this CPU ({capability}, no native {resolved} matrix instructions) is emulated, "
        "tens of times slower than float32; use --dtype float32 here"
    )


def torch_dtype(name: str) -> torch.dtype:
    return getattr(_torch(), resolve_dtype(name))


def resolve_device(name: str) -> str:
    """The checked device: ``auto`` picked now, ``cuda`` → ``cuda:<current>``; an unknown name or
    a device this machine lacks is a SteerPuError."""
    torch = _torch()
    value = str(name).strip().lower()
    if value == "auto":
        if torch.cuda.is_available():
            return f"cuda:{torch.cuda.current_device()}"
        if _mps_available():
            return "mps"
        return "cpu"
    if value in ("cpu", AUTO_MAP):
        return value
    if value == "mps":
        if not _mps_available():
            raise SteerPuError("device 'mps': this machine has no usable Apple MPS backend; use --device cpu")
        return value
    if value == "cuda" or value.startswith("cuda:"):
        index_text = value.partition(":")[2]
        if value != "cuda" and not index_text.isdigit():
            raise SteerPuError(f"unknown device '{name}': expected cuda or cuda:N with N a GPU number")
        if not torch.cuda.is_available():
            build = f"torch {torch.__version__}" + ("" if torch.version.cuda else ", built without CUDA")
            raise SteerPuError(f"device '{name}': CUDA is not available here ({build}); use --device cpu or auto")
        index = int(index_text) if index_text else torch.cuda.current_device()
        count = torch.cuda.device_count()
        if index >= count:
            raise SteerPuError(f"device '{name}': this machine has {count} GPU(s), cuda:0..cuda:{count - 1}")
        return f"cuda:{index}"
    raise SteerPuError(f"unknown device '{name}': expected one of {', '.join(DEVICES)}")


def _mps_available() -> bool:
    mps = getattr(_torch().backends, "mps", None)
    return bool(mps is not None and mps.is_available())


def kind(device: str) -> str:
    """``cpu``, ``cuda`` or ``mps`` (``auto-map`` counts as CUDA where there is one)."""
    if device == AUTO_MAP:
        return "cuda" if _torch().cuda.is_available() else "cpu"
    return device.partition(":")[0]


def input_device(model: nn.Module) -> torch.device:
    """Where a model's inputs go: its input embedding's device (the first GPU under device_map)."""
    return model.get_input_embeddings().weight.device


def accumulation_dtype(device: torch.device | str) -> torch.dtype:
    """float64 for log-softmax and NLL sums, whatever the model dtype; float32 on MPS (no float64)."""
    torch = _torch()
    return torch.float32 if torch.device(device).type == "mps" else torch.float64


def free_memory(device: torch.device | str) -> int:
    """Free bytes: ``torch.cuda.mem_get_info`` on CUDA, the available system memory otherwise."""
    torch = _torch()
    device = torch.device(device)
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    try:
        import psutil

        return int(psutil.virtual_memory().available)
    except ImportError:  # pragma: no cover - psutil is pinned in the environment
        return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))


def auto_token_budget(model: nn.Module, free_bytes: int | None = None) -> int:
    """Tokens per forward batch that fit a quarter of the device's free memory (measured after
    the weights are loaded), as a power of two so that small changes in free memory give the
    same budget, within ``BUDGET_MIN`` and the device's ``BUDGET_CAP``.

    Per token it counts the widest activations alive at once — hidden states and their
    residual copies, the MLP's intermediate, attention scores over a ``BUDGET_ROW_WIDTH`` row —
    in the model's dtype.
    """
    device = input_device(model)
    if free_bytes is None:
        free_bytes = free_memory(device)
    config = model.config
    config = getattr(config, "text_config", None) or config
    hidden = int(config.hidden_size)
    intermediate = int(getattr(config, "intermediate_size", None) or 4 * hidden)
    heads = int(getattr(config, "num_attention_heads", None) or 1)
    element = next(model.parameters()).element_size()
    per_token = element * (8 * hidden + 3 * intermediate + 2 * heads * BUDGET_ROW_WIDTH)
    fits = int(free_bytes * BUDGET_MEMORY_SHARE) // per_token
    cap = BUDGET_CAP.get(device.type, BUDGET_CAP["cpu"])
    budget = 1 << max(fits, 1).bit_length() - 1  # largest power of two ≤ fits
    return max(BUDGET_MIN, min(cap, budget))


def is_out_of_memory(exc: BaseException) -> bool:
    """An allocation failure: torch's OutOfMemoryError (CUDA), MemoryError, or the RuntimeError
    CPU and MPS allocators raise."""
    torch = _torch()
    oom = getattr(torch, "OutOfMemoryError", None) or getattr(torch.cuda, "OutOfMemoryError", None)
    if (oom is not None and isinstance(exc, oom)) or isinstance(exc, MemoryError):
        return True
    text = str(exc).lower()
    markers = ("out of memory", "can't allocate memory", "not enough memory", "failed to allocate")
    return isinstance(exc, RuntimeError) and any(marker in text for marker in markers)


Item = TypeVar("Item")
Result = TypeVar("Result")


def split_on_oom(
    batches: Iterable[list[Item]],
    tokens: Callable[[list[Item]], int],
    run: Callable[[list[Item]], Result],
    device: torch.device | str,
    too_large: Callable[[list[Item]], str],
) -> Iterator[tuple[list[Item], Result]]:
    """``(batch, run(batch))`` for every batch in order, each item exactly once.

    A batch that runs out of memory is split in half and both halves are run instead — never
    dropped — and later batches over half the failed batch's ``tokens`` are split before they
    are tried. ``run`` must not write anything before it returns, so a failed attempt leaves no
    trace. A single item that does not fit raises :class:`SteerPuError` with ``too_large(batch)``.
    """
    pending = list(batches)[::-1]
    cap: int | None = None  # tokens per batch after an out-of-memory error
    while pending:
        batch = pending.pop()
        size = tokens(batch)
        if cap is not None and size > cap and len(batch) > 1:
            half = len(batch) // 2
            pending += [batch[half:], batch[:half]]
            continue
        try:
            result = run(batch)
        except Exception as exc:
            if not is_out_of_memory(exc):
                raise
            del exc  # its traceback holds the failed batch's tensors
            release_memory(device)
            if len(batch) == 1:
                raise SteerPuError(too_large(batch)) from None
            cap = size // 2
            half = len(batch) // 2
            pending += [batch[half:], batch[:half]]
            continue
        yield batch, result


def release_memory(device: torch.device | str) -> None:
    """Give cached blocks back after an out-of-memory batch, before its halves are tried."""
    import gc

    torch = _torch()
    gc.collect()
    kind_ = torch.device(device).type
    if kind_ == "cuda":
        torch.cuda.empty_cache()
    elif kind_ == "mps" and hasattr(torch, "mps"):
        torch.mps.empty_cache()


def reset_peak_memory(device: torch.device | str) -> None:
    torch = _torch()
    if torch.device(device).type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def peak_memory_mb(device: torch.device | str) -> float:
    """Peak memory so far: tensors allocated on a CUDA device since the last reset, else the
    process's peak resident set (which no reset lowers)."""
    torch = _torch()
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    if device.type == "mps" and hasattr(torch, "mps"):
        return torch.mps.driver_allocated_memory() / 2**20
    try:
        import resource

        scale = 1 if platform.system() == "Darwin" else 1024  # ru_maxrss: bytes on macOS, KiB on Linux
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale / 2**20
    except ImportError:  # pragma: no cover - Windows
        return float("nan")


def _driver_version() -> str | None:
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
            capture_output=True, text=True, timeout=10,
        )  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return None
    lines = out.stdout.strip().splitlines()
    return lines[0].strip() if out.returncode == 0 and lines else None


def device_record(device: str, dtype: str, threads: int) -> dict[str, Any]:
    """What a number was computed on: device, its name, CUDA/driver versions, torch build, dtype, threads."""
    torch = _torch()
    record: dict[str, Any] = {
        "device": device,
        "dtype": dtype,
        "threads": threads,
        "torch": torch.__version__,
        "torch_cuda": torch.version.cuda,
        "torch_git": getattr(torch.version, "git_version", None),
        "machine": platform.machine(),
        "processor": platform.processor() or None,
        "cpu_count": os.cpu_count(),
    }
    if kind(device) == "cuda" and torch.cuda.is_available():
        index = int(device.partition(":")[2] or 0) if device != AUTO_MAP else 0
        props = torch.cuda.get_device_properties(index)
        record.update(
            gpu=props.name,
            gpu_count=torch.cuda.device_count() if device == AUTO_MAP else 1,
            gpu_memory_mb=round(props.total_memory / 2**20),
            compute_capability=f"{props.major}.{props.minor}",
            cudnn=torch.backends.cudnn.version(),
            driver=_driver_version(),
        )
    return record


def device_label(record: dict[str, Any]) -> str:
    """One line for a device record (a submission's ``environment.device``), e.g.
    ``cuda:0 (NVIDIA H200, CUDA 12.4, driver 550.54, torch 2.5.1+cu124)``."""
    parts = [record.get("gpu"), record.get("torch_cuda") and f"CUDA {record['torch_cuda']}"]
    parts += [record.get("driver") and f"driver {record['driver']}", record.get("torch") and f"torch {record['torch']}"]
    details = ", ".join(str(p) for p in parts if p)
    return f"{record.get('device', 'unknown')} ({details})" if details else str(record.get("device", "unknown"))
