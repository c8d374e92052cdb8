"""Depth refinement benchmark: the prior against classical hole filling, on frames with ground truth.

Synthetic Kinect-noise frames (rendered room + `KinectNoiseModel`) always; the NYU labeled test split
when `--nyu-mat` (and `--nyu-splits`) are given, where the reference is NYU's colourisation-filled
`depths` (itself a fill, so hole scores there measure agreement with it, not truth). Without
`--prior`, a prior is trained here on synthetic frames for at most `--train-minutes`.

    python benchmarks/bench_prior_refine.py [--prior DIR] [--nyu-mat nyu_depth_v2_labeled.mat --nyu-splits splits.mat]
"""

from __future__ import annotations

import platform
import shlex
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import tyro

from data_converters.synthetic.kinect_noise import KinectNoiseModel
from diffnerf_ns.metrics import depth_metrics
from diffnerf_ns.prior.baselines import joint_bilateral_fill, nearest_fill, opencv_inpaint
from diffnerf_ns.prior.model import RGBDPrior
from diffnerf_ns.prior.refine import RefineConfig, refine_depth
from diffnerf_ns.prior.sources import TrainingFrame, frames_from_labeled, synthetic_room_frames
from diffnerf_ns.prior.train import TrainConfig, train_prior


@dataclass
class Bench:
    prior: Path | None = None
    """A trained prior folder; without it one is trained on synthetic frames first."""
    train: TrainConfig = field(
        default_factory=lambda: TrainConfig(
            out=Path("outputs/bench_prior"),
            patch_size=24,
            block_out_channels=(16, 32),
            layers_per_block=1,
            attention=False,
            steps=3000,
            batch_size=32,
            lr=2e-3,
            warmup_steps=100,
            ema_decay=0.995,
            checkpoint_every=1000,
            max_minutes=8.0,
            resume=False,  # a benchmark run trains from scratch, so its time and step counts are its own
        )
    )
    sampling: RefineConfig = field(default_factory=lambda: RefineConfig(overlap=8))
    frames: int = 3
    """Held-out synthetic 640x480 frames to evaluate on."""
    nyu_mat: Path | None = None
    nyu_splits: Path | None = None
    nyu_frames: int = 20
    """First N frames of the NYU test split (refinement is slow on CPU)."""
    out: Path = Path("benchmarks/results/prior_refine.md")
    threads: int = 1
    """torch CPU threads; 1 avoids OpenMP spin-wait stalls on a shared 2-core machine (was 60x slower)."""


def _evaluate(prior: RGBDPrior, frames: list[TrainingFrame], sampling: RefineConfig) -> tuple[dict, float]:
    """Mean metrics per method over frames (raw on its valid pixels), and refinement seconds per frame."""
    scores: dict[str, list[dict[str, float]]] = {}
    seconds = []
    for frame in frames:
        raw, gt = frame.raw, torch.from_numpy(frame.depth)
        start = time.perf_counter()
        refined, _ = refine_depth(prior, frame.rgb, raw, sampling)
        seconds.append(time.perf_counter() - start)
        holes = torch.from_numpy(raw <= 0)
        methods = {
            "nearest fill": nearest_fill(raw),
            "OpenCV inpaint (Telea)": opencv_inpaint(raw),
            "joint bilateral fill": joint_bilateral_fill(raw, frame.rgb),
            "prior refinement": refined,
        }
        scores.setdefault("raw (valid pixels only)", []).append(
            depth_metrics(torch.from_numpy(raw), gt, ~holes) | {"hole_rmse": float("nan")}
        )
        for name, depth in methods.items():
            d = torch.from_numpy(np.ascontiguousarray(depth))
            scores.setdefault(name, []).append(
                depth_metrics(d, gt) | {"hole_rmse": depth_metrics(d, gt, holes)["depth_rmse"]}
            )
    means = {name: {k: float(np.mean([s[k] for s in rows])) for k in rows[0]} for name, rows in scores.items()}
    return means, float(np.mean(seconds))


def _table(means: dict) -> str:
    lines = ["| method | RMSE (m) | AbsRel | δ<1.25 | RMSE in holes (m) |", "|---|---|---|---|---|"]
    for name, m in means.items():
        hole = "–" if np.isnan(m["hole_rmse"]) else f"{m['hole_rmse']:.3f}"
        lines.append(
            f"| {name} | {m['depth_rmse']:.3f} | {m['depth_abs_rel']:.4f} | {m['depth_delta1']:.4f} | {hole} |"
        )
    return "\n".join(lines)


def main(bench: Bench) -> None:
    torch.manual_seed(0)
    torch.set_num_threads(bench.threads)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    train_note = f"given folder `{bench.prior}`"
    if bench.prior is None:
        start = time.perf_counter()
        losses = train_prior(synthetic_room_frames(16, 640, 480, seed=1), bench.train)
        minutes = (time.perf_counter() - start) / 60
        train_note = (
            f"trained here on 16 synthetic 640x480 room frames with fresh Kinect corruption per patch: "
            f"{len(losses)} steps of batch {bench.train.batch_size}, {bench.train.patch_size} px patches, "
            f"UNet {bench.train.block_out_channels}, {minutes:.1f} min; loss {np.mean(losses[:50]):.3f} -> "
            f"{np.mean(losses[-50:]):.3f}"
        )
        bench.prior = bench.train.out
    prior = RGBDPrior.from_pretrained(bench.prior, device=device)
    held_out = synthetic_room_frames(bench.frames, 640, 480, seed=7, noise_model=KinectNoiseModel())
    holes = np.mean([(f.raw <= 0).mean() for f in held_out])
    synthetic, seconds = _evaluate(prior, held_out, bench.sampling)
    sections = [
        f"## Synthetic Kinect-noise frames ({bench.frames} held-out 640x480 renders, {100 * holes:.1f}% holes)",
        _table(synthetic),
        f"Refinement time per 640x480 frame: {seconds:.1f} s on {device}.",
    ]
    if bench.nyu_mat is not None:
        from data_converters.nyu.labeled import read_splits

        test = read_splits(bench.nyu_splits)["test"] if bench.nyu_splits else np.arange(1449)
        nyu = list(frames_from_labeled(bench.nyu_mat, test[: bench.nyu_frames].tolist()))
        nyu_means, nyu_seconds = _evaluate(prior, nyu, bench.sampling)
        sections += [
            f"## NYU labeled test split (first {len(nyu)} frames, border cropped; reference = filled `depths`)",
            _table(nyu_means),
            f"Refinement time per frame: {nyu_seconds:.1f} s on {device}.",
        ]
    else:
        sections.append("NYU labeled test split: not run (pass `--nyu-mat` and `--nyu-splits`).")
    cpu = platform.processor() or platform.machine()
    gpu = torch.cuda.get_device_name() if device == "cuda" else "none"
    report = "\n\n".join(
        [
            "# Prior depth refinement benchmark",
            f"Command: `{shlex.join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]])}`",
            f"Machine: {platform.platform()}, {cpu}, {torch.get_num_threads()} torch threads, GPU: {gpu}; "
            f"torch {torch.__version__}.",
            f"Prior: {train_note}.",
            f"Sampling: {bench.sampling}.",
            "Metrics over all pixels with ground truth (raw: only its valid pixels); "
            "'RMSE in holes' over the pixels the sensor missed.",
            *sections,
        ]
    )
    bench.out.parent.mkdir(parents=True, exist_ok=True)
    bench.out.write_text(report + "\n")
    print(report)


if __name__ == "__main__":
    main(tyro.cli(Bench))
