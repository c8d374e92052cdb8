"""Prior training speed: steps/s with the pre-rendered patch bank, against the patch rendering it took off the loop.

Before the bank, every step rendered its batch in the training process (crop, Kinect corruption,
nearest fills) before the UNet ran. Here both costs are measured on the same machine:

- render: seconds to produce one batch of patches through `RGBDPatchDataset` (what each step used to wait for);
- step: seconds per training step of the real `train_prior` loop with the bank, from two runs of N1 and
  N2 steps (the difference cancels the bank fill and setup).

    python benchmarks/bench_prior_train_speed.py [--threads 2]
"""

from __future__ import annotations

import platform
import shlex
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path

import torch
import tyro

from diffnerf_ns.prior.patches import RGBDPatchDataset
from diffnerf_ns.prior.presets import PRIOR_PRESETS
from diffnerf_ns.prior.sources import synthetic_room_frames
from diffnerf_ns.prior.train import train_prior

CONFIGS = {
    "test-size (16 px, UNet 16-32, batch 32)": PRIOR_PRESETS["test"],
    "bench-size (24 px, UNet 16-32, batch 32)": PRIOR_PRESETS["cpu-bench"],
    "shippable (48 px, UNet 32-64-128-192 + attention, batch 64)": PRIOR_PRESETS["shippable"],
}


@dataclass
class Bench:
    threads: int = 2
    steps: tuple[int, int] = (3, 9)
    """N1, N2 training steps timed; steps/s = (N2 - N1) / (T2 - T1)."""
    out: Path = Path("benchmarks/results/prior_train_speed.md")


def main(bench: Bench) -> None:
    torch.set_num_threads(bench.threads)
    frames = synthetic_room_frames(8, 640, 480, seed=1)
    rows = []
    for name, base in CONFIGS.items():
        dataset = RGBDPatchDataset(frames, base.patch_size, length=10**9, seed=0)
        start = time.perf_counter()
        for i in range(base.batch_size):
            dataset[i]
        render = time.perf_counter() - start
        timings = []
        for steps in bench.steps:
            config = replace(
                base, steps=steps, resume=False, bank_size=256, bank_chunk=64, bank_refresh_every=4, warmup_steps=1
            )
            with tempfile.TemporaryDirectory() as out:
                start = time.perf_counter()
                train_prior(frames, replace(config, out=Path(out)))
                timings.append(time.perf_counter() - start)
        step = (timings[1] - timings[0]) / (bench.steps[1] - bench.steps[0])
        rows.append(
            f"| {name} | {render:.3f} | {step:.3f} | {1 / step:.2f} | {1 / (step + render):.2f} | "
            f"{(step + render) / step:.2f}x |"
        )
    lines = [
        "# Prior training speed (CPU)",
        f"Command: `{shlex.join(['python', Path(sys.argv[0]).as_posix(), *sys.argv[1:]])}`",
        f"Machine: {platform.platform()}, {platform.processor() or platform.machine()}, "
        f"{bench.threads} torch threads, no GPU; torch {torch.__version__}. Shared 2-core machine, other jobs running.",
        "Bank refreshes (one 64-patch chunk every 4 steps) are inside the step time; with `--num-workers` they "
        "move to DataLoader workers too.",
        "",
        "| config | render one batch (s) | train step with bank (s) | steps/s with bank | steps/s rendering "
        "in the loop (render + step) | speed-up |",
        "|---|---|---|---|---|---|",
        *rows,
    ]
    bench.out.parent.mkdir(parents=True, exist_ok=True)
    bench.out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main(tyro.cli(Bench))
