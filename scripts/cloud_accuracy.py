"""Accuracy of an `ns-export pointcloud` cloud against a synthetic scene's true surface (the demo's last line).

The exported cloud lives in nerfstudio's normalised frame, so it is mapped back to the scene's world frame
with the run's `dataparser_transforms.json` before it is compared with every frame's exact depth.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import open3d as o3d
import tyro

from data_converters.nerfstudio_scene import load_scene
from diffnerf_ns.metrics import surface_metrics


@dataclass
class CloudAccuracy:
    cloud: Path
    """The exported `point_cloud.ply`."""
    run_dir: Path
    """The training run's folder (holds `dataparser_transforms.json`)."""
    scene: Path
    """The synthetic scene whose depth is exact (the demo's `scene/`)."""
    threshold: float = 0.05
    """F-score distance (metres)."""


def main(args: CloudAccuracy) -> None:
    points = np.asarray(o3d.io.read_point_cloud(str(args.cloud)).points)
    if len(points) == 0:
        raise SystemExit(f"{args.cloud}: no points")
    meta = json.loads((args.run_dir / "dataparser_transforms.json").read_text())
    transform, scale = np.asarray(meta["transform"]), float(meta["scale"])
    world = (points / scale - transform[:, 3]) @ transform[:, :3]
    m = surface_metrics(world, load_scene(args.scene).world_points(stride=2), threshold=args.threshold)
    print(
        f"point cloud: {len(points)} points, Chamfer {m['chamfer'] * 100:.1f} cm, "
        f"F-score {m['fscore']:.3f} at {args.threshold * 100:.0f} cm from the true surface"
    )


if __name__ == "__main__":
    main(tyro.cli(CloudAccuracy))
