"""Record3D's "EXR + JPG sequence" export (iPhone / iPad LiDAR): `metadata.json`, `rgb/<i>.jpg`, `depth/<i>.exr`.

nerfstudio's `ns-process-data record3d` (1.1.5) reads only `rgb/` and `metadata.json`, so its scenes carry no depth
at all; this reader keeps it. `metadata.json` holds the colour size (`w`, `h`), the depth size (`dw`, `dh`, e.g.
192x256 against 720x960 colour), `K` column-major, and one pose per frame as `[qx, qy, qz, qw, tx, ty, tz]`
(scalar-last quaternion, camera-to-world in ARKit axes: x right, y up, looking down -z; world y up). Depth is
float32 metres at the depth size, 0 / nan / inf where the sensor saw nothing; it is resized to the colour size
(centre-aligned nearest neighbour, so no depth is blended across an edge) when read. The world is kept as given.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from scipy.spatial.transform import Rotation

from data_converters.capture import Capture, CaptureFormatError, CaptureFrame
from data_converters.layouts.text import check_intrinsics, read_text

# OpenCV's EXR codec is off unless this is set when it decodes its first EXR (it reads the switch once, then).
os.environ.setdefault("OPENCV_IO_ENABLE_OPENEXR", "1")

ARKIT_TO_OPENCV = np.diag([1.0, -1.0, -1.0, 1.0])
"""ARKit camera axes (x right, y up, z back) to OpenCV's (x right, y down, z forward); its own inverse."""


def is_record3d(root: Path) -> bool:
    root = Path(root)
    return (root / "metadata.json").is_file() and (root / "rgb").is_dir() and (root / "depth").is_dir()


def read_exr_depth(path: Path) -> np.ndarray:
    """(H, W) float32 metres from a Record3D depth EXR; 0 where invalid. Raises CaptureFormatError naming the file."""
    try:
        depth = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    except cv2.error as err:
        raise CaptureFormatError(f"{path}: OpenCV cannot decode this EXR: {err}") from err
    if depth is None:
        raise CaptureFormatError(f"{path}: missing or not a readable EXR depth map")
    if depth.ndim == 3:  # a multi-channel EXR keeps depth in R (OpenCV hands channels over as BGR)
        depth = depth[..., 2]
    if not np.issubdtype(depth.dtype, np.floating):
        raise CaptureFormatError(f"{path}: expected float depth in metres, got {depth.dtype}")
    depth = depth.astype(np.float32)
    depth[~np.isfinite(depth) | (depth <= 0)] = 0.0
    return depth


@dataclass
class Record3DCapture(Capture):
    """A Capture whose depth is float EXR at its own (smaller) resolution."""

    depth_width: int = 0
    depth_height: int = 0

    def load_depth_m(self, frame: CaptureFrame) -> np.ndarray:
        depth = read_exr_depth(frame.depth_path)
        if self.depth_width and depth.shape != (self.depth_height, self.depth_width):
            raise CaptureFormatError(
                f"{frame.depth_path}: depth is {depth.shape[1]}x{depth.shape[0]}, metadata.json says "
                f"{self.depth_width}x{self.depth_height}"
            )
        return cv2.resize(depth, (self.width, self.height), interpolation=cv2.INTER_NEAREST_EXACT)


def pose_matrix(pose: list[float], path: Path, index: int) -> np.ndarray:
    """OpenCV camera-to-world (4, 4) from one Record3D pose `[qx, qy, qz, qw, tx, ty, tz]`."""
    values = np.asarray(pose, dtype=np.float64)
    if values.shape != (7,) or not np.isfinite(values).all() or np.linalg.norm(values[:4]) < 1e-6:
        raise CaptureFormatError(f"{path}: pose {index} is {pose!r}, expected [qx, qy, qz, qw, tx, ty, tz]")
    c2w = np.eye(4)
    c2w[:3, :3] = Rotation.from_quat(values[:4]).as_matrix()  # scipy's quaternions are scalar-last too
    c2w[:3, 3] = values[4:]
    return c2w @ ARKIT_TO_OPENCV


def read_record3d(root: Path) -> Record3DCapture:
    """Parse a Record3D EXR + JPG export folder."""
    root = Path(root)
    meta_path = root / "metadata.json"
    try:
        meta = json.loads(read_text(meta_path))
        width, height = int(meta["w"]), int(meta["h"])
        K = np.asarray(meta["K"], dtype=np.float64).reshape(3, 3).T  # stored column-major
        poses = meta["poses"]
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as err:
        raise CaptureFormatError(f"{meta_path}: expected w, h, K (9 numbers) and poses: {err}") from err
    K = check_intrinsics(K, meta_path)
    frames, skipped = [], {}
    colour = sorted((p for p in (root / "rgb").iterdir() if p.stem.isdigit()), key=lambda p: int(p.stem))
    for rgb in colour:
        if rgb.suffix.lower() not in (".jpg", ".jpeg", ".png"):
            continue
        index = int(rgb.stem)
        depth = root / "depth" / f"{rgb.stem}.exr"
        if not depth.is_file():
            skipped[rgb.stem] = f"no depth map {depth.name} beside {rgb.name}"
            continue
        if index >= len(poses):
            skipped[rgb.stem] = f"metadata.json has {len(poses)} poses, none for frame {index}"
            continue
        frames.append(
            CaptureFrame(name=rgb.stem, rgb_path=rgb, depth_path=depth, c2w=pose_matrix(poses[index], meta_path, index))
        )
    if not frames:
        raise CaptureFormatError(f"{root}: no rgb/<i>.jpg with a depth/<i>.exr beside it")
    return Record3DCapture(
        layout="record3d",
        root=root,
        K=K,
        width=width,
        height=height,
        depth_scale=1.0,
        frames=frames,
        skipped=skipped,
        notes=[f"depth {meta.get('dw', '?')}x{meta.get('dh', '?')} EXR metres, resized to the {width}x{height} colour"],
        depth_width=int(meta.get("dw", 0)),
        depth_height=int(meta.get("dh", 0)),
    )
