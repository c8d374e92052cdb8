"""Train the shippable default prior for a fixed wall time and report its speed (the GPU session's step 2).

Data: a rendered procedural corpus (`diffnerf-make-corpus`: exact depth, Kinect raw) and, when given,
SUN3D fragment 1 self-supervised (its own valid pixels hidden under realistic hole shapes). Model:
`TrainConfig()`'s shippable defaults (48 px, UNet 32-64-128-192 + attention, batch 64), saved with
float16 weights. Writes the prior to `--out` and a markdown report with steps/s, data-wait share and loss.

    python -m benchmarks.train_default_prior render --out outputs/corpus_train --workers 16
    python -m benchmarks.train_default_prior train --corpus outputs/corpus_train --sun3d gpu_data/... --minutes 4
    python -m benchmarks.train_default_prior train --smoke ...   # tiny model, a few steps (checks the path only)
    python -m benchmarks.train_default_prior step-speed        # the UNet step alone at batch 64/256/512

`render` calls the corpus writer directly: `diffnerf-make-corpus` goes through the converter CLI, which imports
open3d (too big to carry to the device).
"""

from __future__ import annotations

import json
import platform
import shlex
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch
import tyro

from data_converters.synthetic.corpus import write_corpus
from diffnerf_ns.prior.cli import SHIPPABLE_MB
from diffnerf_ns.prior.model import RGBDPrior
from diffnerf_ns.prior.model_card import cumulative_steps
from diffnerf_ns.prior.shipped import default_prior_path
from diffnerf_ns.prior.sources import frames_from_corpus_dir, self_supervised, sun3d_frames
from diffnerf_ns.prior.train import TrainConfig, denoising_loss, train_prior

CHECKPOINT_DIR = Path(__file__).resolve().parent / "prior_checkpoint"
"""The development prior a GPU run continues from while no prior ships (`benchmarks/ship_prior.py` writes it)."""
DATA_FILE = "training_data.txt"
"""Written beside the weights: what this run trained on, for the model card."""


def continue_from() -> Path | None:
    """The prior the next bounded run continues: the shipped one, else the development checkpoint, else none."""
    shipped = default_prior_path()
    if shipped is not None and (CHECKPOINT_DIR / "model_index.json").is_file():
        raise SystemExit(
            f"train_default_prior: both {shipped} and {CHECKPOINT_DIR} hold a prior; keep one "
            "(benchmarks/ship_prior.py keeps exactly one)"
        )
    if shipped is not None:
        return shipped
    return CHECKPOINT_DIR if (CHECKPOINT_DIR / "model_index.json").is_file() else None


@dataclass
class Render:
    """Render the training split of the procedural corpus (exact depth + Kinect raw) with parallel workers."""

    out: Path
    num_rooms: int = 64
    views_per_room: int = 6
    width: int = 640
    height: int = 480
    workers: int = 16

    def main(self) -> None:
        started = time.perf_counter()
        write_corpus(self.out, self.num_rooms, self.views_per_room, self.width, self.height, workers=self.workers)
        frames = self.num_rooms * self.views_per_room
        print(f"rendered {frames} {self.width}x{self.height} frames in {time.perf_counter() - started:.0f} s")


@dataclass
class Run:
    """Train the default prior on a rendered corpus (+ SUN3D fragment 1) for a fixed time; write the report."""

    corpus: Path | None = None
    """A rendered corpus folder (`diffnerf-make-corpus --split train`); without it, SUN3D alone trains."""
    out: Path = Path("outputs/default_prior")
    sun3d: Path | None = None
    """A 3DMatch-layout SUN3D capture: fragment 1 trains (self-supervised), fragment 2 is never read."""
    minutes: float = 4.0
    """Wall-time cap of the training loop (the bank fill and saving come on top)."""
    deadline: float | None = None
    """Absolute stop time of the loop (`date +%s` seconds); whichever of this and `minutes` comes first wins."""
    save_every_seconds: float = 60.0
    """Save the fp16 EMA prior to `out` this often, so a run cut short still returns one."""
    batch_size: int = 256
    """Patches per step: 256 keeps a GPU busy (the earlier 64 left it launch-bound at 13 steps/s)."""
    lr: float = 4e-4
    """AdamW learning rate: 2e-4 at batch 64, scaled by sqrt(batch / 64)."""
    warmup_steps: int = 200
    channels_last: bool = True
    fresh: bool = False
    """Start from random weights even when a shipped prior or the development checkpoint exists."""
    num_workers: int = 12
    """DataLoader workers preparing bank chunks (one whole-frame corruption per `crops_per_frame` patches)."""
    report: Path = Path("benchmarks/results/prior_train_gpu.md")
    smoke: bool = False
    """Tiny model and a few steps on whatever device is there: proves the path, measures nothing."""

    def main(self) -> None:
        train(self)


@dataclass
class StepSpeed:
    """The shippable UNet's training step alone (no data loading) at several batch sizes, on one device:
    the same-card baseline the loop's patches/s is compared against."""

    batch_sizes: tuple[int, ...] = (64, 256, 512)
    steps: int = 30
    out: Path = Path("benchmarks/results/prior_step_speed_gpu.md")
    smoke: bool = False

    def main(self) -> None:
        cuda = torch.cuda.is_available()
        device = "cuda" if cuda else "cpu"
        torch.backends.cudnn.benchmark = cuda
        config = TrainConfig()
        if self.smoke:
            config = replace(config, patch_size=16, block_out_channels=(16, 32), layers_per_block=1, attention=False)
            self.batch_sizes, self.steps = (2, 4), 2
        prior = RGBDPrior.create(
            config.patch_size, config.block_out_channels, config.layers_per_block, config.attention
        )
        prior.to(device)
        prior.unet.train()
        if cuda:
            prior.unet.to(memory_format=torch.channels_last)
        optimizer = torch.optim.AdamW(prior.unet.parameters(), lr=1e-4, foreach=True)
        dtype = torch.bfloat16 if cuda else torch.float32
        card = torch.cuda.get_device_name() if cuda else "cpu"
        lines = [
            "# Prior training step alone" + (" (SMOKE RUN: not a measurement)" if self.smoke else ""),
            "",
            f"Command: `{shlex.join(['python', '-m', 'benchmarks.train_default_prior', *sys.argv[1:]])}`",
            f"Device: {card}, torch {torch.__version__}; {config.patch_size} px, UNet {config.block_out_channels}"
            f"{' + attention' if config.attention else ''}, {dtype} autocast, channels_last, AdamW foreach; "
            f"{self.steps} timed steps after 5.",
            "",
            "| batch | ms / step | steps/s | patches/s | x batch 64 |",
            "|---:|---:|---:|---:|---:|",
        ]
        base = None
        for batch in self.batch_sizes:
            p = config.patch_size
            x0 = torch.randn(batch, 4, p, p, device=device)
            cond = (torch.rand(batch, 2, p, p, device=device) > 0.1).float()
            noise = torch.randn_like(x0)
            t = torch.randint(0, prior.num_train_timesteps, (batch,), device=device)

            def step(x0=x0, cond=cond, t=t, noise=noise) -> None:
                with torch.autocast(device, dtype=dtype, enabled=cuda):
                    loss = denoising_loss(prior, x0, cond, t, noise, 0.0, None, config.hole_weight)
                loss.backward()
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)

            for _ in range(5):
                step()
            if cuda:
                torch.cuda.synchronize()
            started = time.perf_counter()
            for _ in range(self.steps):
                step()
            if cuda:
                torch.cuda.synchronize()
            ms = (time.perf_counter() - started) / self.steps * 1e3
            patches = batch / ms * 1e3
            base = base or patches
            lines.append(f"| {batch} | {ms:.1f} | {1e3 / ms:.1f} | {patches:.0f} | {patches / base:.2f} |")
            self.out.parent.mkdir(parents=True, exist_ok=True)
            self.out.write_text("\n".join(lines) + "\n")
            print(lines[-1], flush=True)


def train(run: Run) -> None:
    frames = list(frames_from_corpus_dir(run.corpus)) if run.corpus is not None else []
    n_corpus = len(frames)
    if not frames and run.sun3d is None:
        sys.exit("train_default_prior: no training frames: give --corpus, --sun3d or both")
    if run.sun3d is not None:
        frames += list(self_supervised(sun3d_frames(run.sun3d, "train"), seed=0))
    data = (f"{n_corpus} procedural-corpus frames (Kinect raw)" if n_corpus else "") + (
        f"{' + ' if n_corpus else ''}{len(frames) - n_corpus} SUN3D fragment-1 frames (self-supervised)"
        if run.sun3d
        else ""
    )
    run.out.mkdir(parents=True, exist_ok=True)
    (run.out / DATA_FILE).write_text(data + "\n")
    init_from = None if run.fresh or run.smoke else continue_from()
    init_step = cumulative_steps(init_from) if init_from is not None else 0
    if init_from is not None:
        print(f"continuing from {init_from} ({init_step} steps)", flush=True)
    config = TrainConfig(
        out=run.out,
        init_from=init_from,
        init_step=init_step,
        steps=100_000,
        max_minutes=run.minutes,
        deadline=run.deadline,
        save_every_seconds=run.save_every_seconds,
        batch_size=run.batch_size,
        lr=run.lr,
        warmup_steps=run.warmup_steps,
        channels_last=run.channels_last,
        half_precision_weights=True,
        num_workers=run.num_workers,
        checkpoint_every=10**9,  # one bounded run: the final save is the product
        resume=False,
    )
    if run.smoke:
        config = replace(
            config,
            patch_size=16,
            block_out_channels=(16, 32),
            layers_per_block=1,
            attention=False,
            steps=6,
            batch_size=4,
            warmup_steps=1,
            bank_size=64,
            bank_chunk=32,
            crops_per_frame=16,
        )
    started = time.perf_counter()
    losses = train_prior(frames, config)
    wall = time.perf_counter() - started
    stats = json.loads((run.out / "train_stats.json").read_text())
    weights_mb = (run.out / "unet" / "diffusion_pytorch_model.safetensors").stat().st_size / 1e6
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu"
    first, last = float(np.mean(losses[: min(100, len(losses))])), float(np.mean(losses[-100:]))
    lines = [
        "# Default prior training run" + (" (SMOKE RUN: not a measurement)" if run.smoke else ""),
        "",
        f"Command: `{shlex.join(['python', '-m', 'benchmarks.train_default_prior', *sys.argv[1:]])}`",
        f"Machine: {platform.platform()}, device {device}, torch {torch.__version__}.",
        f"Data: {data}; each prepared frame (whole-frame Kinect corruption and fill) gives "
        f"{config.crops_per_frame} crops.",
        f"Continued from: {init_from} ({init_step} steps)." if init_from else "Trained from random weights.",
        f"Model: {config.patch_size} px, UNet {config.block_out_channels} x {config.layers_per_block}"
        + (" + attention" if config.attention else "")
        + f", batch {config.batch_size}, bank {config.bank_size} patches on the device, "
        f"{config.num_workers} DataLoader workers, mixed precision `{config.mixed_precision}`.",
        "",
        "| steps | loop s | steps/s | patches/s | x batch-64 loop (13 steps/s = 832 patches/s) | data wait share "
        "| loss first -> last 100 | weights MB (fp16) | shippable (<= 25 MB) | wall incl. setup s |",
        "|---:|---:|---:|---:|---:|---:|---|---:|---|---:|",
        f"| {stats['steps']} | {stats['seconds']:.0f} | {stats['steps_per_second']:.1f} | "
        f"{stats['patches_per_second']:.0f} | {stats['patches_per_second'] / (13 * 64):.1f}x | "
        f"{stats['data_wait_seconds'] / max(stats['seconds'], 1e-9):.0%} | "
        f"{first:.4f} -> {last:.4f} | {weights_mb:.1f} | {'yes' if weights_mb <= SHIPPABLE_MB else 'NO'} | "
        f"{wall:.0f} |",
        "",
        f"Saved to `{run.out}`; config: `{json.dumps(asdict(config), default=str)}`",
    ]
    run.report.parent.mkdir(parents=True, exist_ok=True)
    run.report.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    tyro.extras.subcommand_cli_from_dict({"render": Render, "train": Run, "step-speed": StepSpeed}).main()
