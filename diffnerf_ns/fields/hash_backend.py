"""Choosing the hash-grid implementation once, at run time, and saying which."""

from __future__ import annotations

import functools
import importlib.util
from typing import Literal

from nerfstudio.utils.external import TCNN_EXISTS
from nerfstudio.utils.rich_utils import CONSOLE

from diffnerf_ns.device import default_device

HashBackend = Literal["tcnn", "triton", "torch"]
_NEEDS = {"tcnn": "tinycudann and CUDA", "triton": "Triton and CUDA"}


@functools.cache
def select_hash_backend(requested: Literal["auto", "tcnn", "triton", "torch"] = "auto") -> HashBackend:
    """tiny-cuda-nn if it imports and CUDA is present, else the fused Triton grid on CUDA, else the torch grid.

    tiny-cuda-nn first because it is the fastest where it builds; the Triton kernel next because Triton
    ships with PyPI's CUDA builds of torch; nerfstudio's pure-torch grid is the fallback that runs anywhere.
    """
    has_cuda = default_device() == "cuda"
    has_triton = importlib.util.find_spec("triton") is not None
    available = {"tcnn": TCNN_EXISTS and has_cuda, "triton": has_triton and has_cuda, "torch": True}
    if requested != "auto" and not available[requested]:
        raise RuntimeError(
            f"implementation='{requested}' needs {_NEEDS[requested]} (tinycudann importable: {TCNN_EXISTS}, "
            f"triton installed: {has_triton}, CUDA available: {has_cuda}); use 'auto' or 'torch'."
        )
    backend: HashBackend = (
        requested if requested != "auto" else next(b for b in ("tcnn", "triton", "torch") if available[b])
    )
    reason = (
        "requested"
        if requested != "auto"
        else f"auto; tinycudann importable: {TCNN_EXISTS}, triton installed: {has_triton}, CUDA available: {has_cuda}"
    )
    CONSOLE.print(f"[bold]diffnerf hash grid: {backend} implementation[/bold] ({reason})")
    return backend
