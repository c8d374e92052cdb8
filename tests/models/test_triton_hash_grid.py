"""The fused Triton hash grid: kernel cases in Triton's interpreter (child process), backend choice."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from diffnerf_ns.fields import hash_backend

CASES = Path(__file__).with_name("hash_grid_interpreter_cases.py")


def test_fused_grid_cases_in_triton_interpreter() -> None:
    """Runs hash_grid_interpreter_cases.py (values and gradients against the torch grid, collisions, fp16,
    checkpoint compatibility) on CPU in a process started with TRITON_INTERPRET=1."""
    pytest.importorskip("triton", reason="Triton ships with PyPI's CUDA builds of torch; a CPU-only torch has none")
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-W", "ignore", str(CASES)],
        env={**os.environ, "TRITON_INTERPRET": "1"},
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    assert " passed" in result.stdout and "skipped" not in result.stdout, result.stdout[-2000:]


def test_auto_backend_order(monkeypatch: pytest.MonkeyPatch) -> None:
    """Catches picking Triton over a working tiny-cuda-nn, picking a GPU kernel on a CPU machine, or
    silently falling back when a backend was explicitly requested but cannot run."""
    select = hash_backend.select_hash_backend.__wrapped__

    def machine(tcnn: bool, cuda: bool, triton: bool) -> None:
        monkeypatch.setattr(hash_backend, "TCNN_EXISTS", tcnn)
        monkeypatch.setattr(hash_backend, "default_device", lambda: "cuda" if cuda else "cpu")
        monkeypatch.setattr(hash_backend.importlib.util, "find_spec", lambda name: object() if triton else None)

    machine(tcnn=True, cuda=True, triton=True)
    assert select("auto") == "tcnn"
    machine(tcnn=False, cuda=True, triton=True)
    assert select("auto") == "triton"
    machine(tcnn=True, cuda=False, triton=True)
    assert select("auto") == "torch"
    with pytest.raises(RuntimeError, match="Triton and CUDA"):
        select("triton")
    assert select("torch") == "torch"


def test_fused_grid_scalings_follow_the_table_device() -> None:
    """Catches the level scalings left on the CPU when a grid already on the GPU is wrapped (Triton then
    refuses the pointer; the first GPU session hit it). The meta device stands in for CUDA on CPU."""
    from nerfstudio.field_components.encodings import HashEncoding

    from diffnerf_ns.fields.triton_hash_encoding import FusedHashEncoding

    grid = HashEncoding(num_levels=4, min_res=4, max_res=32, log2_hashmap_size=8, implementation="torch")
    fused = FusedHashEncoding(grid.to("meta"))
    assert fused._level_scalings.device == fused.hash_table.device == torch.device("meta")
