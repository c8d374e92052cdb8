"""Which trajectory length does the sensor depth agree with? A reference-free check of the path-length ratio.

`capture_conversion.md` finds the re-estimated SUN3D fragment-1 path 6-9% shorter than the given one. Either
the tracker under-estimates motion (as depth terms did on 7-Scenes), or the given poses, which come from the
SUN3D reconstruction and are approximate, overshoot. The sensor's depth decides: each trajectory's translations
are scaled about its first camera by s, and every scale is scored by how well each frame's depth, reprojected
into a later frame, agrees with that frame's own depth. A correct trajectory agrees best near s = 1; a
trajectory that is x too long agrees best near 1 / x.
"""

from __future__ import annotations

import os
import platform
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tyro

from benchmarks.bench_capture_conversion import FIXTURES, depth_disagreement, poses_by_source
from data_converters.capture import Capture
from data_converters.convert import ConvertOptions, convert_capture
from data_converters.layouts.threedmatch import read_threedmatch
from data_converters.trajectory_scale import best_scale, scaled
from diffnerf_ns.metrics import path_length_ratio


@dataclass
class Study:
    """Scale each fragment's given and re-estimated trajectories and score the sensor depth's agreement."""

    fixtures: Path = FIXTURES
    scales: tuple[float, ...] = tuple(np.round(np.arange(0.80, 1.201, 0.025), 3))
    gaps: tuple[int, ...] = (5, 15, 30)
    """Frame gaps of the scored pairs; pairs start every 5th frame."""
    report: Path = Path("benchmarks/results/trajectory_scale.md")


def agreement(capture: Capture, idx: list[int], c2w: np.ndarray, gap: int) -> float:
    """Mean over frame pairs `gap` apart of the median |depth disagreement| (m) under the poses `c2w`."""
    pairs = [(a, a + gap) for a in range(0, len(idx) - gap, 5)]
    return float(np.mean([depth_disagreement(capture, idx[a], idx[b], c2w[a], c2w[b]) for a, b in pairs]))


def run(study: Study, work: Path) -> str:
    sun3d = read_threedmatch(study.fixtures / "sun3d_study_100")
    start = time.perf_counter()
    scene = convert_capture(sun3d, work / "estimated", ConvertOptions(poses="estimate"), progress=False)
    found = poses_by_source(scene)
    rows = []
    for group in sun3d.groups:
        idx = [i for i, f in enumerate(sun3d.frames) if f.group == group]
        given = np.stack([sun3d.frames[i].c2w for i in idx])
        estimated = np.stack([found[sun3d.frames[i].name] for i in idx])
        ratio = path_length_ratio(estimated[::5], given[::5])
        for label, c2w in (("given", given), ("re-estimated", estimated)):
            per_gap = {g: {s: agreement(sun3d, idx, scaled(c2w, s), g) for s in study.scales} for g in study.gaps}
            curve = {s: float(np.mean([per_gap[g][s] for g in study.gaps])) for s in study.scales}
            rows.append(
                f"| {group} | {label} | {curve[1.0] * 100:.2f} | {min(curve.values()) * 100:.2f} | "
                f"{best_scale(curve):.3f} | "
                + " / ".join(f"{best_scale(per_gap[g]):.3f}" for g in study.gaps)
                + " | "
                + " ".join(f"{curve[s] * 100:.2f}" for s in study.scales[::2])
                + " |"
            )
        rows.append(f"| {group} | re-estimated / given path, every 5th frame | | | {ratio:.3f} | | |")
    minutes = (time.perf_counter() - start) / 60
    machine = f"{platform.platform()}, {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs"
    grid = ", ".join(f"{s:.2f}" for s in study.scales[::2])
    gaps = " / ".join(map(str, study.gaps))
    return f"""# Trajectory scale against the sensor depth: SUN3D fixture

Command: `{" ".join(["python -m benchmarks.study_trajectory_scale", *sys.argv[1:]])}`

Machine: {machine}, Python {platform.python_version()}; {minutes:.1f} min.

Each trajectory's camera offsets from its first camera are scaled by s (rotations kept). For every s, each
scored pair's first-frame depth is reprojected into the second frame, and the median |depth disagreement| on
pixels both measure is averaged over pairs ({gaps} frames apart, starting every 5th frame; each gap's own best s
shows how firmly the depth decides). The sensor depth is the only reference: the scale it agrees with best is
the trajectory's length error, whichever trajectory it is. Re-estimated: `ConvertOptions(poses="estimate")`,
every frame, as in `capture_conversion.md`.

| fragment | trajectory | disagreement at s = 1 (cm) | at best s (cm) | best s | best s, pairs {gaps} frames apart | \
disagreement (cm) at s = {grid} |
|---|---|---|---|---|---|---|
{chr(10).join(rows)}
"""


def main(study: Study) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        text = run(study, Path(tmp))
    study.report.parent.mkdir(parents=True, exist_ok=True)
    study.report.write_text(text)
    print(text)


if __name__ == "__main__":
    main(tyro.cli(Study))
