"""Open3D TSDF fusion of sensor depth: the classical baseline the NeRFs are scored against, and the reference
surface of scenes without a true one (SUN3D).

Frames are (rgb uint8, depth m, c2w OpenCV) with nerfstudio intrinsics; depth beyond `depth_max` is ignored.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from data_converters.nerfstudio_scene import load_scene
from diffnerf_ns.metrics import surface_metrics

if TYPE_CHECKING:
    import open3d as o3d

Frame = tuple[np.ndarray, np.ndarray, np.ndarray]
"""(rgb uint8 (H, W, 3), depth metres (H, W), c2w (4, 4) OpenCV axes)."""


def fuse_tsdf(
    K: np.ndarray, frames: list[Frame], voxel: float, depth_max: float = 8.0
) -> o3d.t.geometry.VoxelBlockGrid:
    """Integrate the frames into a coloured TSDF voxel-block grid (tensor API: one pass, no legacy copies)."""
    import open3d as o3d
    import open3d.core as o3c

    grid = o3d.t.geometry.VoxelBlockGrid(
        attr_names=("tsdf", "weight", "color"), attr_dtypes=(o3c.float32,) * 3, attr_channels=(1, 1, 3),
        voxel_size=voxel, block_resolution=8, block_count=100_000,
    )  # fmt: skip
    intrinsic = o3c.Tensor(K, o3c.float64)
    for rgb, depth, c2w in frames:
        d = o3d.t.geometry.Image(o3c.Tensor(np.ascontiguousarray(depth, np.float32)))
        c = o3d.t.geometry.Image(o3c.Tensor(np.ascontiguousarray(rgb, np.float32) / 255.0))
        extrinsic = o3c.Tensor(np.linalg.inv(c2w), o3c.float64)
        blocks = grid.compute_unique_block_coordinates(d, intrinsic, extrinsic, 1.0, depth_max)
        grid.integrate(blocks, d, c, intrinsic, extrinsic, 1.0, depth_max)
    return grid


def fuse_tsdf_mesh(
    K: np.ndarray, frames: list[Frame], voxel: float, depth_max: float = 8.0, weight_threshold: float = 1.0
) -> o3d.geometry.TriangleMesh:
    """The fused surface as a coloured legacy mesh (marching cubes over voxels seen at least `weight_threshold`)."""
    grid = fuse_tsdf(K, frames, voxel, depth_max)
    return grid.extract_triangle_mesh(weight_threshold=weight_threshold).to_legacy()


def tsdf_points(K: np.ndarray, frames: list[Frame], voxel: float) -> np.ndarray:
    """(N, 3) surface points of the fused TSDF (its zero crossings, as the NeRFs' surfaces are scored)."""
    return fuse_tsdf(K, frames, voxel).extract_point_cloud(weight_threshold=1.0).point.positions.numpy()


def tsdf_row(view: Path, reference: np.ndarray) -> dict[str, float]:
    """TSDF fusion of the view's training frames, scored like the NeRFs."""
    scene = load_scene(view)
    train = set(json.loads((view / "transforms.json").read_text())["train_filenames"])
    frames = [
        (scene.rgb(i), scene.depth(i), scene.c2w[i])
        for i, p in enumerate(scene.image_paths)
        if p.relative_to(view).as_posix() in train
    ]
    start = time.perf_counter()
    points = tsdf_points(scene.K, frames, voxel=0.02)
    return {**surface_metrics(points, reference), "seconds": time.perf_counter() - start}
