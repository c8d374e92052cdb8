"""Kinect RGB/depth time-offset compensation: the camera pose at each RGB timestamp, from the posed depth frames.

The Kinect's RGB and depth streams are not triggered together; NYU pairs them by the nearest
timestamp, 5-25 ms apart. A hand-held camera turns a few tenths of a degree in that time, several
pixels in the image, which dominates registration error. Once the depth frames are posed, the pose
at the RGB timestamp is interpolated on SE(3) between the two posed frames around it (slerp for
rotation, linear for translation; constant velocity beyond the ends) and the depth point cloud is
moved by the relative motion before it is z-buffered into the RGB camera (registration.py).
"""

from __future__ import annotations

import numpy as np

from data_converters.pose_interpolation import interpolate_pose


def pose_at_time(times: np.ndarray, c2w: np.ndarray, t: float, max_gap: float) -> np.ndarray | None:
    """Camera-to-world at time `t` from poses `c2w` (N, 4, 4) taken at increasing `times` (N,).

    Uses the pair of consecutive posed frames that contains `t`; when that pair is more than
    `max_gap` seconds apart (a stall, a failed frame) or `t` lies beyond the ends, the nearest pair
    that is no more than `max_gap` apart and has a frame within `max_gap` of `t` is extrapolated.
    None when no such pair exists: a motion guessed across a long gap would be worse than none.
    """
    times = np.asarray(times, dtype=np.float64)
    k = int(np.searchsorted(times, t))
    candidates = []
    for a in (k - 2, k - 1, k):
        b = a + 1
        if a < 0 or b >= len(times) or not 0 < times[b] - times[a] <= max_gap:
            continue
        distance = max(times[a] - t, t - times[b], 0.0)  # 0 inside the pair
        if distance <= max_gap:
            candidates.append((distance, a))
    if not candidates:
        return None
    _, a = min(candidates)
    return interpolate_pose(c2w[a], c2w[a + 1], (t - times[a]) / (times[a + 1] - times[a]))


def rgb_time_poses(
    depth_times: np.ndarray, c2w: np.ndarray, rgb_times: np.ndarray, max_gap: float
) -> list[np.ndarray | None]:
    """Pose at each frame's RGB timestamp, given the poses `c2w` (N, 4, 4) at the depth timestamps."""
    return [pose_at_time(depth_times, c2w, float(t), max_gap) for t in rgb_times]


def relative_motion(c2w_from: np.ndarray, c2w_to: np.ndarray) -> np.ndarray:
    """4x4 taking points from camera `c2w_from`'s frame into camera `c2w_to`'s frame."""
    return np.linalg.inv(c2w_to) @ c2w_from
