"""The one device rule of the package: CUDA when torch sees a GPU, else the CPU.

Asked at call time (never at import), so configs built on a CPU machine and run on a GPU one, or
inside a process that hides its GPUs, get the device that is actually there.
"""

from __future__ import annotations

import torch


def default_device() -> str:
    """'cuda' if a CUDA device is visible to torch now, else 'cpu'."""
    return "cuda" if torch.cuda.is_available() else "cpu"


def resolve_device(requested: str = "auto") -> str:
    """`requested` unless it is 'auto', which follows `default_device`."""
    return default_device() if requested == "auto" else requested


def cpu_has_native_bfloat16() -> bool:
    """Whether this CPU computes bfloat16 in hardware (AMX tiles or AVX512-BF16); emulated bf16 is slower than fp32."""
    checks = ("_is_amx_tile_supported", "_is_avx512_bf16_supported")
    return any(bool(getattr(torch.cpu, name, lambda: False)()) for name in checks)
