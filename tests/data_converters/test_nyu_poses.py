"""Pose estimation on a real sequence with ground truth (ICL-NUIM style, fixtures/icl_nuim_5)."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from data_converters.poses import PoseConfig, estimate_trajectory
from data_converters.synthetic.demo_scene import scaled_intrinsics
from data_converters.synthetic.room import RoomScene, handheld_trajectory
from diffnerf_ns.metrics import absolute_trajectory_error, relative_rotation_errors


def _read_log(path: Path) -> np.ndarray:
    """Redwood/Open3D .log: per frame one header line and a 4x4 camera-to-world matrix."""
    rows = [list(map(float, line.split())) for line in path.read_text().splitlines() if line.strip()]
    return np.array([rows[i + 1 : i + 5] for i in range(0, len(rows), 5)])


def test_icl_nuim_trajectory(fixtures_dir: Path) -> None:
    folder = fixtures_dir / "icl_nuim_5"
    if not folder.is_dir():
        pytest.skip(f"{folder} is absent")
    camera = json.loads((folder / "camera_primesense.json").read_text())
    K = np.array(camera["intrinsic_matrix"]).reshape(3, 3).T  # stored column-major
    gt = _read_log(folder / "trajectory.log")

    def load(i: int) -> tuple[np.ndarray, np.ndarray]:
        rgb = cv2.cvtColor(cv2.imread(str(folder / "color" / f"{i:05d}.jpg")), cv2.COLOR_BGR2RGB)
        depth = cv2.imread(str(folder / "depth" / f"{i:05d}.png"), cv2.IMREAD_UNCHANGED).astype(np.float32) / 1000
        return rgb, depth

    traj = estimate_trajectory(load, len(gt), K, camera["width"], camera["height"], config=PoseConfig(scale=1.0))
    assert not traj.failed
    est = np.stack([traj.c2w[i] for i in range(len(gt))])
    ate = absolute_trajectory_error(est, gt)
    rre = relative_rotation_errors(est, gt)
    print(f"ICL-NUIM: ATE {ate * 100:.2f} cm, max relative rotation error {rre.max():.3f} deg")
    assert ate < 0.02
    assert rre.max() < 1.0


def test_failed_frame_is_excluded_not_guessed() -> None:
    """A garbage frame mid-sequence is reported and left out; tracking continues around it."""
    scene = RoomScene.default()
    K = scaled_intrinsics(160, 120)
    gt = handheld_trajectory(12, seed=1, arc_degrees=20)
    frames = []
    for c2w in gt:
        rgb, depth = scene.render(K, c2w, 120, 160)
        frames.append(((rgb * 255).astype(np.uint8), depth))
    rng = np.random.default_rng(0)
    frames[6] = (
        rng.integers(0, 255, (120, 160, 3), dtype=np.uint8),
        rng.uniform(0.6, 5.0, (120, 160)).astype(np.float32),
    )
    K_cv = K.copy()
    K_cv[:2, 2] -= 0.5  # RoomScene samples pixel centres at +0.5, Open3D at integers
    traj = estimate_trajectory(lambda i: frames[i], 12, K_cv, 160, 120, config=PoseConfig(scale=1.0))
    assert list(traj.failed) == [6]
    kept = sorted(traj.c2w)
    assert kept == [i for i in range(12) if i != 6]
    assert absolute_trajectory_error(np.stack([traj.c2w[i] for i in kept]), gt[kept]) < 0.01
