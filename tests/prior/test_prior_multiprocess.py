"""Prior training across processes through accelerate: the path `accelerate launch` takes on several GPUs."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from accelerate import debug_launcher

from diffnerf_ns.prior.model import RGBDPrior
from diffnerf_ns.prior.sources import synthetic_room_frames
from diffnerf_ns.prior.train import TrainConfig, train_prior


def _train_two_steps(out: str) -> None:
    """One process's part (top level: the launcher pickles it)."""
    frames = list(synthetic_room_frames(1, 48, 36, seed=1))
    config = TrainConfig(out=Path(out), patch_size=16, block_out_channels=(16, 32), layers_per_block=1)
    config.attention, config.batch_size, config.steps, config.warmup_steps = False, 2, 2, 1
    config.bank_size, config.bank_chunk, config.crops_per_frame, config.resume = 16, 8, 8, False
    config.half_precision_weights = True
    train_prior(frames, config)


@pytest.mark.skipif(sys.platform == "win32", reason="gloo process groups need a POSIX host")
def test_two_process_training_saves_one_prior(tmp_path: Path) -> None:
    """Two CPU processes (gloo) train 2 steps and the main process saves a prior in the shipped format.
    Catches a loop that deadlocks or diverges across processes (a collective only one rank reaches, per-rank
    step counts), a save from every rank racing on one folder, or a DDP-wrapped UNet saved instead of the UNet."""
    debug_launcher(_train_two_steps, args=(str(tmp_path / "prior"),), num_processes=2)
    stats = json.loads((tmp_path / "prior" / "train_stats.json").read_text())
    assert stats["processes"] == 2 and stats["steps"] == 2 and stats["patches_per_second"] > 0
    prior = RGBDPrior.from_pretrained(tmp_path / "prior")
    assert prior.patch_size == 16 and type(prior.unet).__name__ == "UNet2DModel"
    assert not (tmp_path / "prior.saving").exists()
