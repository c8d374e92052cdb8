"""What every RGB-D layout reader returns: a list of frames on disk, the camera, and any given poses.

Readers (TUM, Redwood/ICL, 3DMatch/SUN3D, plain folders, ...) only parse their layout into a
`Capture`; pose estimation, registration and scene writing are shared and live elsewhere.
Images are read lazily, so a long sequence costs nothing until it is converted.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np


class CaptureFormatError(ValueError):
    """An input file or folder is not what its layout says it should be; the message names the file."""


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
    skipped: dict[str, str] = field(default_factory=dict)
    """Files the reader left out, with the reason (e.g. a TUM depth frame with no RGB frame near in time)."""
    notes: list[str] = field(default_factory=list)
    """What the reader assumed rather than read (e.g. default intrinsics); recorded in the scene metadata."""

    @property
    def has_poses(self) -> bool:
        return bool(self.frames) and all(f.c2w is not None for f in self.frames)

    @property
    def groups(self) -> list[str]:
        """Fragment / sequence names in first-seen order ([''] for a single sequence)."""
        return list(dict.fromkeys(f.group for f in self.frames))

    def load_rgb(self, frame: CaptureFrame) -> np.ndarray:
        """(H, W, 3) uint8 RGB; raises CaptureFormatError naming the file if unreadable or of another size."""
        image = cv2.imread(str(frame.rgb_path), cv2.IMREAD_UNCHANGED)
        if image is None:
            raise CaptureFormatError(f"{frame.rgb_path}: missing or not a readable image")
        if image.dtype == np.uint16:  # 16-bit colour PNGs exist (e.g. some RealSense dumps)
            image = (image >> 8).astype(np.uint8)
        if image.dtype != np.uint8:
            raise CaptureFormatError(f"{frame.rgb_path}: colour image has dtype {image.dtype}, expected 8 or 16 bit")
        if image.ndim == 2:
            image = cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
        elif image.shape[2] == 4:
            image = cv2.cvtColor(image, cv2.COLOR_BGRA2RGB)
        else:
            image = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
        self._check_size(frame.rgb_path, image)
        return image

    def load_depth_raw(self, frame: CaptureFrame) -> np.ndarray:
        """(H, W) depth as stored (integer units); raises CaptureFormatError naming the file."""
        depth = cv2.imread(str(frame.depth_path), cv2.IMREAD_UNCHANGED)
        if depth is None:
            raise CaptureFormatError(f"{frame.depth_path}: missing or not a readable image")
        if depth.ndim != 2 or depth.dtype != np.uint16:
            raise CaptureFormatError(
                f"{frame.depth_path}: expected a single-channel 16-bit depth image, got {depth.dtype} "
                f"with shape {depth.shape} (an 8-bit depth map has lost its metric units)"
            )
        self._check_size(frame.depth_path, depth)
        return depth

    def load_depth_m(self, frame: CaptureFrame) -> np.ndarray:
        """(H, W) float32 metres with 0 where the sensor gave no measurement."""
        raw = self.load_depth_raw(frame)
        depth = raw.astype(np.float32) * np.float32(self.depth_scale)
        depth[np.isin(raw, self.invalid_depth_values)] = 0.0
        return depth

    def _check_size(self, path: Path, image: np.ndarray) -> None:
        if image.shape[:2] != (self.height, self.width):
            raise CaptureFormatError(
                f"{path}: image is {image.shape[1]}x{image.shape[0]}, the capture's camera is "
                f"{self.width}x{self.height} (all frames must share one size)"
            )
