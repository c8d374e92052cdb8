"""Prior training across processes through accelerate: the path `accelerate launch` takes on several GPUs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from diffnerf_ns.prior.model import RGBDPrior

SCRIPT = Path(__file__).with_name("two_process_training.py")


@pytest.mark.skipif(sys.platform == "win32", reason="gloo process groups need a POSIX host")
def test_two_process_training_saves_one_prior(tmp_path: Path) -> None:
    """Two CPU processes (gloo) train 2 steps and the main process saves a prior in the shipped format.
    Catches a loop that deadlocks or diverges across processes (a collective only one rank reaches, per-rank
    step counts), a save from every rank racing on one folder, or a DDP-wrapped UNet saved instead of the UNet.
    A fresh interpreter: the launcher forks, and forking a test process whose earlier tests started torch's
    thread pools left a child waiting forever on a lock another thread held at the fork."""
    done = subprocess.run(
        [sys.executable, str(SCRIPT), str(tmp_path / "prior")], capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-3000:]
    stats = json.loads((tmp_path / "prior" / "train_stats.json").read_text())
    assert stats["processes"] == 2 and stats["steps"] == 2 and stats["patches_per_second"] > 0
    prior = RGBDPrior.from_pretrained(tmp_path / "prior")
    assert prior.patch_size == 16 and type(prior.unet).__name__ == "UNet2DModel"
    assert not (tmp_path / "prior.saving").exists()
