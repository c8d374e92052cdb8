"""Depth-to-colour misalignment measured from edges (`data_converters.depth_alignment`) on real captures.

SUN3D fragments 1 and 2 (50 frames each, all used) as shipped and with depth moved by planted shifts; ICL-NUIM
(rendered: registered by construction, so its true offset is 0); single real frames of NYU (labeled set,
registered by the NYU toolbox), TUM and SUN RGB-D. A planted shift adds to whatever offset a capture already has,
so the table gives the estimate both as is and minus the capture's own (shipped) estimate. For SUN3D it also
relates each frame's own offset to the camera's rotation between its neighbours (from the given poses): if colour
and depth are taken at different instants the offset follows the image motion. Last, the share of depth pixels
the depth loss's edge band (`--pipeline.model.depth-edge-band`) would down-weight. Writes
`benchmarks/results/depth_alignment.md`; no NeRF is trained.
"""

from __future__ import annotations

import os
import platform
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tyro
from PIL import Image
from scipy.spatial.transform import Rotation

from data_converters.depth_alignment import DepthOffset, distance_to_discontinuity, estimate_depth_offset, shift_depth
from data_converters.layouts.redwood import read_redwood
from data_converters.layouts.threedmatch import read_threedmatch

FIXTURES = Path(__file__).resolve().parents[2] / "shared" / "fixtures"
PLANTS = ((0, 0), (3, 0), (0, 3), (-3, 2), (3, -2))
MOTION_HEADER = (
    "| capture | frames | per-frame spread dx, dy (px, robust std) | motion, 90th percentile x, y (px/frame) | "
    "corr(dx, motion x) | slope | corr(dy, motion y) | slope |\n|---|---|---|---|---|---|---|---|"
)


@dataclass
class Bench:
    """Measure depth-to-colour offsets on the real fixtures."""

    fixtures: Path = FIXTURES
    report: Path = Path("benchmarks/results/depth_alignment.md")


Frames = list[tuple[np.ndarray, np.ndarray]]


def _sun3d(fixtures: Path) -> dict[str, tuple[Frames, list[np.ndarray], np.ndarray]]:
    capture = read_threedmatch(fixtures / "sun3d_study_100")
    out = {}
    for group in capture.groups:
        frames = [f for f in capture.frames if f.group == group]
        pairs = [(capture.load_rgb(f), capture.load_depth_m(f)) for f in frames]
        out[f"SUN3D {group.split('-rgbd')[0]}"] = (pairs, [f.c2w for f in frames], capture.K)
    return out


def _single_frames(fixtures: Path) -> dict[str, Frames]:
    def png(path: Path) -> np.ndarray:
        return np.asarray(Image.open(path))

    nyu = fixtures / "nyu_labeled_frame"
    other = fixtures / "other_sensors"
    sun_raw = png(other / "SUN_depth.png").astype(np.uint32)
    # SUN RGB-D stores millimetres with the 16 bits rotated by 3 (its toolbox's read3dPoints undoes it so).
    sun_mm = ((sun_raw >> 3) | (sun_raw << 13)) & 0xFFFF
    icl = read_redwood(fixtures / "icl_nuim_5")
    return {
        "ICL-NUIM (rendered, 5 frames)": [(icl.load_rgb(f), icl.load_depth_m(f)) for f in icl.frames],
        "NYU labeled frame (toolbox-registered)": [
            (png(nyu / "images.png"), png(nyu / "rawdepth.png").astype(np.float32) / 1000)
        ],
        "TUM frame (other_sensors)": [
            (png(other / "TUM_color.png")[..., :3], png(other / "TUM_depth.png").astype(np.float32) / 5000)
        ],
        "SUN RGB-D frame (other_sensors)": [(png(other / "SUN_color.jpg"), sun_mm.astype(np.float32) / 1000)],
    }


def _row(name: str, plant: tuple[int, int], est: DepthOffset, shipped: DepthOffset, seconds: float) -> str:
    def ok(flag: bool) -> str:
        return "yes" if flag else "no"

    u = [f"{v:.2f}" if np.isfinite(v) else "-" for v in est.uncertainty]
    rel = (est.dx - shipped.dx, est.dy - shipped.dy)
    return (
        f"| {name} | {plant[0]:+d}, {plant[1]:+d} | {est.dx:+.2f}, {est.dy:+.2f} | "
        f"{abs(est.dx - plant[0]):.2f}, {abs(est.dy - plant[1]):.2f} | {rel[0]:+.2f}, {rel[1]:+.2f} | "
        f"{u[0]}, {u[1]} | {ok(est.reliable[0])}, {ok(est.reliable[1])} | {est.bleed[0]:.2f}, {est.bleed[1]:.2f} | "
        f"{est.correction()[0]:+d}, {est.correction()[1]:+d} | {seconds:.1f} |"
    )


def _motion_row(name: str, est: DepthOffset, c2w: list[np.ndarray], K: np.ndarray) -> str:
    """Per-frame offset against the rotational image motion over one frame (central difference of the poses).

    A camera turning by w (camera axes) moves the image by (-f w_y, f w_x) pixels; depth taken dt frames before
    colour lies -dt times that motion from it, so the slope of offset on motion is -dt."""
    rows = []
    for i in range(1, len(c2w) - 1):
        w = Rotation.from_matrix(c2w[i - 1][:3, :3].T @ c2w[i + 1][:3, :3]).as_rotvec() / 2
        ox, oy = est.per_frame[i]
        rows.append((ox, oy, -K[0, 0] * w[1], K[1, 1] * w[0]))
    r = np.asarray(rows)
    r = r[np.isfinite(r).all(axis=1)]
    cells = []
    for off, flow in ((0, 2), (1, 3)):
        corr = np.corrcoef(r[:, off], r[:, flow])[0, 1]
        slope = np.polyfit(r[:, flow], r[:, off], 1)[0]
        cells += [f"{corr:+.2f}", f"{slope:+.2f}"]
    spread = 1.4826 * np.median(np.abs(r[:, :2] - np.median(r[:, :2], axis=0)), axis=0)
    motion = np.percentile(np.abs(r[:, 2:]), 90, axis=0)
    return (
        f"| {name} | {len(r)} | {spread[0]:.2f}, {spread[1]:.2f} | {motion[0]:.1f}, {motion[1]:.1f} | "
        + " | ".join(cells)
        + " |"
    )


def main(bench: Bench) -> None:
    start = time.perf_counter()
    header = (
        "| capture | planted (px) | estimate dx, dy | \\|estimate - planted\\| | estimate - shipped estimate | "
        "standard error | reliable x, y | bleed x, y | correction | s |\n|---|---|---|---|---|---|---|---|---|---|"
    )
    rows, motion_rows, band_rows = [], [], []
    sun3d = _sun3d(bench.fixtures)
    everything = [pair for frames, _, _ in sun3d.values() for pair in frames]
    picks = np.unique(np.linspace(0, len(everything) - 1, 40).round().astype(int))  # as convert_capture samples
    t = time.perf_counter()
    whole = estimate_depth_offset(everything[i] for i in picks)
    rows.append(_row("SUN3D, both fragments (conversion's 40 frames)", (0, 0), whole, whole, time.perf_counter() - t))
    for name, (frames, c2w, K) in sun3d.items():
        shipped = None
        for plant in PLANTS:
            t = time.perf_counter()
            est = estimate_depth_offset((rgb, shift_depth(depth, *plant)) for rgb, depth in frames)
            shipped = shipped or est
            rows.append(_row(name, plant, est, shipped, time.perf_counter() - t))
            print(rows[-1], flush=True)
        motion_rows.append(_motion_row(name, shipped, c2w, K))
        valid = sum(int((d > 0).sum()) for _, d in frames)
        dist = [np.round(distance_to_discontinuity(d, cap=32)) for _, d in frames]
        shares = [
            sum(int(((x < band) & (d > 0)).sum()) for x, (_, d) in zip(dist, frames, strict=True)) / valid
            for band in (1, 2, 3, 4)
        ]
        band_rows.append(f"| {name} | " + " | ".join(f"{100 * s:.1f}%" for s in shares) + " |")
    for name, frames in _single_frames(bench.fixtures).items():
        shipped = None
        for plant in ((0, 0), (3, -2)):
            t = time.perf_counter()
            est = estimate_depth_offset((rgb, shift_depth(depth, *plant)) for rgb, depth in frames)
            shipped = shipped or est
            rows.append(_row(name, plant, est, shipped, time.perf_counter() - t))
            print(rows[-1], flush=True)
    seconds = time.perf_counter() - start
    machine = f"{platform.platform()}, {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs"
    text = f"""# Depth-to-colour misalignment, measured from edges

Command: `python benchmarks/bench_depth_alignment.py`

Machine: {machine}, Python {platform.python_version()}; {seconds:.0f} s in all (no NeRF is trained).

`data_converters.depth_alignment.estimate_depth_offset`: depth jumps (> 3% in log depth between two valid
neighbours) scored against the blurred colour gradient of the same orientation, for every shift within +-8 px;
each axis is the mean of its two edge classes (nearer side left/right, above/below), so structured light's
fattening of the nearer surface ("bleed") cancels and is reported on its own. An offset (dx, dy) says the depth's
content lies dx px right and dy px down of the colour's; the correction `shift_depth(depth, -round(dx),
-round(dy))` is applied per axis when that axis is reliable (both edge classes present, peaks inside the window,
contrast >= 0.2, standard error over the frames <= 0.3 px) and at least 0.5 px off. Planted shifts move the
shipped depth by whole pixels (nearest neighbour), so an estimate is the planted shift plus the capture's own
offset; "estimate - shipped estimate" isolates the planted part. Single frames are never "reliable" (3 frames are
required) but their estimates are shown.

## Estimates

{header}
{chr(10).join(rows)}

## Reading (at the time of writing)

- Planted shifts come back exactly on top of each capture's own offset ("estimate - shipped estimate" is the
  plant to 0.02 px), so the sign and scale are right. Against the plant alone, SUN3D fragment 2 is within 0.11 px in
  x and 1.22 px in y: the shipped depth itself measures about 1.2 px low on both fragments (and on TUM's frame),
  which a planted shift cannot remove. Rendered ICL-NUIM, registered by construction, measures 0.4 / 0.2 px;
  synthetic rooms in the tests measure 0.001 px.
- Every real structured-light capture shows 0.8-1.6 px of bleed (the nearer surface fattened): no shift removes
  it, the depth loss's edge band covers it.
- SUN3D fragment 1's x offset swings by +-3.7 px (robust std) from frame to frame, so its x is unreliable and left
  alone; its y is reliable and corrected by 1 px. In fragment 2 the per-frame offsets follow the camera's rotation
  (correlation -0.6 on both axes, slope -0.3 to -0.4: depth taken about 10-13 ms before colour), which one shift
  per capture cannot correct; fragment 1 shows no such relation.
- Single frames (NYU, TUM, SUN RGB-D) are never trusted alone (3 frames are required); their estimates are shown
  to size what the registered datasets leave: 1-3 px.

## SUN3D: does each frame's offset follow the camera's motion?

Per-frame offsets (as shipped) against the rotational image motion over one frame period (pixels per frame, from
the given poses; translation is ignored). Depth taken dt frame periods before colour would lie -dt times the
motion from it: a slope of -0.3 is about 10 ms at 30 Hz. The poses are approximate and interpolated in blocks of 5
frames, which weakens any correlation.

{MOTION_HEADER}
{chr(10).join(motion_rows)}

## Share of valid depth pixels inside the depth loss's edge band

`--pipeline.model.depth-edge-band B` down-weights the depth loss on pixels less than B px from a depth jump (the
two pixels at the jump are at 0).

| capture | B = 1 | B = 2 | B = 3 | B = 4 |
|---|---|---|---|---|
{chr(10).join(band_rows)}
"""
    bench.report.parent.mkdir(parents=True, exist_ok=True)
    bench.report.write_text(text)
    print(f"wrote {bench.report} ({seconds:.0f} s)")


if __name__ == "__main__":
    main(tyro.cli(Bench))
