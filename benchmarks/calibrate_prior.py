"""Fit a prior's `interval_scale` on frames no benchmark scores and store it in its `model_index.json`.

    python -m benchmarks.calibrate_prior --prior diffnerf_ns/prior/pretrained [--frames 4] [--threads 2]

Frames: one 640x480 view of each of `--frames` procedural-corpus `train`-split rooms drawn with
`diffnerf_ns.data_split.CALIBRATION_CORPUS_SEED` (the training generator, rooms no prior trains on), with the
generator's Kinect raw; hole pixels are scored against the exact depth. Writes a markdown report.
"""

from __future__ import annotations

import json
import platform
import shlex
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
import tyro

from data_converters.synthetic.corpus import corpus_frames
from diffnerf_ns.data_split import CALIBRATION_CORPUS_SEED
from diffnerf_ns.prior.calibration import fit_interval_scale
from diffnerf_ns.prior.model import RGBDPrior
from diffnerf_ns.prior.refine import RefineConfig


@dataclass
class Calibrate:
    prior: Path
    frames: int = 4
    width: int = 640
    height: int = 480
    """Frame size: the benchmarks' (the spread of a tile blend depends on how many tiles overlap)."""
    sampling: RefineConfig = field(default_factory=lambda: RefineConfig(steps=10, overlap=8))
    """The refinement settings the benchmarks use (the scale belongs to them: more samples spread differently)."""
    threads: int = 2
    report: Path = Path("benchmarks/results/prior_calibration.md")


def main(run: Calibrate) -> None:
    torch.set_num_threads(run.threads)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    prior = RGBDPrior.from_pretrained(run.prior, device=device)
    frames = [
        (f.rgb, f.raw, f.depth)
        for f in corpus_frames(run.frames, 1, run.width, run.height, seed=CALIBRATION_CORPUS_SEED, split="train")
    ]
    started = time.perf_counter()
    scale, before, pixels = fit_interval_scale(prior, frames, run.sampling)
    minutes = (time.perf_counter() - started) / 60
    index_path = run.prior / "model_index.json"
    index = json.loads(index_path.read_text())
    index["interval_scale"] = round(scale, 4)
    index_path.write_text(json.dumps(index, indent=2) + "\n")
    card = torch.cuda.get_device_name() if device == "cuda" else f"{platform.machine()} CPU, {run.threads} threads"
    lines = [
        "# Prior interval calibration",
        "",
        f"Command: `{shlex.join(['python', '-m', 'benchmarks.calibrate_prior', *sys.argv[1:]])}`",
        f"Machine: {card}; torch {torch.__version__}; {minutes:.1f} min.",
        f"Prior: `{run.prior}`. Frames: {run.frames} corpus `train`-split rooms of seed {CALIBRATION_CORPUS_SEED} "
        f"({run.width}x{run.height}, Kinect raw; rooms no prior trains on, not the benchmark's held-out rooms).",
        f"Sampling: {run.sampling}.",
        "",
        "| hole pixels | 90% interval coverage before | interval_scale fitted | coverage after (where fitted) |",
        "|---:|---:|---:|---:|",
        f"| {pixels} | {100 * before:.1f}% | {scale:.3f} | {100 * run.sampling.interval:.0f}% by construction |",
        "",
        f"Written to `{index_path}` as `interval_scale`; the benchmarks report the coverage it gives on their frames.",
    ]
    run.report.parent.mkdir(parents=True, exist_ok=True)
    run.report.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main(tyro.cli(Calibrate))
