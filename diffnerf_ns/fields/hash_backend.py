"""Choosing the hash-grid implementation once, at run time, and saying which."""

from __future__ import annotations

import functools
import importlib.util
from typing import Literal

import torch
from nerfstudio.utils.rich_utils import CONSOLE

HashBackend = Literal["tcnn", "torch"]


@functools.cache
def select_hash_backend(requested: Literal["auto", "tcnn", "torch"] = "auto") -> HashBackend:
    """tiny-cuda-nn when it is importable and CUDA is present, the pure-torch grid otherwise."""
    has_tcnn = importlib.util.find_spec("tinycudann") is not None
    has_cuda = torch.cuda.is_available()
    if requested == "tcnn" and not (has_tcnn and has_cuda):
        raise RuntimeError(
            "implementation='tcnn' needs tinycudann and CUDA "
            f"(tinycudann installed: {has_tcnn}, CUDA available: {has_cuda}); use 'auto' or 'torch'."
        )
    backend: HashBackend = "tcnn" if requested == "tcnn" or (requested == "auto" and has_tcnn and has_cuda) else "torch"
    reason = "tinycudann + CUDA found" if backend == "tcnn" else (
        "requested" if requested == "torch" else f"tinycudann installed: {has_tcnn}, CUDA available: {has_cuda}"
    )
    CONSOLE.print(f"[bold]diffnerf hash grid: {backend} implementation[/bold] ({reason})")
    return backend
