"""What every RGB-D layout reader returns: a list of frames on disk, the camera, and any given poses.

Readers (TUM, Redwood/ICL, 3DMatch/SUN3D, plain folders, ...) only parse their layout into a
`Capture`; pose estimation, registration and scene writing are shared and live elsewhere.
Images are read lazily, so a long sequence costs nothing until it is converted.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass
class CaptureFrame:
    """One colour/depth pair of a capture, still on disk."""

    name: str
    """Unique within the capture (e.g. `seq-01/frame-000000`); used for output file names."""
    rgb_path: Path
    depth_path: Path
    timestamp: float | None = None
    """Seconds, when the layout records time (TUM); None otherwise."""
    c2w: np.ndarray | None = None
    """(4, 4) camera-to-world in OpenCV axes (x right, y down, z forward) when the capture gives a pose."""
    group: str = ""
    """Sequence or fragment the frame belongs to (3DMatch fragments, 7-Scenes seq-XX); '' for one sequence."""


@dataclass
class Capture:
    """A parsed RGB-D capture: frames in time order, one pinhole camera, depth units."""

    layout: str
    root: Path
    K: np.ndarray
    """(3, 3) OpenCV intrinsics (pixel centres at integer coordinates) of the colour camera."""
    width: int
    height: int
    depth_scale: float
    """Metres per stored depth unit (1e-3 for millimetre PNGs, 1 / 5000 for TUM)."""
    frames: list[CaptureFrame]
    invalid_depth_values: tuple[int, ...] = (0,)
    """Stored values that mean 'no measurement' (7-Scenes also writes 65535)."""

    @property
    def has_poses(self) -> bool:
        return bool(self.frames) and all(f.c2w is not None for f in self.frames)
