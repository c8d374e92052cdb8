"""Accuracy of a `diffnerf-export-mesh` mesh against a synthetic scene's true surface (the demo's last line).

The mesh is already in the scene's world frame (metres); it is sampled uniformly over its area and compared with
every frame's exact depth, like `cloud_accuracy.py` compares the point cloud.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import open3d as o3d
import tyro

from data_converters.nerfstudio_scene import load_scene
from diffnerf_ns.metrics import surface_metrics


@dataclass
class MeshAccuracy:
    mesh: Path
    """The exported `mesh.ply`."""
    scene: Path
    """The synthetic scene whose depth is exact (the demo's `scene/`)."""
    threshold: float = 0.05
    """F-score distance (metres)."""
    samples: int = 200_000
    """Points sampled over the mesh's area."""


def main(args: MeshAccuracy) -> None:
    mesh = o3d.io.read_triangle_mesh(str(args.mesh))
    if len(mesh.triangles) == 0:
        raise SystemExit(f"{args.mesh}: no triangles")
    o3d.utility.random.seed(0)
    points = np.asarray(mesh.sample_points_uniformly(args.samples).points)
    m = surface_metrics(points, load_scene(args.scene).world_points(stride=2), threshold=args.threshold)
    print(
        f"mesh: {len(mesh.triangles)} triangles, accuracy {m['accuracy'] * 100:.1f} cm, completeness "
        f"{m['completeness'] * 100:.1f} cm, F-score {m['fscore']:.3f} at {args.threshold * 100:.0f} cm from the true "
        "surface"
    )


if __name__ == "__main__":
    main(tyro.cli(MeshAccuracy))
