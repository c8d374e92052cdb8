"""Writing NYU raw Kinect files byte for byte as the capture tool did (used by the synthetic generator)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from data_converters.nyu.raw_reader import ACCEL_COUNTS_PER_G, GRAVITY


def write_ppm(path: Path, rgb: np.ndarray) -> None:
    """Write an RGB frame the way the Kinect capture tool did."""
    h, w = rgb.shape[:2]
    Path(path).write_bytes(b"P6\n%d %d\n255\n" % (w, h) + np.ascontiguousarray(rgb, dtype=np.uint8).tobytes())


def write_pgm(path: Path, raw: np.ndarray) -> None:
    """Write raw disparity with a big-endian-claiming PGM header and a little-endian payload, as NYU did."""
    h, w = raw.shape
    Path(path).write_bytes(b"P5\n%d %d\n65535\n" % (w, h) + np.ascontiguousarray(raw, dtype="<u2").tobytes())


def write_accel_dump(path: Path, accel_ms2: np.ndarray) -> None:
    """Write a libfreenect raw tilt state for an accelerometer reading in m/s^2."""
    counts = np.round(np.asarray(accel_ms2) / GRAVITY * ACCEL_COUNTS_PER_G).astype("<i2")
    Path(path).write_bytes(counts.tobytes() + np.array([0, 0], "i1").tobytes() + np.array([0], "<i4").tobytes())
