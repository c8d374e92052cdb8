"""Trajectory accuracy against ground truth: ATE after rigid alignment, relative rotation error."""

from __future__ import annotations

import numpy as np
from scipy.spatial.transform import Rotation


def align_rigid(est_c2w: np.ndarray, gt_c2w: np.ndarray) -> np.ndarray:
    """4x4 rigid transform (Kabsch on camera centres, no scale: depth gives metric scale) mapping est to gt."""
    est_t, gt_t = est_c2w[:, :3, 3], gt_c2w[:, :3, 3]
    est_mean, gt_mean = est_t.mean(0), gt_t.mean(0)
    rot, _ = Rotation.align_vectors(gt_t - gt_mean, est_t - est_mean)
    T = np.eye(4)
    T[:3, :3] = rot.as_matrix()
    T[:3, 3] = gt_mean - T[:3, :3] @ est_mean
    return T


def absolute_trajectory_error(est_c2w: np.ndarray, gt_c2w: np.ndarray) -> float:
    """RMSE (metres) of camera centres after rigid alignment."""
    aligned = align_rigid(est_c2w, gt_c2w) @ est_c2w
    return float(np.sqrt(np.mean(np.sum((aligned[:, :3, 3] - gt_c2w[:, :3, 3]) ** 2, axis=1))))


def relative_rotation_errors(est_c2w: np.ndarray, gt_c2w: np.ndarray) -> np.ndarray:
    """Degrees of rotation error of each consecutive relative motion (independent of the world frame)."""
    rel_est = np.linalg.inv(est_c2w[:-1]) @ est_c2w[1:]
    rel_gt = np.linalg.inv(gt_c2w[:-1]) @ gt_c2w[1:]
    diff = np.transpose(rel_gt[:, :3, :3], (0, 2, 1)) @ rel_est[:, :3, :3]
    return np.rad2deg(Rotation.from_matrix(diff).magnitude())
