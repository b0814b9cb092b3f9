"""Torch devices, dtypes and memory budgets, resolved the way PyTorch users expect."""

from __future__ import annotations

import logging
import os

import torch

from .errors import ConfigError

logger = logging.getLogger(__name__)

_DTYPES = {
    "float32": torch.float32, "fp32": torch.float32, "float": torch.float32,
    "float16": torch.float16, "fp16": torch.float16, "half": torch.float16,
    "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
}

#: CPU memory budget for one model call when the caller gives none (bytes); override
#: with the environment variable ``PREPROC_CPU_MEMORY_BUDGET`` (e.g. ``4G``).
DEFAULT_CPU_BUDGET = 4 * 1024**3


def resolve_device(device: str | torch.device | None = None) -> torch.device:
    """``None`` means CUDA when available, else CPU; strings go through ``torch.device``."""
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as e:
        raise ConfigError(f"device {device!r} is not a torch device (try 'cpu', 'cuda', 'cuda:1')") from e
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {device!r} asked for, but torch.cuda.is_available() is False")
    return dev


def resolve_dtype(dtype: str | torch.dtype | None, default: torch.dtype = torch.float32) -> torch.dtype:
    """Accept ``torch.float16`` or names like ``"fp16"``, ``"bf16"``, ``"float32"``."""
    if dtype is None:
        return default
    if isinstance(dtype, torch.dtype):
        if dtype not in (torch.float32, torch.float16, torch.bfloat16):
            raise ConfigError(f"dtype {dtype} is not supported; expected float32, float16 or bfloat16")
        return dtype
    key = str(dtype).lower().removeprefix("torch.")
    if key not in _DTYPES:
        raise ConfigError(f"dtype {dtype!r} is not known; expected one of {', '.join(sorted(_DTYPES))}")
    return _DTYPES[key]


def parse_bytes(text: str) -> int:
    """``"4G"``, ``"512M"``, ``"1e9"`` -> bytes."""
    t = text.strip().upper().removesuffix("B")
    mult = {"K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}
    try:
        if t and t[-1] in mult:
            return int(float(t[:-1]) * mult[t[-1]])
        return int(float(t))
    except ValueError as e:
        raise ConfigError(f"cannot read a memory size from {text!r}; expected e.g. '4G' or '512M'") from e


def memory_budget(device: torch.device, budget: int | str | None = None, fraction: float = 0.6) -> int:
    """Bytes one model call may use on ``device``.

    An explicit ``budget`` wins. On CUDA: ``fraction`` of the currently free memory. On
    CPU: ``$PREPROC_CPU_MEMORY_BUDGET`` or :data:`DEFAULT_CPU_BUDGET`.
    """
    if budget is not None:
        return parse_bytes(budget) if isinstance(budget, str) else int(budget)
    if device.type == "cuda":
        free, _total = torch.cuda.mem_get_info(device)
        return int(free * fraction)
    env = os.environ.get("PREPROC_CPU_MEMORY_BUDGET")
    return parse_bytes(env) if env else DEFAULT_CPU_BUDGET


def is_out_of_memory(exc: BaseException) -> bool:
    """True for CUDA/MPS/CPU allocation failures that a smaller tile may avoid."""
    if isinstance(exc, torch.cuda.OutOfMemoryError):
        return True
    msg = str(exc).lower()
    return isinstance(exc, (RuntimeError, MemoryError)) and (
        "out of memory" in msg or "can't allocate memory" in msg or isinstance(exc, MemoryError)
    )
