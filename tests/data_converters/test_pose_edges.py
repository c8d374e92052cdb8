"""One odometry edge on real SUN3D frames: the feature guess, the residual that ranks estimates, the information
matrix, and a wide-baseline trajectory (every 5th frame) that dense odometry from no motion could not track."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from data_converters.capture import Capture
from data_converters.layouts.threedmatch import read_threedmatch
from data_converters.pose_edges import choose_estimate, depth_cloud, edge_cost, feature_guess, information_matrix
from data_converters.poses import PoseConfig, estimate_trajectory, motion_size
from diffnerf_ns.metrics import absolute_trajectory_error, path_length_ratio


@pytest.fixture(scope="module")
def sun3d(fixtures_dir: Path) -> Capture:
    return read_threedmatch(fixtures_dir / "sun3d_study_100")


def _pair(capture: Capture, a: int, b: int) -> tuple:
    """Grey (0-1), depth of frames a (target) and b (source), and b's camera in a's camera (the given poses)."""
    fa, fb = capture.frames[a], capture.frames[b]
    grey = [cv2.cvtColor(capture.load_rgb(f), cv2.COLOR_RGB2GRAY).astype(np.float32) / 255 for f in (fa, fb)]
    depth = [capture.load_depth_m(f) for f in (fa, fb)]
    return grey[0], depth[0], grey[1], depth[1], np.linalg.inv(fa.c2w) @ fb.c2w


def test_feature_guess_recovers_a_wide_step(sun3d: Capture) -> None:
    """Frames 10 apart (about 12 cm and several degrees): the ORB + PnP guess lands near the given relative
    pose. Catches the inverse transform (target into source: off by twice the motion) and a depth lookup
    with u and v swapped (no consistent inliers)."""
    tgt_grey, _, src_grey, src_depth, truth = _pair(sun3d, 60, 70)
    guess = feature_guess(
        *(np.round(g * 255).astype(np.uint8) for g in (src_grey,)),
        src_depth,
        np.round(tgt_grey * 255).astype(np.uint8),
        sun3d.K,
    )
    assert guess is not None
    T, inliers = guess
    step_m, step_deg = motion_size(truth)
    err_m, err_deg = motion_size(np.linalg.inv(truth) @ T)
    print(
        f"step {step_m * 100:.1f} cm {step_deg:.1f} deg; guess error {err_m * 100:.1f} cm {err_deg:.2f} deg; {inliers}"
    )
    assert step_m > 0.08
    assert err_m < 0.35 * step_m and err_deg < 1.5


def test_edge_cost_prefers_the_true_motion(sun3d: Capture) -> None:
    """The given relative pose costs less than no motion and than the motion reversed; fitness falls with
    it. Catches a cost that compares the wrong pixels (transform applied inverted) or saturates nothing."""
    tgt_grey, tgt_depth, src_grey, src_depth, truth = _pair(sun3d, 60, 70)
    costs = {
        name: edge_cost(src_grey, src_depth, tgt_grey, tgt_depth, sun3d.K, T, 0.07)
        for name, T in (("truth", truth), ("none", np.eye(4)), ("reversed", np.linalg.inv(truth)))
    }
    print(costs)
    assert costs["truth"][0] < 0.8 * min(costs["none"][0], costs["reversed"][0])
    assert costs["truth"][1] > max(costs["none"][1], costs["reversed"][1])


def test_information_matrix_counts_inliers_in_the_translation_block(sun3d: Capture) -> None:
    """Open3D's ordering (rotation, then translation): the translation block is the inlier count times the
    identity. Catches swapped blocks, which would weight rotation and translation wrongly in the graph."""
    _, tgt_depth, _, src_depth, truth = _pair(sun3d, 60, 61)
    info = information_matrix(src_depth, tgt_depth, sun3d.K, truth, 0.07)
    n = info[3, 3]
    assert n > 1000
    np.testing.assert_allclose(info[3:, 3:], n * np.eye(3))
    assert np.all(np.linalg.eigvalsh(info) > 0)


def test_choose_estimate_switches_only_past_the_margin() -> None:
    """Catches an inverted comparison, a margin read as absolute instead of relative, or a no-op margin."""
    assert choose_estimate([0.5, 0.46, 0.6], preferred=True, margin=0.1) == 0  # 8% lower: stays
    assert choose_estimate([0.5, 0.44, 0.6], preferred=True, margin=0.1) == 1  # 12% lower: switches
    assert choose_estimate([0.5, 0.6, 0.3], preferred=True, margin=0.1) == 2
    assert choose_estimate([0.05, 0.046], preferred=True, margin=0.1) == 0  # relative, not absolute
    assert choose_estimate([0.5, 0.49], preferred=True, margin=0.0) == 1
    assert choose_estimate([0.5, 0.49], preferred=False, margin=0.5) == 1  # preferred term did not converge


def test_depth_cloud_normals_face_the_camera() -> None:
    """A plane tilted about the x axis: every normal is the plane's and points towards the camera. Catches a
    crossed-product order or orientation flip (point-to-plane ICP would then push surfaces apart)."""
    K = np.array([[100.0, 0, 40], [0, 100.0, 30], [0, 0, 1]])
    v, u = np.mgrid[0:60, 0:80]
    n = np.array([0.0, -np.sin(0.4), -np.cos(0.4)])  # facing the camera; plane n . p = -2
    ray = np.stack([(u - 40) / 100, (v - 30) / 100, np.ones_like(u, dtype=float)], -1)
    depth = (-2.0 / (ray @ n)).astype(np.float32)
    normals = np.asarray(depth_cloud(depth, K, voxel=0.01).normals)
    assert len(normals) > 1000
    np.testing.assert_allclose(normals, np.broadcast_to(n, normals.shape), atol=1e-3)


def test_wide_baseline_trajectory(sun3d: Capture) -> None:
    """SUN3D fragment 1 at every 5th frame (5-8 cm a step): ATE within the issue's 5 cm of the given poses and
    a path of about the right length. Catches tracking without the feature guess (the hybrid term alone from
    no motion measured ATE 15.5 cm and a path 2.07x too long here)."""
    frames = [f for f in sun3d.frames if f.group == sun3d.groups[0]][::5]
    images = [(sun3d.load_rgb(f), sun3d.load_depth_m(f)) for f in frames]
    traj = estimate_trajectory(
        lambda i: images[i], len(images), sun3d.K, sun3d.width, sun3d.height, config=PoseConfig(depth_max=8.0)
    )
    assert not traj.failed
    est = np.stack([traj.c2w[i] for i in range(len(frames))])
    gt = np.stack([f.c2w for f in frames])
    ate, ratio = absolute_trajectory_error(est, gt), path_length_ratio(est, gt)
    print(f"ATE {ate * 100:.2f} cm, path ratio {ratio:.3f}, terms {traj.summary()['tracking_terms']}")
    assert ate < 0.05
    assert 0.75 < ratio < 1.25
