"""diffnerf_ns.metrics against values known in closed form."""

from __future__ import annotations

import numpy as np
import torch
from scipy.spatial.transform import Rotation

from diffnerf_ns.metrics import (
    absolute_trajectory_error,
    depth_metrics,
    image_metrics,
    path_length_ratio,
    relative_rotation_errors,
    subset_completeness,
    surface_metrics,
)


def test_psnr_of_a_known_error() -> None:
    """A constant error of 0.1 is exactly 20 dB (catches a 0-255 data range or a wrong log base)."""
    gt = torch.full((16, 16, 3), 0.5)
    m = image_metrics(gt + 0.1, gt)
    assert abs(m["psnr"] - 20.0) < 1e-3
    assert image_metrics(gt, gt)["ssim"] > 0.999


def test_depth_metrics_ignore_invalid_pixels() -> None:
    """Prediction 10% too far on valid pixels, garbage where gt = 0 (catches scoring holes, inverted AbsRel)."""
    gt = torch.tensor([[2.0, 4.0], [0.0, 1.0]])
    pred = torch.tensor([[2.2, 4.4], [99.0, 1.1]])
    m = depth_metrics(pred, gt)
    assert abs(m["depth_abs_rel"] - 0.1) < 1e-6 and m["depth_delta1"] == 1.0
    assert abs(m["depth_rmse"] - np.sqrt((0.04 + 0.16 + 0.01) / 3)) < 1e-6


def test_surface_metrics_of_an_offset_plane() -> None:
    """Two parallel dense planes 3 cm apart: Chamfer 3 cm, F-score 1 at 5 cm and 0 at 2 cm."""
    u, v = np.meshgrid(np.linspace(0, 1, 101), np.linspace(0, 1, 101))
    plane = np.stack([u.ravel(), v.ravel(), np.zeros(u.size)], 1)
    shifted = plane + [0, 0, 0.03]
    assert abs(surface_metrics(shifted, plane)["chamfer"] - 0.03) < 1e-6
    assert surface_metrics(shifted, plane)["fscore"] == 1.0
    assert surface_metrics(shifted, plane, threshold=0.02)["fscore"] == 0.0


def test_accuracy_and_completeness_have_directions() -> None:
    """A plane predicted exactly plus a far blob, and a half plane: catches swapped directions (accuracy must see the
    blob, completeness the missing half) and completeness over the wrong subset (the hole is the missing half)."""
    u, v = np.meshgrid(np.linspace(0, 1, 101), np.linspace(0, 1, 101))
    plane = np.stack([u.ravel(), v.ravel(), np.zeros(u.size)], 1)
    blob = np.full((plane.shape[0] // 4, 3), 2.0)
    m = surface_metrics(np.concatenate([plane, blob]), plane)
    assert m["completeness"] < 1e-9 and m["accuracy"] > 0.3
    half = plane[plane[:, 0] <= 0.5]
    m = surface_metrics(half, plane)
    assert m["accuracy"] < 1e-9 and 0.1 < m["completeness"] < 0.2
    assert abs(m["chamfer"] - 0.5 * (m["accuracy"] + m["completeness"])) < 1e-12
    hole = plane[plane[:, 0] > 0.75]  # truth inside the hole: 0.25 to 0.5 away from the half plane
    h = subset_completeness(half, hole)
    assert h["recall"] == 0.0 and 0.25 < h["completeness"] < 0.5
    assert subset_completeness(plane, hole)["recall"] == 1.0
    assert np.isnan(subset_completeness(plane, plane[:0])["completeness"])


def test_trajectory_error_is_frame_independent() -> None:
    """An estimate in another world frame scores zero; a 5 cm shake of one camera does not
    (catches ATE without alignment, and alignment that absorbs real error)."""
    rng = np.random.default_rng(0)
    gt = np.tile(np.eye(4), (20, 1, 1))
    gt[:, :3, :3] = Rotation.random(20, random_state=1).as_matrix()
    gt[:, :3, 3] = rng.uniform(-2, 2, (20, 3))
    world = np.eye(4)
    world[:3, :3] = Rotation.from_euler("xyz", [30, -50, 80], degrees=True).as_matrix()
    world[:3, 3] = [5.0, -3.0, 1.0]
    est = world @ gt
    assert absolute_trajectory_error(est, gt) < 1e-9
    assert relative_rotation_errors(est, gt).max() < 1e-6
    est[7, :3, 3] += world[:3, :3] @ np.array([0.05, 0.0, 0.0])
    assert 0.005 < absolute_trajectory_error(est, gt) < 0.05


def test_path_length_ratio_of_a_shrunk_trajectory() -> None:
    """A zig-zag path scaled by 0.8 about its start: ratio 0.8, in a rotated world frame too. Catches the
    ratio inverted (1.25) or measured on the rotation part."""
    t = np.stack([np.arange(6) * 0.1, (np.arange(6) % 2) * 0.05, np.zeros(6)], 1)
    gt = np.tile(np.eye(4), (6, 1, 1))
    gt[:, :3, 3] = t
    est = gt.copy()
    est[:, :3, 3] *= 0.8
    R = np.eye(4)
    R[:3, :3] = Rotation.from_euler("z", 40, degrees=True).as_matrix()
    assert abs(path_length_ratio(R @ est, gt) - 0.8) < 1e-9
