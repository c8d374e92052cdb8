"""Rigid-pose interpolation on SE(3): slerp for rotation, linear for translation.

One home for it: the NYU time-offset compensation, the keyframe pose graph's in-between frames and the
TUM ground-truth lookup all move a camera part of the way between two poses. numpy/scipy only, so
readers that need it do not pull in Open3D.
"""

from __future__ import annotations

import numpy as np
from scipy.spatial.transform import Rotation


def interpolate_pose(c2w_a: np.ndarray, c2w_b: np.ndarray, alpha: float) -> np.ndarray:
    """Pose a fraction `alpha` of the way from a to b (slerp + lerp); alpha outside [0, 1] extrapolates.

    Within [0, 1] this is scipy's `Slerp`; the rotation-vector form also extends the motion at constant
    angular velocity, which the first and last frames of a sequence need.
    """
    rot_a = Rotation.from_matrix(c2w_a[:3, :3])
    delta = (rot_a.inv() * Rotation.from_matrix(c2w_b[:3, :3])).as_rotvec()
    out = np.eye(4)
    out[:3, :3] = (rot_a * Rotation.from_rotvec(alpha * delta)).as_matrix()
    out[:3, 3] = (1.0 - alpha) * c2w_a[:3, 3] + alpha * c2w_b[:3, 3]
    return out
