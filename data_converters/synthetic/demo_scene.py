"""The built-in demo: a rendered room written as a nerfstudio RGB-D scene with exact depth."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from tqdm import tqdm

from data_converters.nerfstudio_scene import RGBDFrame, write_scene
from data_converters.synthetic.kinect_noise import KinectNoiseModel
from data_converters.synthetic.room import RoomScene, handheld_trajectory


def scaled_intrinsics(width: int, height: int, hfov_degrees: float = 62.0) -> np.ndarray:
    """Pinhole intrinsics with a Kinect-like horizontal field of view."""
    f = 0.5 * width / np.tan(np.deg2rad(hfov_degrees) / 2)
    return np.array([[f, 0, width / 2], [0, f, height / 2], [0, 0, 1.0]])


def make_demo_scene(
    out_dir: Path,
    num_frames: int = 40,
    width: int = 160,
    height: int = 120,
    seed: int = 0,
    kinect_noise: KinectNoiseModel | None = None,
) -> Path:
    """Render the demo room along a hand-held path; depth PNGs are exact ground truth.

    With `kinect_noise`, depth is what a Kinect would store instead (quantised, noisy, holed).
    """
    scene = RoomScene.default()
    K = scaled_intrinsics(width, height)
    poses = handheld_trajectory(num_frames, seed=seed)
    rng = np.random.default_rng(seed)

    def frames():
        for i, c2w in enumerate(tqdm(poses, desc="rendering demo scene", leave=False)):
            rgb, depth = scene.render(K, c2w, height, width)
            if kinect_noise is not None:
                depth = kinect_noise.corrupt(depth, rgb, rng, K=K)
            yield RGBDFrame((rgb * 255 + 0.5).astype(np.uint8), depth, c2w, f"frame_{i:05d}")

    lo, hi = scene.bounds()
    return write_scene(
        out_dir,
        K,
        width,
        height,
        frames(),
        metadata={
            "source": "synthetic demo room (data_converters.synthetic)",
            "ground_truth": kinect_noise is None,
            "depth": "exact" if kinect_noise is None else "Kinect-corrupted (data_converters.synthetic.kinect_noise)",
            "scene_bounds_m": [lo.tolist(), hi.tolist()],
            "seed": seed,
        },
    )
