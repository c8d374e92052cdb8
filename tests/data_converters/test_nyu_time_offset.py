"""NYU RGB/depth time-offset compensation: SE(3) interpolation, the warp, and end to end against truth."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import cv2
import numpy as np
import pytest
from scipy.spatial.transform import Rotation, Slerp

from data_converters.cache import fingerprint
from data_converters.nerfstudio_scene import load_scene
from data_converters.nyu import calibration as cal
from data_converters.nyu.convert import RawOptions, convert_raw
from data_converters.nyu.registration import DepthRegistration
from data_converters.nyu.time_offset import pose_at_time, relative_motion, rgb_time_poses
from data_converters.pose_interpolation import interpolate_pose
from data_converters.synthetic.nyu_raw_writer import NYURawSpec, load_ground_truth, write_nyu_raw_scene
from data_converters.synthetic.room import RoomScene, handheld_path, look_at


def _pose(rotvec_deg: tuple[float, float, float], t: tuple[float, float, float]) -> np.ndarray:
    T = np.eye(4)
    T[:3, :3] = Rotation.from_rotvec(np.deg2rad(rotvec_deg)).as_matrix()
    T[:3, 3] = t
    return T


def test_interpolation_is_slerp_and_extrapolates_at_constant_velocity() -> None:
    """Catches composing the relative rotation on the wrong side (differs from Slerp for non-commuting rotations)
    and a missing or inverted step when extrapolating past the last frame."""
    a, b = _pose((10, -40, 25), (0.1, 0.2, 0.3)), _pose((-30, 20, 60), (0.5, -0.1, 0.9))
    slerp = Slerp([0.0, 1.0], Rotation.from_matrix(np.stack([a[:3, :3], b[:3, :3]])))
    for alpha in (0.0, 0.3, 0.75, 1.0):
        pose = interpolate_pose(a, b, alpha)
        assert np.allclose(pose[:3, :3], slerp([alpha]).as_matrix()[0], atol=1e-9)
        assert np.allclose(pose[:3, 3], (1 - alpha) * a[:3, 3] + alpha * b[:3, 3])
    # Beyond b: the same motion again (rotation and translation), i.e. constant velocity.
    assert np.allclose(interpolate_pose(a, b, 2.0)[:3, :3], b[:3, :3] @ a[:3, :3].T @ b[:3, :3], atol=1e-9)
    assert np.allclose(interpolate_pose(a, b, 2.0)[:3, 3], 2 * b[:3, 3] - a[:3, 3])


def test_pose_at_rgb_times_follows_a_known_path() -> None:
    """Poses at RGB timestamps 5-16 ms off the depth timestamps match the true path (catches a time-sign error,
    which lands 2x the offset away, and interpolating across a stall instead of extrapolating from one side)."""
    period = 1 / 30
    depth_times = np.arange(20) * period
    depth_times[10:] += 0.5  # a half-second stall after frame 9
    # 20 frames of a 2 s (60-frame) sweep; the camera rests during the stall.
    progress = lambda t: (t - np.where(t > 9 * period + 0.25, 0.5, 0.0)) / (59 * period)  # noqa: E731
    rng = np.random.default_rng(0)
    rgb_times = depth_times + rng.choice([-1, 1], 20) * rng.uniform(0.005, 0.016, 20)
    rgb_times[9] = depth_times[9] - 0.012  # just before the stall: only frames 8-9 are close enough
    c2w = handheld_path(progress(depth_times), seed=2, arc_degrees=60)
    truth = handheld_path(progress(rgb_times), seed=2, arc_degrees=60)
    est = rgb_time_poses(depth_times, c2w, rgb_times, max_gap=0.1)
    unmoved = [np.linalg.norm(c2w[i][:3, 3] - truth[i][:3, 3]) for i in range(20)]
    errors = [np.linalg.norm(est[i][:3, 3] - truth[i][:3, 3]) for i in range(20)]
    assert max(errors) < 0.15 * np.median(unmoved) and np.median(errors) < 0.05 * np.median(unmoved)
    assert np.median(unmoved) > 0.002  # the offset matters: several millimetres of motion
    # A lone posed frame far from any other has no motion to interpolate: no guess.
    assert pose_at_time(np.array([0.0, 1.0]), c2w[:2], 0.01, max_gap=0.1) is None


def _ideal_rays(K: np.ndarray) -> np.ndarray:
    """Unit-z rays through the pixel centres of an undistorted 640x480 camera (OpenCV: centres at integers)."""
    u, v = np.meshgrid(np.arange(cal.WIDTH, dtype=np.float64), np.arange(cal.HEIGHT, dtype=np.float64))
    return np.stack([(u - K[0, 2]) / K[0, 0], (v - K[1, 2]) / K[1, 1], np.ones_like(u)], -1).reshape(-1, 3)


def test_depth_moved_by_known_motion_lands_on_the_truth() -> None:
    """Depth taken at the depth timestamp, warped by the camera motion to the RGB timestamp, matches the depth the
    RGB camera sees then. Catches a wrong-sign (inverted) motion, a no-op, and applying it in the wrong frame."""
    scene = RoomScene.default()
    rig = look_at(np.array([0.4, -1.3, 1.4]), np.array([-0.2, 0.6, 0.7]))  # RGB camera at the depth timestamp
    rgb_cam = rig @ _pose((0.2, 0.6, -0.3), (0.012, -0.006, 0.02))  # ... and at the RGB timestamp
    _, depth = scene.render_rays(rig @ cal.depth_to_rgb(), _ideal_rays(cal.K_DEPTH))
    _, truth = scene.render_rays(rgb_cam, _ideal_rays(cal.K_RGB))
    truth = truth.reshape(cal.HEIGHT, cal.WIDTH)
    reg = DepthRegistration(crop=False)
    motion = relative_motion(rig, rgb_cam)

    def median_error(m: np.ndarray | None) -> float:
        warped = reg.depth_into_rgb(depth.reshape(cal.HEIGHT, cal.WIDTH), m)
        valid = warped > 0
        assert valid.mean() > 0.7
        return float(np.median(np.abs(warped - truth)[valid]))

    right, none, inverted = median_error(motion), median_error(None), median_error(np.linalg.inv(motion))
    print(f"known motion: median error {right * 1e3:.2f} mm, unwarped {none * 1e3:.1f}, inverted {inverted * 1e3:.1f}")
    assert right < 0.002
    assert none > 0.015 and inverted > 0.015


@pytest.fixture(scope="module")
def tiny_handheld(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict, np.ndarray]:
    """The first 8 frames of a 2 s hand-held sweep (120 deg arc, about 60 deg/s), RGB 10-16 ms off depth."""
    root = tmp_path_factory.mktemp("time_offset")
    spec = NYURawSpec(
        num_frames=8,
        path_frames=60,
        seed=3,
        arc_degrees=120,
        stalls=(),
        invalid_depth_frames=(),
        rgb_offset_ms=(10.0, 16.0),
    )
    gt = write_nyu_raw_scene(root / "handheld_0001", spec)
    record, poses = load_ground_truth(gt.gt_dir)
    return gt.scene_dir, record, poses


def _registered_errors(scene_dir: Path, out: Path, record: dict) -> tuple[np.ndarray, float, dict]:
    """(|registered depth - true depth at the RGB timestamp| of all written pixels, mean coverage, metadata)."""
    meta = json.loads((out / "metadata.json").read_text())
    scene = load_scene(out)
    errors, coverage = [], []
    for i, frame in enumerate(meta["frames"]):
        path = Path(f"{scene_dir}_ground_truth") / "depth" / f"{Path(frame['depth_file']).stem}.png"
        truth = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)[cal.CROP_ROWS, cal.CROP_COLS] / 1000.0
        depth = scene.depth(i)
        valid = (depth > 0) & (truth > 0)
        errors.append(np.abs(depth - truth)[valid])
        coverage.append(valid.mean())
    return np.concatenate(errors), float(np.mean(coverage)), meta


def test_compensation_reduces_registration_error_end_to_end(
    tiny_handheld: tuple[Path, dict, np.ndarray], tmp_path: Path
) -> None:
    """Converted with and without compensation: the compensated depth is much closer to the truth at the RGB
    timestamp, keeps its coverage, and the option is recorded and part of the cache key (catches a hook that never
    runs, a sign error in time, and a cached uncompensated scene being reused)."""
    scene_dir, record, _ = tiny_handheld
    results = {}
    for on in (False, True):
        options = RawOptions(keyframes_only=False, time_offset=on)
        out = convert_raw(scene_dir, tmp_path / f"out_{on}", options, progress=False)
        results[on] = _registered_errors(scene_dir, out, record)
    (before, cov_before, meta_before), (after, cov_after, meta_after) = results[False], results[True]
    print(
        f"tiny hand-held scene: median error {np.median(before) * 100:.2f} -> {np.median(after) * 100:.2f} cm, "
        f"mean {np.mean(before) * 100:.2f} -> {np.mean(after) * 100:.2f} cm"
    )
    assert np.median(after) < 0.6 * np.median(before)
    assert np.mean(after) < 0.6 * np.mean(before)
    assert cov_after > 0.97 * cov_before
    assert meta_after["time_offset"]["compensated"] and not meta_before["time_offset"]["compensated"]
    assert meta_after["time_offset"]["frames_compensated"] == len(meta_after["frames"]) == len(record["depth_files"])
    assert meta_after["options"]["time_offset"] is True
    assert meta_after["fingerprint"] != meta_before["fingerprint"]
    assert fingerprint(scene_dir, asdict(RawOptions(keyframes_only=False))) == meta_after["fingerprint"]  # default on
