"""The README's picture: one held-out view of a trained run, its raw sensor depth, the run's rendering of it (colour
and depth), and the `diffnerf-export-mesh` mesh seen from the same camera.

    python -m benchmarks.front_picture --load-config outputs/bench_mesh/.../config.yml

Depth panels share one colour scale (metres, planar z); black is no depth. The mesh is shaded by the angle between
its faces and the viewing ray, so its geometry (not its colour) shows.
"""

from __future__ import annotations

import json
import platform
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
import tyro

from benchmarks.figures import save_figure
from diffnerf_ns.export_mesh import MeshSettings, WorldFrame, cast_camera_rays, export_mesh, render_depth

if TYPE_CHECKING:
    import open3d as o3d


@dataclass
class FrontPicture:
    load_config: Path = tyro.MISSING
    """A trained run's config.yml (the picture in the README uses the SUN3D run of `benchmarks/bench_mesh.py`)."""
    label: str | None = None
    """Scene name in the title (default: the run's experiment name)."""
    view: int = 1
    """Which held-out (eval split) view to show."""
    output: Path = Path("benchmarks/results/front.png")
    threads: int = 1


def mesh_shading(mesh: o3d.geometry.TriangleMesh, K: np.ndarray, c2w: np.ndarray, height: int, width: int):
    """|cos| of the angle between each pixel's ray and the mesh face it hits (NaN where it hits nothing)."""
    hit, dirs = cast_camera_rays(mesh, K, c2w, height, width)
    dirs = dirs / np.linalg.norm(dirs, axis=-1, keepdims=True)
    shade = np.abs((hit["primitive_normals"] * dirs).sum(-1))
    return np.where(np.isfinite(hit["t_hit"]), shade, np.nan)


def main(args: FrontPicture) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from nerfstudio.utils.eval_utils import eval_setup

    from diffnerf_ns.compat import offline_lpips

    torch.set_num_threads(args.threads)
    start = time.time()
    with offline_lpips():
        config, pipeline, _, _ = eval_setup(args.load_config)
    frame = WorldFrame.of_pipeline(pipeline)
    dataset = pipeline.datamanager.eval_dataset
    camera = dataset.cameras[args.view : args.view + 1].to("cpu")
    data = dataset[args.view]
    photo = data["image"][..., :3].numpy()
    sensor = data["depth_image"][..., 0].numpy() / frame.scale
    rendered = render_depth(pipeline.model.eval(), camera.to(pipeline.device), frame)
    mesh, stats = export_mesh(pipeline, MeshSettings(), log=lambda *_: None)
    K = camera.get_intrinsics_matrices()[0].numpy().astype(np.float64)
    c2w = frame.pose_to_world(camera.camera_to_worlds[0].numpy().astype(np.float64))
    shade = mesh_shading(mesh, K, c2w, int(camera.height), int(camera.width))

    valid = sensor[sensor > 0]
    lo, hi = np.percentile(valid, 1), np.percentile(valid, 99)
    depth_cmap = plt.get_cmap("viridis").copy()
    depth_cmap.set_bad("black")
    grey = plt.get_cmap("gray").copy()
    grey.set_bad("black")
    panels = [
        ("held-out photo", photo, {}),
        ("its raw sensor depth", np.ma.masked_where(sensor <= 0, sensor), {"cmap": depth_cmap, "vmin": lo, "vmax": hi}),
        ("diffnerf: rendered colour", rendered.rgb, {}),
        ("diffnerf: rendered depth", rendered.depth, {"cmap": depth_cmap, "vmin": lo, "vmax": hi}),
        ("diffnerf-export-mesh, same camera", np.ma.masked_invalid(shade), {"cmap": grey, "vmin": 0, "vmax": 1}),
    ]
    fig, axes = plt.subplots(1, len(panels), figsize=(3.2 * len(panels), 2.9))
    for ax, (title, image, style) in zip(axes, panels, strict=True):
        ax.imshow(image, **style)
        ax.set_title(title, fontsize=9)
        ax.axis("off")
    fig.suptitle(
        f"{args.label or config.experiment_name}: held-out view {args.view}; "
        f"depth {lo:.1f}-{hi:.1f} m (planar z), black = none",
        fontsize=9,
    )
    fig.tight_layout()
    save_figure(fig, args.output, dpi=100)
    record = {
        "command": f"python -m benchmarks.front_picture --load-config {args.load_config} --view {args.view}"
        + (f" --label '{args.label}'" if args.label else ""),
        "machine": f"{platform.machine()} CPU, {torch.get_num_threads()} torch threads",
        "mesh_triangles": len(mesh.triangles),
        "mesh_seconds": stats["seconds"],
        "seconds": time.time() - start,
    }
    args.output.with_suffix(".json").write_text(json.dumps(record, indent=2))
    print(f"{args.output}: {json.dumps(record)}")


if __name__ == "__main__":
    main(tyro.cli(FrontPicture))
