"""NYU Depth V2 raw scene folder into a posed nerfstudio RGB-D scene (CLI: `diffnerf-convert nyu-raw`).

Raw: list files, synchronise, read + register each kept pair (cached per frame in a work folder,
so an interrupted run resumes), estimate poses, write keyframes (or all posed frames). The metadata
says which frames were kept, which were dropped and why, the sync statistics and odometry fitness.
"""

from __future__ import annotations

import logging
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from data_converters.cache import default_output, fingerprint, invalidate, is_cached
from data_converters.nerfstudio_scene import RGBDFrame, depth_to_png_mm, to_nerfstudio_intrinsics, write_scene
from data_converters.nyu.calibration import ACCEL_TO_CAMERA
from data_converters.nyu.raw_reader import NYUFormatError, list_raw_scene, read_accel_dump, read_pgm, read_ppm
from data_converters.nyu.registration import DepthRegistration
from data_converters.nyu.sync import SyncedFrame, synchronise
from data_converters.poses import PoseConfig, estimate_trajectory

LOG = logging.getLogger(__name__)


@dataclass
class RawOptions:
    """How a raw scene is converted."""

    max_dt: float = 0.05
    """Seconds; a depth frame whose nearest RGB frame is farther away is dropped."""
    crop: bool = True
    """Crop to the area the depth camera covers (toolbox projection mask) instead of keeping 640x480."""
    stride: int = 1
    """Use every n-th synchronised frame (1 = all)."""
    keyframes_only: bool = True
    """Write only the keyframes chosen by motion (a 30 Hz sequence is highly redundant for NeRF)."""
    poses: PoseConfig = field(default_factory=PoseConfig)


def _cache_paths(work: Path, frame: SyncedFrame) -> tuple[Path, Path]:
    stem = frame.depth.path.stem
    return work / f"{stem}.rgb.png", work / f"{stem}.depth.png"


def _register_all(
    frames: list[SyncedFrame], reg: DepthRegistration, work: Path, dropped: dict[str, str], progress: bool
) -> list[SyncedFrame]:
    """Register every frame into the work folder (skipping ones already there); return the usable frames."""
    usable = []
    for f in tqdm(frames, desc="read + register", disable=not progress):
        rgb_path, depth_path = _cache_paths(work, f)
        if not (rgb_path.exists() and depth_path.exists()):
            try:
                frame = reg.register(read_ppm(f.rgb.path), read_pgm(f.depth.path))
            except NYUFormatError as err:
                dropped[f.depth.path.name] = f"unreadable: {err}"
                LOG.warning("excluding frame: %s", err)
                continue
            if not (frame.depth > 0).any():
                dropped[f.depth.path.name] = f"no valid depth: every pixel of {f.depth.path} is invalid"
                LOG.warning("excluding frame %s: all depth invalid", f.depth.path)
                continue
            for path, image in (
                (rgb_path, cv2.cvtColor(frame.rgb, cv2.COLOR_RGB2BGR)),
                (depth_path, depth_to_png_mm(frame.depth)),
            ):
                tmp = path.with_name(f"tmp.{path.name}")
                cv2.imwrite(str(tmp), image, [cv2.IMWRITE_PNG_COMPRESSION, 1])
                tmp.replace(path)
        usable.append(f)
    return usable


def _load_cached(work: Path, frame: SyncedFrame) -> tuple[np.ndarray, np.ndarray]:
    rgb_path, depth_path = _cache_paths(work, frame)
    rgb = cv2.cvtColor(cv2.imread(str(rgb_path), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    return rgb, cv2.imread(str(depth_path), cv2.IMREAD_UNCHANGED).astype(np.float32) * 1e-3


def _read_up(frame: SyncedFrame) -> np.ndarray | None:
    """Measured up direction in RGB camera axes (the accelerometer reading, rotated out of the Kinect's axes)."""
    if frame.accel is None:
        return None
    try:
        return ACCEL_TO_CAMERA @ read_accel_dump(frame.accel.path)
    except NYUFormatError as err:
        LOG.warning("ignoring accelerometer reading: %s", err)
        return None


def convert_raw(
    scene_dir: Path, out_dir: Path | None = None, options: RawOptions | None = None, progress: bool = True
) -> Path:
    """Convert one raw NYU scene folder; returns the scene folder (reused if already converted identically)."""
    scene_dir = Path(scene_dir)
    options = options or RawOptions()
    raw = list_raw_scene(scene_dir)
    out_dir = Path(out_dir) if out_dir is not None else default_output(scene_dir, scene_dir.name)
    fp = fingerprint(scene_dir, asdict(options))
    if is_cached(out_dir, fp):
        return out_dir
    sync = synchronise(raw, options.max_dt)
    dropped = {
        f.depth.path.name: f"no RGB frame within {options.max_dt * 1e3:.0f} ms (nearest {f.dt * 1e3:.0f} ms)"
        for f in sync.dropped
    }
    candidates = sync.frames[:: options.stride]
    if not candidates:
        raise NYUFormatError(f"{scene_dir}: no depth frame has an RGB frame within {options.max_dt * 1e3:.0f} ms")
    work = out_dir / f".work-{fp}"
    work.mkdir(parents=True, exist_ok=True)
    reg = DepthRegistration(crop=options.crop)
    frames = _register_all(candidates, reg, work, dropped, progress)
    if not frames:
        raise NYUFormatError(
            f"{scene_dir}: none of {len(candidates)} frames is usable, e.g. {next(iter(dropped.values()))}"
        )
    width, height = reg.size
    with tqdm(total=len(frames), desc="pose estimation", disable=not progress) as bar:
        traj = estimate_trajectory(
            lambda i: _load_cached(work, frames[i]),
            len(frames),
            reg.K,
            width,
            height,
            up=[_read_up(f) for f in frames],
            config=options.poses,
            progress=bar.update,
        )
    for i, reason in traj.failed.items():
        dropped[frames[i].depth.path.name] = reason
    keyframes = set(traj.keyframes)
    written = [i for i in sorted(traj.c2w) if i in keyframes or not options.keyframes_only]
    records = [
        {
            "name": f"frame_{i:05d}",
            "depth_file": frames[i].depth.path.name,
            "rgb_file": frames[i].rgb.path.name,
            "accel_file": frames[i].accel.path.name if frames[i].accel else None,
            "dt_ms": frames[i].dt * 1e3,
            "fitness": traj.fitness.get(i),
            "keyframe": i in keyframes,
        }
        for i in written
    ]
    metadata = {
        "source": "NYU Depth V2 raw scene",
        "source_path": str(scene_dir.resolve()),
        "fingerprint": fp,
        "options": asdict(options),
        "sync": sync.stats(),
        "frames_synchronised": len(sync.frames),
        "frames_registered": len(frames),
        "frames_posed": len(traj.c2w),
        "frames_written": len(written),
        "dropped": dropped,
        "dropped_counts": {
            "rgb_too_far": len(sync.dropped),
            "unreadable": sum(r.startswith("unreadable") for r in dropped.values()),
            "no_valid_depth": sum(r.startswith("no valid depth") for r in dropped.values()),
            "odometry_failed": len(traj.failed),
        },
        "odometry": traj.summary(),
        "world": "z up, levelled by the accelerometer" if traj.levelled else "first camera (no accelerometer data)",
        "intrinsics": "undistorted RGB camera"
        + (", cropped to the depth camera's valid area" if options.crop else "")
        + "; nerfstudio pixel convention (pixel centres at +0.5)",
        "frames": records,
    }
    invalidate(out_dir)
    write_scene(
        out_dir,
        to_nerfstudio_intrinsics(reg.K),
        width,
        height,
        (
            RGBDFrame(*_load_cached(work, frames[i]), traj.c2w[i], f"frame_{i:05d}")
            for i in tqdm(written, desc="writing", disable=not progress)
        ),
        metadata,
    )
    shutil.rmtree(work)
    return out_dir
