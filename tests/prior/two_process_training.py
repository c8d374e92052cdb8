"""Run by test_prior_multiprocess.py in a fresh interpreter: 2 CPU processes (gloo) train a tiny prior 2 steps.

python tests/prior/two_process_training.py OUT_DIR
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

from accelerate import debug_launcher

from diffnerf_ns.prior.presets import PRIOR_PRESETS
from diffnerf_ns.prior.sources import synthetic_room_frames
from diffnerf_ns.prior.train import train_prior


def train_two_steps(out: str) -> None:
    """One process's part (top level: the launcher pickles it)."""
    frames = list(synthetic_room_frames(1, 48, 36, seed=1))
    config = dataclasses.replace(PRIOR_PRESETS["test"], out=Path(out))
    config.attention, config.batch_size, config.steps, config.warmup_steps = False, 2, 2, 1
    config.bank_size, config.bank_chunk, config.crops_per_frame, config.resume = 16, 8, 8, False
    config.half_precision_weights = True
    train_prior(frames, config)


if __name__ == "__main__":
    debug_launcher(train_two_steps, args=(sys.argv[1],), num_processes=2)
