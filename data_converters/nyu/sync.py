"""Pairing depth frames with RGB (and accelerometer) files by time, as the NYU toolbox does.

Depth is the primary stream; each depth frame takes the nearest RGB file by the first (unix)
timestamp. Since both lists are sorted, the nearest match moves forward monotonically.
Pairs farther apart than a threshold are dropped and counted rather than kept misaligned.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from data_converters.nyu.raw_reader import RawFile, RawScene


@dataclass
class SyncedFrame:
    """A depth frame with its nearest RGB and accelerometer files."""

    depth: RawFile
    rgb: RawFile
    accel: RawFile | None
    dt: float  # |t_depth - t_rgb| in seconds


@dataclass
class SyncResult:
    """Kept pairs, dropped depth frames (with their time gap) and summary statistics."""

    frames: list[SyncedFrame] = field(default_factory=list)
    dropped: list[SyncedFrame] = field(default_factory=list)
    max_dt: float = 0.0

    def stats(self) -> dict[str, float | int]:
        """Summary for metadata: counts and time differences of kept pairs in milliseconds."""
        dts = np.array([f.dt for f in self.frames]) * 1e3
        return {
            "depth_frames": len(self.frames) + len(self.dropped),
            "kept": len(self.frames),
            "dropped_rgb_too_far": len(self.dropped),
            "threshold_ms": self.max_dt * 1e3,
            "dt_ms_mean": float(dts.mean()) if dts.size else float("nan"),
            "dt_ms_median": float(np.median(dts)) if dts.size else float("nan"),
            "dt_ms_max": float(dts.max()) if dts.size else float("nan"),
        }


def _nearest(times: np.ndarray, queries: np.ndarray) -> np.ndarray:
    """Index of the nearest element of sorted `times` for each query (monotone for sorted queries)."""
    right = np.clip(np.searchsorted(times, queries), 1, len(times) - 1)
    left = right - 1
    return np.where(np.abs(queries - times[left]) <= np.abs(times[right] - queries), left, right)


def synchronise(scene: RawScene, max_dt: float = 0.05) -> SyncResult:
    """Pair every depth frame with the nearest RGB/accel file; drop pairs more than `max_dt` seconds apart."""
    t_depth = np.array([f.unix_time for f in scene.depth])
    t_rgb = np.array([f.unix_time for f in scene.rgb])
    rgb_idx = _nearest(t_rgb, t_depth) if len(t_rgb) > 1 else np.zeros(len(t_depth), int)
    accel_idx = None
    if len(scene.accel) > 1:
        accel_idx = _nearest(np.array([f.unix_time for f in scene.accel]), t_depth)
    elif scene.accel:
        accel_idx = np.zeros(len(t_depth), int)
    result = SyncResult(max_dt=max_dt)
    for i, d in enumerate(scene.depth):
        rgb = scene.rgb[rgb_idx[i]]
        pair = SyncedFrame(
            d, rgb, None if accel_idx is None else scene.accel[accel_idx[i]], abs(d.unix_time - rgb.unix_time)
        )
        (result.frames if pair.dt <= max_dt else result.dropped).append(pair)
    return result
