"""TUM RGB-D layout: `rgb.txt` / `depth.txt` lists, depth PNGs with value / 5000 = metres, optional ground truth.

Each list line is `timestamp path` ('#' starts a comment). Depth frames are paired with the nearest
RGB frame in time, one to one, within `max_dt` (TUM's `associate.py` rule). `groundtruth.txt` lines are
`timestamp tx ty tz qx qy qz qw` (camera-to-world of the colour camera's optical centre, OpenCV axes);
poses are interpolated (linear + slerp) to each RGB timestamp and frames outside the ground truth's
coverage are skipped with a reason. Depth is registered to colour by the dataset.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import numpy as np
from scipy.spatial.transform import Rotation

from data_converters.capture import Capture, CaptureFormatError, CaptureFrame
from data_converters.layouts.text import check_intrinsics, image_size, parse_numbers, read_matrix, read_text
from data_converters.pose_interpolation import interpolate_pose

LOG = logging.getLogger(__name__)
TUM_DEPTH_SCALE = 1.0 / 5000.0
FREIBURG_K = {
    "freiburg1": (517.3, 516.5, 318.6, 255.3),
    "freiburg2": (520.9, 521.0, 325.1, 249.7),
    "freiburg3": (535.4, 539.2, 320.1, 247.6),
}
"""Published colour-camera pinhole intrinsics per sensor (distortion of fr1/fr2 is ignored)."""
ROS_DEFAULT_K = (525.0, 525.0, 319.5, 239.5)
INTRINSICS_FILE = "camera-intrinsics.txt"


def read_tum_list(path: Path) -> list[tuple[float, str]]:
    """(timestamp, relative path) lines of rgb.txt / depth.txt, sorted by time."""
    entries = []
    for n, line in enumerate(read_text(path).splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        parts = line.split()
        if len(parts) != 2:
            raise CaptureFormatError(f"{path}, line {n}: expected 'timestamp filename', got {line!r}")
        stamp = parse_numbers(parts[0], path, n)
        if stamp.size != 1 or not np.isfinite(stamp[0]):
            raise CaptureFormatError(f"{path}, line {n}: timestamp {parts[0]!r} is not a finite number")
        entries.append((float(stamp[0]), parts[1]))
    if not entries:
        raise CaptureFormatError(f"{path}: lists no frames")
    return sorted(entries)


def read_tum_groundtruth(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(N,) timestamps and (N, 4, 4) camera-to-world poses from `timestamp tx ty tz qx qy qz qw` lines."""
    rows = []
    for n, line in enumerate(read_text(path).splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        values = parse_numbers(line, path, n)
        if values.size != 8 or not np.isfinite(values).all():
            raise CaptureFormatError(f"{path}, line {n}: expected 8 finite numbers 'time tx ty tz qx qy qz qw'")
        if not 0.5 < np.linalg.norm(values[4:]) < 2.0:
            raise CaptureFormatError(f"{path}, line {n}: quaternion {values[4:].tolist()} is not a rotation")
        rows.append(values)
    if not rows:
        raise CaptureFormatError(f"{path}: lists no poses")
    data = np.array(sorted(rows, key=lambda r: r[0]))
    if np.any(np.diff(data[:, 0]) <= 0):
        raise CaptureFormatError(f"{path}: timestamps repeat")
    poses = np.tile(np.eye(4), (len(data), 1, 1))
    poses[:, :3, :3] = Rotation.from_quat(data[:, 4:]).as_matrix()
    poses[:, :3, 3] = data[:, 1:4]
    return data[:, 0], poses


def associate(first: np.ndarray, second: np.ndarray, max_dt: float) -> list[tuple[int, int]]:
    """One-to-one (i, j) pairs of nearest timestamps within `max_dt`, closest pairs first (TUM's rule)."""
    if len(second) == 0:
        return []
    order = np.argsort(second)
    s = second[order]
    idx = np.searchsorted(s, first)
    candidates = []
    for i, k in enumerate(idx):
        for j in (k - 1, k, k + 1):
            if 0 <= j < len(s) and abs(s[j] - first[i]) <= max_dt:
                candidates.append((abs(s[j] - first[i]), i, int(order[j])))
    used_i: set[int] = set()
    used_j: set[int] = set()
    pairs = []
    for _, i, j in sorted(candidates):
        if i not in used_i and j not in used_j:
            used_i.add(i)
            used_j.add(j)
            pairs.append((i, j))
    return sorted(pairs)


def interpolate_poses(
    stamps: np.ndarray, poses: np.ndarray, query: np.ndarray, max_gap: float
) -> list[np.ndarray | None]:
    """Pose at each query time (linear translation, slerp rotation) or None outside coverage / across a gap."""
    out: list[np.ndarray | None] = []
    k = np.searchsorted(stamps, query)
    for t, j in zip(query, k, strict=True):
        if j < len(stamps) and stamps[j] == t:
            out.append(poses[j].copy())
            continue
        if j == 0 or j == len(stamps) or stamps[j] - stamps[j - 1] > max_gap:
            out.append(None)
            continue
        a, b = stamps[j - 1], stamps[j]
        out.append(interpolate_pose(poses[j - 1], poses[j], (t - a) / (b - a)))
    return out


def _intrinsics(root: Path) -> tuple[np.ndarray, str | None]:
    if (root / INTRINSICS_FILE).is_file():
        return check_intrinsics(read_matrix(root / INTRINSICS_FILE, 3, 3), root / INTRINSICS_FILE), None
    m = re.search(r"freiburg([123])", root.resolve().name)
    fx, fy, cx, cy = FREIBURG_K[f"freiburg{m.group(1)}"] if m else ROS_DEFAULT_K
    note = (
        f"intrinsics: TUM freiburg{m.group(1)} published colour pinhole values (lens distortion ignored)"
        if m
        else f"no {INTRINSICS_FILE} and no freiburgN in the folder name: assumed the ROS default "
        "(fx=fy=525, cx=319.5, cy=239.5)"
    )
    return np.array([[fx, 0, cx], [0, fy, cy], [0, 0, 1.0]]), note


def is_tum(root: Path) -> bool:
    return (Path(root) / "rgb.txt").is_file() and (Path(root) / "depth.txt").is_file()


def read_tum(root: Path, max_dt: float = 0.02, max_pose_gap: float = 0.1) -> Capture:
    """Parse a TUM RGB-D sequence folder; frames are depth frames with an RGB frame within `max_dt` seconds."""
    root = Path(root)
    for name in ("rgb.txt", "depth.txt"):
        if not (root / name).is_file():
            raise CaptureFormatError(
                f"{root / name}: missing; a TUM sequence lists its frames in rgb.txt and depth.txt"
            )
    rgb, depth = read_tum_list(root / "rgb.txt"), read_tum_list(root / "depth.txt")
    pairs = associate(np.array([t for t, _ in depth]), np.array([t for t, _ in rgb]), max_dt)
    if not pairs:
        raise CaptureFormatError(f"{root}: no depth frame of depth.txt has an RGB frame within {max_dt * 1e3:.0f} ms")
    paired = {i for i, _ in pairs}
    skipped = {depth[i][1]: f"no RGB frame within {max_dt * 1e3:.0f} ms" for i in range(len(depth)) if i not in paired}
    frames = []
    for i, j in pairs:
        rgb_path, depth_path = root / rgb[j][1], root / depth[i][1]
        for p, lst in ((rgb_path, "rgb.txt"), (depth_path, "depth.txt")):
            if not p.is_file():
                raise CaptureFormatError(f"{root / lst}: lists {p}, which does not exist")
        frames.append(
            CaptureFrame(name=Path(depth[i][1]).stem, rgb_path=rgb_path, depth_path=depth_path, timestamp=rgb[j][0])
        )
    notes = []
    gt = root / "groundtruth.txt"
    if gt.is_file():
        stamps, poses = read_tum_groundtruth(gt)
        for f, pose in zip(
            frames, interpolate_poses(stamps, poses, np.array([f.timestamp for f in frames]), max_pose_gap), strict=True
        ):
            f.c2w = pose
        skipped.update(
            {
                f.depth_path.name: f"no ground-truth pose within {max_pose_gap * 1e3:.0f} ms of t={f.timestamp:.3f}"
                for f in frames
                if f.c2w is None
            }
        )
        frames = [f for f in frames if f.c2w is not None]
        if not frames:
            raise CaptureFormatError(f"{gt}: covers none of the frames' timestamps")
        notes.append("poses interpolated from groundtruth.txt to each RGB timestamp")
    K, note = _intrinsics(root)
    if note:
        notes.append(note)
        LOG.warning("%s: %s", root, note)
    if len({f.name for f in frames}) != len(frames):
        raise CaptureFormatError(f"{root / 'depth.txt'}: lists the same file name twice")
    width, height = image_size(frames[0].rgb_path)
    return Capture(
        layout="tum",
        root=root,
        K=K,
        width=width,
        height=height,
        depth_scale=TUM_DEPTH_SCALE,
        frames=frames,
        skipped=skipped,
        notes=notes,
    )
