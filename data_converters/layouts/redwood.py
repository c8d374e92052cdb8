"""Redwood / ICL-NUIM / Open3D reconstruction-system layout.

`color/` (or `image/`, `rgb/`) and `depth/` folders paired by name or order (or by `rgbd.match`
lines `depth/x.png color/y.jpg`), depth PNGs in millimetres with 0 = invalid, intrinsics in an
Open3D `camera_*.json` (`intrinsic_matrix` stored column-major) and, optionally, a `.log`
trajectory: per frame a line `id id next` then a 4x4 camera-to-world matrix (OpenCV axes).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np

from data_converters.capture import Capture, CaptureFormatError, CaptureFrame
from data_converters.layouts.folders import colour_and_depth_dirs, find_dir, pair_images
from data_converters.layouts.text import check_intrinsics, image_size, parse_numbers, read_text

LOG = logging.getLogger(__name__)
PRIMESENSE_DEFAULT = np.array([[525.0, 0, 319.5], [0, 525.0, 239.5], [0, 0, 1]])
"""Open3D's `PrimeSenseDefault`, what its reconstruction system assumes when no camera file is given."""
TRAJECTORY_NAMES = ("trajectory.log", "groundtruth.log", "gt.log")


def read_open3d_intrinsics(path: Path) -> tuple[np.ndarray, int, int]:
    """(K, width, height) from an Open3D PinholeCameraIntrinsic json (column-major `intrinsic_matrix`)."""
    try:
        data = json.loads(read_text(path))
        K = np.asarray(data["intrinsic_matrix"], dtype=np.float64).reshape(3, 3).T
        width, height = int(data["width"]), int(data["height"])
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as err:
        raise CaptureFormatError(
            f"{path}: not an Open3D camera file (needs width, height and a 9-number intrinsic_matrix): {err}"
        ) from err
    return check_intrinsics(K, path), width, height


def read_log_trajectory(path: Path) -> dict[int, np.ndarray]:
    """Frame id -> 4x4 camera-to-world from a Redwood/Open3D `.log` (5 lines per pose: header + 4 rows)."""
    lines = [(n, line) for n, line in enumerate(read_text(path).splitlines(), 1) if line.strip()]
    if len(lines) % 5:
        raise CaptureFormatError(
            f"{path}: {len(lines)} non-empty lines; a .log trajectory has 5 per pose (a header and 4 matrix rows)"
        )
    poses: dict[int, np.ndarray] = {}
    for k in range(0, len(lines), 5):
        n, header = lines[k]
        ids = parse_numbers(header, path, n)
        if ids.size != 3 or not np.isfinite(ids).all() or not np.all(ids == np.round(ids)) or ids[0] < 0:
            raise CaptureFormatError(f"{path}, line {n}: expected a header of 3 integers 'id id next', got {header!r}")
        rows = [parse_numbers(line, path, m) for m, line in lines[k + 1 : k + 5]]
        if any(r.size != 4 for r in rows):
            raise CaptureFormatError(f"{path}, line {n + 1}: pose {int(ids[0])} is not a 4x4 matrix")
        frame_id = int(ids[0])
        if frame_id in poses:
            raise CaptureFormatError(f"{path}, line {n}: frame {frame_id} has two poses")
        poses[frame_id] = np.stack(rows)
    return poses


def _pairs(root: Path) -> list[tuple[Path, Path]]:
    match = root / "rgbd.match"
    if not match.is_file():
        return pair_images(*colour_and_depth_dirs(root))
    pairs = []
    for n, line in enumerate(read_text(match).splitlines(), 1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 2:
            raise CaptureFormatError(f"{match}, line {n}: expected 'depth/<file> color/<file>', got {line!r}")
        depth, colour = root / parts[0], root / parts[1]
        for p in (depth, colour):
            if not p.is_file():
                raise CaptureFormatError(f"{match}, line {n}: {p} does not exist")
        pairs.append((colour, depth))
    if not pairs:
        raise CaptureFormatError(f"{match}: no pairs listed")
    return pairs


def is_redwood(root: Path) -> bool:
    """A colour + depth folder pair with an Open3D camera file, a .log trajectory or an rgbd.match."""
    root = Path(root)
    if not root.is_dir() or find_dir(root, ("depth",)) is None:
        return False
    return any(root.glob("camera*.json")) or any(root.glob("*.log")) or (root / "rgbd.match").is_file()


def _trajectory_file(root: Path) -> Path | None:
    named = [root / n for n in TRAJECTORY_NAMES if (root / n).is_file()]
    if named:
        return named[0]
    logs = sorted(root.glob("*.log"))
    if len(logs) > 1:
        LOG.warning("%s: several .log files (%s) and none named trajectory.log; estimating poses", root, logs)
    return logs[0] if len(logs) == 1 else None


def read_redwood(root: Path) -> Capture:
    """Parse a Redwood / ICL-NUIM / Open3D capture folder; poses come from its .log trajectory if any."""
    root = Path(root)
    if not root.is_dir():
        raise CaptureFormatError(f"{root}: not a folder")
    pairs = _pairs(root)
    cameras = sorted(root.glob("camera*.json"))
    notes = []
    if cameras:
        K, width, height = read_open3d_intrinsics(cameras[0])
    else:
        K = PRIMESENSE_DEFAULT
        width, height = image_size(pairs[0][0])
        notes.append("no camera_*.json: assumed Open3D's PrimeSense default intrinsics (fx=fy=525, 319.5, 239.5)")
        LOG.warning("%s: %s", root, notes[-1])
    if image_size(pairs[0][0]) != (width, height):
        raise CaptureFormatError(f"{pairs[0][0]}: image size {image_size(pairs[0][0])} differs from {cameras[0]}")
    log = _trajectory_file(root)
    poses = read_log_trajectory(log) if log is not None else {}
    if poses and sorted(poses) != list(range(len(pairs))):
        raise CaptureFormatError(
            f"{log}: poses for {len(poses)} frame ids (first {min(poses)}, last {max(poses)}) but {len(pairs)} "
            f"frames; a .log trajectory must give frames 0..{len(pairs) - 1}"
        )
    frames = [
        CaptureFrame(name=colour.stem, rgb_path=colour, depth_path=depth, c2w=poses.get(i))
        for i, (colour, depth) in enumerate(pairs)
    ]
    if len({f.name for f in frames}) != len(frames):
        for i, f in enumerate(frames):
            f.name = f"{i:06d}_{f.name}"
    if log is not None:
        notes.append(f"poses from {log.name}")
    return Capture(
        layout="redwood", root=root, K=K, width=width, height=height, depth_scale=1e-3, frames=frames, notes=notes
    )
