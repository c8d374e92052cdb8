"""What `PoseConfig.switch_margin` trades: a synthetic NYU raw development sequence (another seed and path
length than `bench_nyu_conversion.py`'s) against the ICL-NUIM fixture (rendered, exact poses).

For each margin, tracks the registered NYU frames with the default terms (hybrid preferred) and reports ATE,
the time and the term each edge kept; converts ICL-NUIM with re-estimated poses and reports ATE and the
path-length ratio. Writes `benchmarks/results/pose_term_margin.md`.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import tyro

from data_converters.convert import ConvertOptions, convert_capture
from data_converters.layouts.redwood import read_redwood
from data_converters.nerfstudio_scene import load_scene
from data_converters.nyu.raw_reader import list_raw_scene, read_pgm, read_ppm
from data_converters.nyu.registration import DepthRegistration
from data_converters.nyu.sync import synchronise
from data_converters.poses import PoseConfig, estimate_trajectory
from data_converters.synthetic.nyu_raw_writer import NYURawSpec, load_ground_truth, write_nyu_raw_scene
from diffnerf_ns.metrics import absolute_trajectory_error, path_length_ratio

FIXTURES = Path(__file__).resolve().parents[1].parent / "shared" / "fixtures"


@dataclass
class Bench:
    """Sweep the term-switch margin on a development sequence and on ICL-NUIM."""

    num_frames: int = 150
    seed: int = 1
    margins: tuple[float, ...] = (0.0, 0.02, 0.05, 0.1, 0.2, 1.0)
    """Fractions of the preferred term's residual; 1.0 never switches (hybrid only)."""
    fixtures: Path = FIXTURES
    report: Path = Path("benchmarks/results/pose_term_margin.md")


def icl_poses(fixtures: Path, margin: float) -> tuple[float, float]:
    """ATE (m) and path-length ratio of ICL-NUIM's 5 frames converted with re-estimated poses."""
    icl = read_redwood(fixtures / "icl_nuim_5")
    options = ConvertOptions(poses="estimate")
    options = replace(options, odometry=replace(options.odometry, switch_margin=margin))
    with tempfile.TemporaryDirectory() as tmp:
        scene = convert_capture(icl, Path(tmp) / "icl", options)
        sources = [f["source"] for f in json.loads((scene / "metadata.json").read_text())["frames"]]
        c2w = dict(zip(sources, load_scene(scene).c2w, strict=True))
    mine = np.stack([c2w[f.name] for f in icl.frames])
    gt = np.stack([f.c2w for f in icl.frames])
    return absolute_trajectory_error(mine, gt), path_length_ratio(mine, gt)


def main(bench: Bench) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        spec = NYURawSpec(num_frames=bench.num_frames, seed=bench.seed, stalls=(50, 100), invalid_depth_frames=())
        gt = write_nyu_raw_scene(Path(tmp) / "dev_0001", spec)
        reg = DepthRegistration()
        frames = [
            reg.register(read_ppm(f.rgb.path), read_pgm(f.depth.path))
            for f in synchronise(list_raw_scene(gt.scene_dir)).frames
        ]
        _, gt_c2w = load_ground_truth(gt.gt_dir)
    width, height = reg.size
    rows = []
    for margin in bench.margins:
        config = replace(PoseConfig(), switch_margin=margin)
        t = time.perf_counter()
        traj = estimate_trajectory(
            lambda i: (frames[i].rgb, frames[i].depth), len(frames), reg.K, width, height, config=config
        )
        seconds = time.perf_counter() - t
        ids = sorted(traj.c2w)
        ate = absolute_trajectory_error(np.stack([traj.c2w[i] for i in ids]), gt_c2w[ids])
        kept = ", ".join(f"{k} {v}" for k, v in traj.summary()["tracking_terms"].items())
        icl_ate, icl_ratio = icl_poses(bench.fixtures, margin)
        icl = f"{icl_ate * 100:.2f} | {icl_ratio:.3f}"
        rows.append(f"| {margin:g} | {ate * 100:.3f} | {seconds:.0f} | {kept} | {icl} |")
        print(rows[-1], flush=True)
    machine = f"{platform.platform()}, {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs"
    text = f"""# Odometry term-switch margin: a development sequence and ICL-NUIM

Command: `{" ".join(["python", *sys.argv])}`

Machine: {machine}, Python {platform.python_version()}

Synthetic NYU raw scene, seed {bench.seed}, {bench.num_frames} poses at 640x480 (not the scene of
`nyu_conversion.md`), registered and tracked with `PoseConfig()` at each `switch_margin`: another term's
estimate replaces the hybrid term's only when its residual is lower by more than that fraction. ICL-NUIM:
the `icl_nuim_5` fixture converted with `ConvertOptions(poses="estimate")` at the same margin.

| margin | NYU ATE cm | NYU pose s | NYU terms kept (edges) | ICL ATE cm | ICL path ratio |
|---|---|---|---|---|---|
{chr(10).join(rows)}
"""
    bench.report.parent.mkdir(parents=True, exist_ok=True)
    bench.report.write_text(text)
    print(text)


if __name__ == "__main__":
    main(tyro.cli(Bench))
