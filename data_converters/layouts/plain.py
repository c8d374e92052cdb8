"""A plain folder: colour and depth images, an intrinsics file, and the depth unit given by the user.

`rgb/` (or `color/`, `image/`, `images/`) and `depth/` paired by file name or by order; the intrinsics
file is `intrinsics.txt` / `camera-intrinsics.txt` / `K.txt` (3x3, row by row) or `intrinsics.json`
(`fx, fy, cx, cy` or an Open3D `intrinsic_matrix`). No poses: they are always estimated. The depth
unit cannot be read from a PNG, so it is a flag (metres per stored unit) that conversion sanity-checks
against the value range.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from data_converters.capture import Capture, CaptureFormatError, CaptureFrame
from data_converters.layouts.folders import COLOUR_DIRS, colour_and_depth_dirs, find_dir, pair_images
from data_converters.layouts.redwood import read_open3d_intrinsics
from data_converters.layouts.text import check_intrinsics, image_size, read_matrix, read_text

INTRINSICS_NAMES = ("intrinsics.txt", "camera-intrinsics.txt", "K.txt", "intrinsics.json")


def read_intrinsics_file(path: Path) -> np.ndarray:
    """3x3 K from a text matrix or a json with fx/fy/cx/cy (or Open3D's column-major intrinsic_matrix)."""
    path = Path(path)
    if path.suffix != ".json":
        return check_intrinsics(read_matrix(path, 3, 3), path)
    try:
        data = json.loads(read_text(path))
        if isinstance(data, dict) and "intrinsic_matrix" in data:
            return read_open3d_intrinsics(path)[0]
        K = np.array([[data["fx"], 0, data["cx"]], [0, data["fy"], data["cy"]], [0, 0, 1]], dtype=np.float64)
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as err:
        raise CaptureFormatError(f"{path}: expected fx, fy, cx, cy (or an Open3D intrinsic_matrix): {err}") from err
    return check_intrinsics(K, path)


def is_plain(root: Path) -> bool:
    root = Path(root)
    return root.is_dir() and find_dir(root, COLOUR_DIRS) is not None and find_dir(root, ("depth",)) is not None


def read_plain(root: Path, depth_unit: float = 1e-3, intrinsics: Path | None = None) -> Capture:
    """Parse a plain colour + depth folder; `depth_unit` is metres per stored depth value (1e-3 = millimetres)."""
    root = Path(root)
    if not root.is_dir():
        raise CaptureFormatError(f"{root}: not a folder")
    if not (np.isfinite(depth_unit) and depth_unit > 0):
        raise CaptureFormatError(f"depth unit {depth_unit}: must be a positive number of metres per stored value")
    if intrinsics is None:
        intrinsics = next((root / n for n in INTRINSICS_NAMES if (root / n).is_file()), None)
        if intrinsics is None:
            raise CaptureFormatError(
                f"{root}: no intrinsics file; add one of {', '.join(INTRINSICS_NAMES)} (3x3 K row by row, or json "
                "with fx, fy, cx, cy) or pass --intrinsics"
            )
    K = read_intrinsics_file(intrinsics)
    pairs = pair_images(*colour_and_depth_dirs(root))
    width, height = image_size(pairs[0][0])
    frames = [CaptureFrame(name=colour.stem, rgb_path=colour, depth_path=depth) for colour, depth in pairs]
    if len({f.name for f in frames}) != len(frames):
        for i, f in enumerate(frames):
            f.name = f"{i:06d}_{f.name}"
    return Capture(
        layout="plain",
        root=root,
        K=K,
        width=width,
        height=height,
        depth_scale=depth_unit,
        frames=frames,
        notes=[f"intrinsics from {Path(intrinsics).name}; depth unit {depth_unit} m given by the user"],
    )
