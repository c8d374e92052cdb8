"""Render the synthetic room as an NYU Depth V2 raw scene folder, with ground truth beside it.

Everything the real capture gets wrong is reproduced, so the NYU pipeline is tested against
known truth: separate RGB and depth cameras with the NYU intrinsics, lens distortion (rays are
cast through the distorted pixel grid) and the depth camera offset by the calibrated extrinsics;
depth stored as quantised 11-bit raw disparity with Kinect noise and holes; RGB timestamps that
do not coincide with depth; RGB stalls during which depth frames have no RGB partner (planted
drops); one frame with all-invalid depth; accelerometer dumps measuring gravity. The camera moves
along a continuous hand-held path and each stream is rendered at its own timestamp, so RGB and
depth of a pair see the scene from slightly different poses, as on a real hand-held Kinect; the
ground-truth depth is the true depth at the RGB timestamp in the RGB camera.
"""

from __future__ import annotations

import json
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from data_converters.nerfstudio_scene import depth_to_png_mm
from data_converters.nyu import calibration as cal
from data_converters.nyu.calibration import RAW_INVALID
from data_converters.nyu.raw_reader import GRAVITY
from data_converters.nyu.raw_writer import write_accel_dump, write_pgm, write_ppm
from data_converters.synthetic.kinect_noise import KinectNoiseModel
from data_converters.synthetic.room import RoomScene, handheld_path

FRAME_PERIOD = 1.0 / 30.0


@dataclass
class NYURawSpec:
    """What to generate; the planted drops are known so tests can count them."""

    num_frames: int = 60
    """Depth frames that have an RGB partner (the hand-held path has this many poses)."""
    seed: int = 0
    arc_degrees: float = 60.0
    path_frames: int | None = None
    """Frame periods the hand-held path (arc and shake) spans; default `num_frames`. Larger values keep a
    short scene at the speed of a long one (the first `num_frames` frames of the longer path)."""
    stalls: tuple[int, ...] = (20, 40)
    """Frame indices after which the RGB stream stalls while depth keeps recording."""
    frames_per_stall: int = 3
    invalid_depth_frames: tuple[int, ...] = (30,)
    """Frames whose depth is entirely invalid (a single bad frame in a long sequence)."""
    stall_seconds: float = 0.5
    rgb_offset_ms: tuple[float, float] = (3.0, 12.0)
    """|t_rgb - t_depth| of normal pairs is drawn uniformly from this range."""
    workers: int = 2


@dataclass
class NYURawGroundTruth:
    """Where the ground truth went and what was planted."""

    scene_dir: Path
    gt_dir: Path
    depth_files: list[str] = field(default_factory=list)
    """Depth files of frames that should be kept, in order."""
    dropped_depth_files: list[str] = field(default_factory=list)
    invalid_depth_files: list[str] = field(default_factory=list)


@lru_cache(maxsize=2)
def _distorted_grid_rays(camera: str) -> np.ndarray:
    """Unit-z camera rays through the centres of a camera's distorted pixel grid (OpenCV pixel convention)."""
    K, dist = (cal.K_RGB, cal.DIST_RGB) if camera == "rgb" else (cal.K_DEPTH, cal.DIST_DEPTH)
    u, v = np.meshgrid(np.arange(cal.WIDTH, dtype=np.float64), np.arange(cal.HEIGHT, dtype=np.float64))
    xy = cv2.undistortPoints(np.stack([u, v], -1).reshape(-1, 1, 2), K, dist).reshape(-1, 2)
    return np.concatenate([xy, np.ones((len(xy), 1))], 1)


def _render_frame(
    args: tuple[RoomScene, np.ndarray, np.ndarray, int, int],
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(distorted RGB uint8, raw disparity uint16, clean depth in the ideal RGB camera, clean depth-camera depth).

    `c2w_rgb` is the RGB camera at the RGB timestamp, `c2w_rig` the RGB camera at the depth timestamp
    (the depth camera sits at the calibrated extrinsics from it). RGB is rendered with the ideal camera
    (which also gives the ground-truth depth at the RGB timestamp) and remapped to the distorted pixel
    grid; depth rays go through the distorted grid directly, so no depth is resampled.
    """
    scene, c2w_rgb, c2w_rig, seed, index = args
    rng = np.random.default_rng([seed, index])
    K_ideal = cal.K_RGB.copy()
    K_ideal[:2, 2] += 0.5  # RoomScene.render samples pixel centres at +0.5; OpenCV's are at integers
    rgb_ideal, gt_depth = scene.render(K_ideal, c2w_rgb, cal.HEIGHT, cal.WIDTH)
    rays = _distorted_grid_rays("rgb")
    map_x = (cal.K_RGB[0, 0] * rays[:, 0] + cal.K_RGB[0, 2]).reshape(cal.HEIGHT, cal.WIDTH).astype(np.float32)
    map_y = (cal.K_RGB[1, 1] * rays[:, 1] + cal.K_RGB[1, 2]).reshape(cal.HEIGHT, cal.WIDTH).astype(np.float32)
    rgb = cv2.remap(rgb_ideal, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    c2w_depth = c2w_rig @ cal.depth_to_rgb()
    depth_rgb, depth = scene.render_rays(c2w_depth, _distorted_grid_rays("depth"))
    depth = depth.reshape(cal.HEIGHT, cal.WIDTH)
    raw = KinectNoiseModel().corrupt_raw(depth, depth_rgb.reshape(cal.HEIGHT, cal.WIDTH, 3), rng, K=cal.K_DEPTH)
    return (rgb * 255 + 0.5).astype(np.uint8), raw, gt_depth, depth


def _accel(c2w: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Accelerometer reading: specific force (up, +g) in camera axes, mapped to the Kinect's axes, plus noise."""
    up_cam = c2w[:3, :3].T @ np.array([0.0, 0.0, GRAVITY])
    return cal.ACCEL_TO_CAMERA.T @ up_cam + rng.normal(0, 0.05, 3)


def write_nyu_raw_scene(
    out_dir: Path, spec: NYURawSpec | None = None, room: RoomScene | None = None
) -> NYURawGroundTruth:
    """Write `out_dir` as an NYU raw scene and `<out_dir>_ground_truth/` with poses and clean depth.

    `room`: the layout to render (default: RoomScene.default()); benchmarks vary it to get different rooms.
    """
    spec = spec or NYURawSpec()
    out_dir, gt_dir = Path(out_dir), Path(f"{out_dir}_ground_truth")
    out_dir.mkdir(parents=True, exist_ok=True)
    (gt_dir / "depth").mkdir(parents=True, exist_ok=True)
    lo, hi = spec.rgb_offset_ms
    if not 0 <= lo <= hi < FRAME_PERIOD / 2 * 1e3:
        raise ValueError(
            f"rgb_offset_ms {spec.rgb_offset_ms}: need 0 <= low <= high < {FRAME_PERIOD / 2 * 1e3:.1f} ms "
            "(half a frame period), or RGB frames would pair with the wrong depth frame"
        )
    rng = np.random.default_rng(spec.seed)
    scene = room or RoomScene.default()
    n = spec.num_frames
    rgb_offset = rng.choice([-1, 1], n) * rng.uniform(lo, hi, n) * 1e-3  # t_rgb - t_depth, seconds
    # Progress along the path advances one step per frame period and pauses during RGB stalls, so an
    # RGB frame taken after its depth frame just before a stall sees the camera where the depth frame did.
    resting = (rgb_offset > 0) & np.isin(np.arange(n), spec.stalls)
    steps = np.arange(n) + np.where(resting, 0.0, rgb_offset / FRAME_PERIOD)
    progress = 1.0 / max((spec.path_frames or n) - 1, 1)
    rig_poses = handheld_path(np.arange(n) * progress, seed=spec.seed, arc_degrees=spec.arc_degrees)
    rgb_poses = handheld_path(steps * progress, seed=spec.seed, arc_degrees=spec.arc_degrees)
    t0 = 1315166703.0
    gt = NYURawGroundTruth(out_dir, gt_dir)
    gt_poses: list[list[list[float]]] = []
    gt_rig_poses: list[list[list[float]]] = []
    gt_offsets: list[float] = []
    t, kinect = t0, 2466101449

    def name(kind: str, time: float, ext: str) -> str:
        return f"{kind}-{time:.6f}-{kinect + int((time - t0) * 1e6)}.{ext}"

    jobs = [(scene, rgb_poses[i], rig_poses[i], spec.seed, i) for i in range(n)]
    with ProcessPoolExecutor(max_workers=spec.workers) as pool:
        rendered = pool.map(_render_frame, jobs)
        for i, (rgb, raw, gt_depth, depth_cam) in enumerate(
            tqdm(rendered, total=len(jobs), desc="rendering NYU raw scene", leave=False)
        ):
            if i in spec.invalid_depth_frames:
                raw = np.full_like(raw, RAW_INVALID)
            d_name = name("d", t, "pgm")
            write_pgm(out_dir / d_name, raw)
            write_ppm(out_dir / name("r", t + rgb_offset[i], "ppm"), rgb)
            write_accel_dump(out_dir / name("a", t + 0.002, "dump"), _accel(rig_poses[i], rng))
            if i in spec.invalid_depth_frames:
                gt.invalid_depth_files.append(d_name)
            else:
                gt.depth_files.append(d_name)
                gt_poses.append(rgb_poses[i].tolist())
                gt_rig_poses.append(rig_poses[i].tolist())
                gt_offsets.append(float(rgb_offset[i]))
                cv2.imwrite(str(gt_dir / "depth" / f"{Path(d_name).stem}.png"), depth_to_png_mm(gt_depth))
            if i in spec.stalls:  # RGB stalls; the camera rests while depth keeps recording
                for k in range(spec.frames_per_stall):
                    t_stall = t + spec.stall_seconds * (k + 1) / (spec.frames_per_stall + 1)
                    stall_raw = KinectNoiseModel().corrupt_raw(depth_cam, None, rng, K=cal.K_DEPTH)
                    write_pgm(out_dir / name("d", t_stall, "pgm"), stall_raw)
                    gt.dropped_depth_files.append(name("d", t_stall, "pgm"))
                t += spec.stall_seconds
            t += FRAME_PERIOD
    (gt_dir / "ground_truth.json").write_text(
        json.dumps(
            {
                "c2w_opencv_rgb": gt_poses,
                "c2w_opencv_rgb_at_depth_time": gt_rig_poses,
                "rgb_minus_depth_seconds": gt_offsets,
                "world": "z up, metres",
                "poses": "c2w_opencv_rgb: RGB camera at the RGB timestamp; _at_depth_time: the same camera when "
                "the depth frame was taken (the depth camera sits at the calibrated extrinsics from it)",
                "depth": "depth/<depth file stem>.png: clean planar depth (mm) at the RGB timestamp, in the "
                "undistorted 640x480 RGB camera",
                "K_rgb": cal.K_RGB.tolist(),
                "depth_files": gt.depth_files,
                "dropped_depth_files": gt.dropped_depth_files,
                "invalid_depth_files": gt.invalid_depth_files,
                "spec": asdict(spec),
            },
            indent=2,
        )
    )
    return gt


def load_ground_truth(gt_dir: Path) -> tuple[dict, np.ndarray]:
    """Ground-truth record and (N, 4, 4) OpenCV RGB camera-to-world poses (at the RGB timestamps) of the kept frames."""
    record = json.loads((Path(gt_dir) / "ground_truth.json").read_text())
    return record, np.asarray(record["c2w_opencv_rgb"])
