"""Throughput of NYU raw conversion on a synthetic 300-frame raw scene (640x480, NYU format) on this machine.

Reports frames/s for read + sync + register, for pose estimation, and for the whole CLI conversion
(which also caches registered frames and writes the scene), plus the accuracy reached. Writes
`benchmarks/results/nyu_conversion.md`.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tyro

from data_converters.nyu.convert import convert_raw
from data_converters.nyu.raw_reader import list_raw_scene, read_pgm, read_ppm
from data_converters.nyu.registration import DepthRegistration
from data_converters.nyu.sync import synchronise
from data_converters.poses import PoseConfig, estimate_trajectory
from data_converters.synthetic.nyu_raw_writer import NYURawSpec, load_ground_truth, write_nyu_raw_scene
from diffnerf_ns.metrics import absolute_trajectory_error


@dataclass
class Bench:
    """Generate a synthetic NYU raw scene and time its conversion."""

    num_frames: int = 300
    workdir: Path | None = None
    """Where to write the scene (default: a temporary folder, removed afterwards)."""
    report: Path = Path("benchmarks/results/nyu_conversion.md")


def run(bench: Bench, root: Path) -> str:
    t = time.perf_counter()
    gt = write_nyu_raw_scene(root / "bench_0001", NYURawSpec(num_frames=bench.num_frames, stalls=(100, 200)))
    generate_s = time.perf_counter() - t

    t = time.perf_counter()
    sync = synchronise(list_raw_scene(gt.scene_dir))
    reg = DepthRegistration()
    frames = [reg.register(read_ppm(f.rgb.path), read_pgm(f.depth.path)) for f in sync.frames]
    register_s = time.perf_counter() - t
    frames = [f for f in frames if (f.depth > 0).any()]

    config = PoseConfig()
    width, height = reg.size
    t = time.perf_counter()
    traj = estimate_trajectory(
        lambda i: (frames[i].rgb, frames[i].depth), len(frames), reg.K, width, height, config=config
    )
    poses_s = time.perf_counter() - t
    _, gt_c2w = load_ground_truth(gt.gt_dir)
    ate_all = absolute_trajectory_error(np.stack([traj.c2w[i] for i in sorted(traj.c2w)]), gt_c2w[sorted(traj.c2w)])

    t = time.perf_counter()
    out = convert_raw(gt.scene_dir, root / "bench_0001_nerfstudio", progress=False)
    convert_s = time.perf_counter() - t
    meta = json.loads((out / "metadata.json").read_text())

    n_sync, n_posed = len(sync.frames), len(frames)
    command = " ".join(["python", *sys.argv])
    machine = f"{platform.platform()}, {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs"
    rows = [
        ("read + sync + register (in memory)", n_sync, register_s),
        (f"pose estimation (odometry at {config.scale}x, keyframes, loops, pose graph)", n_posed, poses_s),
        (
            f"full `convert_raw` (register + cache + poses + write {meta['frames_written']} keyframes)",
            n_sync,
            convert_s,
        ),
    ]
    table = "\n".join(f"| {name} | {n} | {s:.1f} | {n / s:.1f} |" for name, n, s in rows)
    return f"""# NYU raw conversion throughput

Command: `{command}`

Machine: {machine}, Python {platform.python_version()}

Synthetic NYU raw scene: {bench.num_frames} poses at 640x480 (NYU intrinsics, distortion, extrinsics, raw
disparity, Kinect noise), {meta["sync"]["depth_frames"]} depth frames of which {meta["sync"]["dropped_rgb_too_far"]}
have no RGB partner (planted) and {meta["dropped_counts"]["no_valid_depth"]} has all-invalid depth (planted).
Generating it took {generate_s:.0f} s.

| stage | frames | seconds | frames/s |
|---|---|---|---|
{table}

Accuracy: ATE {ate_all * 100:.2f} cm over all {len(traj.c2w)} posed frames; {len(traj.keyframes)} keyframes,
{len(traj.loop_closures)} loop closures, odometry fitness mean {traj.summary()["fitness_mean"]:.2f},
{len(traj.failed)} odometry failures.
"""


def main(bench: Bench) -> None:
    if bench.workdir is not None:
        text = run(bench, bench.workdir)
    else:
        with tempfile.TemporaryDirectory() as tmp:
            text = run(bench, Path(tmp))
    bench.report.parent.mkdir(parents=True, exist_ok=True)
    bench.report.write_text(text)
    print(text)


if __name__ == "__main__":
    main(tyro.cli(Bench))
