"""Depth refinement benchmark: the prior against every classical fill, on synthetic and real frames.

- Synthetic: held-out 640x480 renders with exact depth, corrupted by `KinectNoiseModel`: the demo room on an
  unseen trajectory, or (`--synthetic corpus`) the corpus generator's held-out rooms with their Kinect raw;
  scored against the exact depth, overall and in the sensor's holes, plus the calibration of the prior's 90%
  interval.
- Real: the NYU labeled frame and SUN3D fragment-2 frames (via the 3DMatch reader). Their truth is the
  sensor itself: valid pixels are hidden under real hole shapes taken from *other* real frames (vertically
  flipped, so Kinect shadows stay on their side) and every method is scored at the hidden pixels.
- Time per frame for every method on this machine, and a picture of one real frame: RGB, raw, each fill
  and the refined depth side by side.

Without `--prior`, a small prior is trained here first for at most `--train.max-minutes`.

    python benchmarks/bench_prior_refine.py [--prior DIR] [--synthetic corpus] [--fills nearest telea]
"""

from __future__ import annotations

import dataclasses
import os
import platform
import shlex
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import matplotlib
import numpy as np
import torch
import tyro
from PIL import Image

from benchmarks.figures import save_figure
from data_converters.synthetic.corpus import corpus_frames
from data_converters.synthetic.kinect_noise import KinectNoiseModel
from diffnerf_ns.data_split import VALIDATION_FRAMES, sun3d_group
from diffnerf_ns.prior.baselines import HOLE_FILLS, joint_bilateral_fill
from diffnerf_ns.prior.model import RGBDPrior
from diffnerf_ns.prior.presets import PRIOR_PRESETS
from diffnerf_ns.prior.refine import RefineConfig, Refinement, refine_depth
from diffnerf_ns.prior.sources import synthetic_room_frames
from diffnerf_ns.prior.train import TrainConfig, train_prior

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

Fill = Literal["nearest", "telea", "bilateral", "colorization"]
FILLS: dict[Fill, tuple[str, Callable[[np.ndarray, np.ndarray], np.ndarray]]] = {
    "nearest": ("nearest fill", HOLE_FILLS["nearest"]),
    "telea": ("OpenCV Telea", HOLE_FILLS["telea"]),
    "bilateral": ("joint bilateral", joint_bilateral_fill),
    "colorization": ("colorization (NYU toolbox)", HOLE_FILLS["colorization"]),
}
PRIOR = "prior refinement"


@dataclass
class Bench:
    prior: Path | None = None
    """A trained prior folder; without it one is trained on synthetic frames first."""
    train: TrainConfig = field(
        default_factory=lambda: dataclasses.replace(
            PRIOR_PRESETS["cpu-bench"],
            out=Path("outputs/bench_prior"),
            max_minutes=12.0,
            resume=False,  # a benchmark run trains from scratch, so its time and step counts are its own
        )
    )
    sampling: RefineConfig = field(default_factory=lambda: RefineConfig(steps=10, overlap=8))
    synthetic: Literal["demo-room", "corpus"] = "demo-room"
    """Held-out synthetic frames: the demo room on trajectory seed 7 (its own prior trains on seed 1), or one
    view of each of the corpus's held-out rooms (rooms no corpus-trained prior has seen)."""
    synthetic_frames: int = 3
    """Held-out synthetic 640x480 frames."""
    fills: tuple[Fill, ...] = ("nearest", "telea", "bilateral", "colorization")
    """Classical fills to run beside the prior (colorization takes ~15 s per frame on one CPU core)."""
    sun3d_frames: int = 3
    """Fragment-2 frames, spread evenly over its 50."""
    fixtures: Path = Path(__file__).resolve().parents[1].parent / "shared" / "fixtures"
    out: Path = Path("benchmarks/results/prior_refine.md")
    threads: int = 1
    """torch CPU threads; 1 avoids OpenMP spin-wait stalls on a shared 2-core machine."""


@dataclass
class Case:
    """One frame to fill: input raw (0 = missing), what to score where, and the truth there."""

    name: str
    rgb: np.ndarray
    raw: np.ndarray
    truth: np.ndarray
    scored: dict[str, np.ndarray]
    """Region name -> boolean mask of pixels scored against `truth`."""


def _rmse(depth: np.ndarray, truth: np.ndarray, where: np.ndarray) -> float:
    return float(np.sqrt(((depth - truth)[where] ** 2).mean()))


def _read_mm(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path)).astype(np.float32) / 1000.0


def _hide(raw: np.ndarray, donor_holes: np.ndarray) -> np.ndarray:
    """Valid pixels under another frame's (vertically flipped, resized) real hole mask."""
    mask = np.asarray(Image.fromarray(donor_holes[::-1].astype(np.uint8) * 255).resize(raw.shape[::-1])) > 127
    return mask & (raw > 0)


def real_cases(fixtures: Path, sun3d_frames: int) -> tuple[list[Case], str]:
    """NYU labeled frame and SUN3D fragment-2 frames with valid pixels hidden under real hole shapes."""
    nyu = fixtures / "nyu_labeled_frame"
    nyu_rgb = np.asarray(Image.open(nyu / "images.png").convert("RGB"))
    nyu_raw = _read_mm(nyu / "rawdepth.png")
    cases, note = [], ""
    try:
        from data_converters.layouts.threedmatch import read_threedmatch
    except ImportError:
        read_threedmatch, note = None, "SUN3D: not run (data_converters.layouts.threedmatch is not on this branch)."
    if read_threedmatch is not None:
        capture = read_threedmatch(fixtures / "sun3d_study_100")
        donors = [f for f in capture.frames if f.group == sun3d_group("prior")]
        scored = [f for f in capture.frames if f.group == sun3d_group("scored")]
        donor_holes = _read_mm(donors[0].depth_path) <= 0  # a hole shape from the other fragment, never a score
        for frame in [scored[i] for i in np.linspace(0, len(scored) - 1, sun3d_frames).round().astype(int)]:
            stored = np.asarray(Image.open(frame.depth_path))
            raw = np.where(np.isin(stored, capture.invalid_depth_values), 0, stored * capture.depth_scale)
            raw = raw.astype(np.float32)
            hidden = _hide(raw, donor_holes)
            rgb = np.asarray(Image.open(frame.rgb_path).convert("RGB"))
            cases.append(Case(f"SUN3D {frame.name}", rgb, np.where(hidden, 0, raw), raw, {"hidden": hidden}))
    hidden = _hide(nyu_raw, _nyu_raw_holes(fixtures))
    cases.insert(0, Case("NYU labeled frame", nyu_rgb, np.where(hidden, 0, nyu_raw), nyu_raw, {"hidden": hidden}))
    return cases, note


def _nyu_raw_holes(fixtures: Path) -> np.ndarray:
    """The real NYU raw frame's Kinect holes (raw 2047): the donor shapes for single real frames."""
    return np.fromfile(fixtures / "nyu_raw_frame" / "NYU_depth.pgm", "<u2", offset=17).reshape(480, 640) == 2047


def validation_real_cases(fixtures: Path) -> list[Case]:
    """The real frames of `data_split.VALIDATION_FRAMES` (no prior trains on them, nothing scores them) with
    valid pixels hidden under the NYU raw frame's holes: where settings and calibrations may be fitted."""
    folder = {name: fixtures / sub for name, sub in VALIDATION_FRAMES.items()}
    tum_raw = np.asarray(Image.open(folder["TUM"] / "TUM_depth.png")).astype(np.float32) / 5000.0
    sun_stored = np.asarray(Image.open(folder["SUN RGB-D"] / "SUN_depth.png")).astype(np.uint32)
    # SUN RGB-D stores millimetres with the 16 bits rotated by 3 (its toolbox's read3dPoints undoes it so).
    sun_raw = (((sun_stored >> 3) | (sun_stored << 13)) & 0xFFFF).astype(np.float32) / 1000.0
    frames = {
        "TUM frame": (np.asarray(Image.open(folder["TUM"] / "TUM_color.png").convert("RGB")), tum_raw),
        "SUN RGB-D frame": (np.asarray(Image.open(folder["SUN RGB-D"] / "SUN_color.jpg").convert("RGB")), sun_raw),
    }
    donor = _nyu_raw_holes(fixtures)
    cases = []
    for name, (rgb, raw) in frames.items():
        hidden = _hide(raw, donor)
        cases.append(Case(name, rgb, np.where(hidden, 0, raw), raw, {"hidden": hidden}))
    return cases


def evaluate(
    prior: RGBDPrior, cases: list[Case], sampling: RefineConfig, fills: tuple[Fill, ...]
) -> tuple[dict, dict, dict]:
    """Per method: mean RMSE per region and mean seconds per frame; prior interval coverage; fills of case 0."""
    rmse: dict[str, dict[str, list[float]]] = {}
    seconds: dict[str, list[float]] = {}
    coverage: dict[str, list[np.ndarray]] = {}
    first: dict[str, np.ndarray] = {}
    for case in cases:
        outputs: dict[str, np.ndarray] = {}
        for name, fill in (FILLS[key] for key in fills):
            start = time.perf_counter()
            outputs[name] = fill(case.raw, case.rgb)
            seconds.setdefault(name, []).append(time.perf_counter() - start)
        start = time.perf_counter()
        result: Refinement = refine_depth(prior, case.rgb, case.raw, sampling)
        seconds.setdefault(PRIOR, []).append(time.perf_counter() - start)
        outputs[PRIOR] = result.depth
        inside = (case.truth >= result.lower) & (case.truth <= result.upper)
        for region, where in case.scored.items():
            coverage.setdefault(region, []).append(inside[where])
            for name, depth in outputs.items():
                rmse.setdefault(name, {}).setdefault(region, []).append(_rmse(depth, case.truth, where))
        if not first:
            first = outputs
        print(case.name, {name: {r: round(v[-1], 4) for r, v in regions.items()} for name, regions in rmse.items()})
    table = {name: {r: float(np.mean(v)) for r, v in regions.items()} for name, regions in rmse.items()}
    table = {name: scores | {"seconds": float(np.mean(seconds[name]))} for name, scores in table.items()}
    return table, {r: float(np.concatenate(v).mean()) for r, v in coverage.items()}, first


def _table(scores: dict, regions: list[str]) -> str:
    best = {r: min((s[r] for n, s in scores.items() if n != PRIOR), default=-np.inf) for r in regions}
    head = "| method | " + " | ".join(f"RMSE {r} (m)" for r in regions) + " | s / frame |"
    lines = [head, "|---|" + "---|" * (len(regions) + 1)]
    for name, s in scores.items():
        cells = [f"**{s[r]:.3f}**" if s[r] <= best[r] else f"{s[r]:.3f}" for r in regions]
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {s['seconds']:.1f} |")
    return "\n".join(lines)


def picture(case: Case, fills: dict[str, np.ndarray], path: Path) -> None:
    """RGB, raw (with hidden pixels removed), each fill and the refined depth side by side."""
    panels = [("RGB", case.rgb), ("raw input", case.raw), *fills.items()]
    vmax = float(np.percentile(case.truth[case.truth > 0], 99))
    fig, axes = plt.subplots(1, len(panels), figsize=(3.2 * len(panels), 3.0))
    for ax, (title, image) in zip(axes, panels, strict=True):
        if image.ndim == 3:
            ax.imshow(image)
        else:
            cmap = plt.get_cmap("turbo").with_extremes(bad="black")
            ax.imshow(np.ma.masked_equal(image, 0), cmap=cmap, vmin=0.0, vmax=vmax)
        ax.set_title(title, fontsize=9)
        ax.axis("off")
    fig.suptitle(f"{case.name}: depth 0-{vmax:.1f} m, black = missing", fontsize=10)
    fig.tight_layout()
    save_figure(fig, path, dpi=110)
    plt.close(fig)


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
            f"trained here on 16 synthetic 640x480 room frames (trajectory seed 1), a fresh whole-frame Kinect "
            f"corruption every {bench.train.crops_per_frame} patches: {len(losses)} steps of batch "
            f"{bench.train.batch_size}, {bench.train.patch_size} px patches, "
            f"UNet {bench.train.block_out_channels}, hole weight {bench.train.hole_weight}, {minutes:.1f} min; "
            f"loss {np.mean(losses[:50]):.3f} -> {np.mean(losses[-50:]):.3f}"
        )
        bench.prior = bench.train.out
    prior = RGBDPrior.from_pretrained(bench.prior, device=device)
    if bench.synthetic == "corpus":
        held_out = corpus_frames(bench.synthetic_frames, 1, 640, 480, seed=0, split="heldout")
        source = "the corpus generator's held-out rooms (one view each, registered-depth Kinect model)"
    else:
        held_out = synthetic_room_frames(bench.synthetic_frames, 640, 480, seed=7, noise_model=KinectNoiseModel())
        source = "the demo room on an unseen trajectory"
    synthetic = [
        Case(f.name, f.rgb, f.raw, f.depth, {"overall": np.ones(f.depth.shape, bool), "holes": f.raw <= 0})
        for f in held_out
    ]
    holes = np.mean([c.scored["holes"].mean() for c in synthetic])
    if device == "cuda":  # untimed warm-up: kernel selection and the allocator would land on the first frame
        refine_depth(prior, synthetic[0].rgb, synthetic[0].raw, bench.sampling)
    syn_scores, syn_coverage, _ = evaluate(prior, synthetic, bench.sampling, bench.fills)
    sections = [
        f"## Synthetic Kinect-noise frames ({len(synthetic)} held-out 640x480 renders, {100 * holes:.1f}% holes)",
        f"Frames: {source}.",
        _table(syn_scores, ["overall", "holes"]),
        f"Prior's stated 90% interval holds the true depth at {100 * syn_coverage['holes']:.1f}% of hole pixels "
        f"and {100 * syn_coverage['overall']:.1f}% of all pixels.",
    ]
    if bench.fixtures.is_dir():
        cases, note = real_cases(bench.fixtures, bench.sun3d_frames)
        real_scores, real_coverage, first = evaluate(prior, cases, bench.sampling, bench.fills)
        hidden = np.mean([c.scored["hidden"].mean() for c in cases])
        sections += [
            f"## Real frames, valid pixels hidden under real hole shapes ({len(cases)} frames: "
            + ", ".join(c.name for c in cases)
            + f"; {100 * hidden:.1f}% of pixels hidden)",
            _table(real_scores, ["hidden"]),
            f"Prior's stated 90% interval holds the hidden sensor depth at {100 * real_coverage['hidden']:.1f}% "
            "of hidden pixels (the sensor's own noise is part of this truth).",
            note,
            f"![refinement on {cases[0].name}]({bench.out.stem}_real.png)",
        ]
        picture(cases[0], first, bench.out.with_name(f"{bench.out.stem}_real.png"))
    else:
        sections.append(f"Real frames: fixtures not found at {bench.fixtures}; not run.")
    cpu = platform.processor() or platform.machine()
    gpu = torch.cuda.get_device_name() if device == "cuda" else "none"
    report = "\n\n".join(
        [
            "# Prior depth refinement benchmark",
            f"Command: `{shlex.join(['python', Path(sys.argv[0]).as_posix(), *sys.argv[1:]])}`",
            f"Machine: {platform.platform()}, {cpu}, {torch.get_num_threads()} torch threads, GPU: {gpu}; "
            f"torch {torch.__version__}, {os.cpu_count()} CPU cores; times are wall clock per frame.",
            f"Prior: {train_note}; interval_scale {prior.config.get('interval_scale', 1.0):g}, "
            f"interval_reach_weight {prior.config.get('interval_reach_weight', 0.0):g}, "
            f"interval_far_window {prior.config.get('interval_far_window', 0)} "
            "(`benchmarks/calibrate_prior.py`; 1, 0, 0 = uncalibrated).",
            f"Sampling: {bench.sampling}.",
            "Bold: the best classical fill per column (the prior's target is to beat it).",
            *sections,
        ]
    )
    bench.out.parent.mkdir(parents=True, exist_ok=True)
    bench.out.write_text(report + "\n")
    print(report)


if __name__ == "__main__":
    main(tyro.cli(Bench))
