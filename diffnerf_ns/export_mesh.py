"""`diffnerf-export-mesh`: a surface mesh of a trained run, bounded by its scene box, in the scene's world frame.

`ns-export tsdf` cannot be made correct by flags (measured on the demo room fed *exact* depth: accuracy 86 cm with
its default +-1 box, 134 cm with a +-6 m box, surfaces 6 m from the room's centre): nerfstudio's TSDF marks voxels
*behind* each camera as seen (its validity test is the voxel's distance, never its z), and marching cubes runs over
never-observed voxels. This path keeps what works (nerfstudio's loading, cameras and renderer) and fuses with
Open3D's TSDF, which handles both:

- the box is the dataparser's scene box (the room fitted to the training depth); depth outside it is not fused and
  the mesh is cropped to it;
- depth is planar z (`depth_convention.ray_to_z_depth`, the one conversion) in metres: the dataparser transform and
  scale of `dataparser_transforms.json` are undone, so voxel size and truncation are metres;
- `--depth sensor-filled` (default): the training views' own depth (what the model was supervised with) where the
  sensor measured it, and the model's rendered depth only where the sensor has holes, rendered at 1/`downscale`;
  `--depth rendered`: the model's depth everywhere. Rendered pixels are fused only where the model is sure of one
  surface: accumulation at least `min_accumulation`, median and expected ray-termination depth within
  `max_depth_spread`, and no training view's sensor depth seeing through the point (free space it measured);
- training views are fused at their refined poses when the run refined poses; `views_between` adds rendered views
  interpolated between consecutive training views.

    diffnerf-export-mesh --load-config outputs/.../config.yml --output-dir exports/mesh
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np
import torch
import tyro

from diffnerf_ns.depth_convention import ray_to_z_depth

if TYPE_CHECKING:
    import open3d as o3d
    from nerfstudio.cameras.cameras import Cameras
    from nerfstudio.pipelines.base_pipeline import Pipeline

OPENGL_TO_OPENCV = np.diag([1.0, -1.0, -1.0, 1.0])
"""nerfstudio cameras look down -z with y up (OpenGL); fusion and the scene's files use OpenCV axes."""


@dataclass
class WorldFrame:
    """The dataparser's normalised frame and its scene box: `normalised = scale * (R @ world + t)`."""

    transform: np.ndarray
    """(3, 4) [R | t] of `dataparser_transforms.json`."""
    scale: float
    aabb: np.ndarray
    """(2, 3) scene box in the normalised frame."""

    @classmethod
    def of_pipeline(cls, pipeline: Pipeline) -> WorldFrame:
        outputs = pipeline.datamanager.train_dataparser_outputs
        return cls(
            transform=outputs.dataparser_transform.detach().cpu().numpy().astype(np.float64),
            scale=float(outputs.dataparser_scale),
            aabb=outputs.scene_box.aabb.detach().cpu().numpy().astype(np.float64),
        )

    def to_world(self, points: np.ndarray) -> np.ndarray:
        R, t = self.transform[:, :3], self.transform[:, 3]
        return (points / self.scale - t) @ R

    def to_normalised(self, points: np.ndarray) -> np.ndarray:
        R, t = self.transform[:, :3], self.transform[:, 3]
        return self.scale * (points @ R.T + t)

    def pose_to_world(self, c2w: np.ndarray) -> np.ndarray:
        """A (3, 4) nerfstudio camera-to-world (normalised frame, OpenGL axes) as a (4, 4) world pose, OpenCV axes."""
        R, t = self.transform[:, :3], self.transform[:, 3]
        out = np.eye(4)
        out[:3, :3] = R.T @ c2w[:3, :3]
        out[:3, 3] = R.T @ (c2w[:3, 3] / self.scale - t)
        return out @ OPENGL_TO_OPENCV

    def inside(self, world_points: np.ndarray, margin: float = 0.0) -> np.ndarray:
        """Which points lie in the scene box shrunk by `margin` metres."""
        p = self.to_normalised(world_points)
        m = margin * self.scale
        return np.all((p >= self.aabb[0] + m) & (p <= self.aabb[1] - m), axis=-1)

    def world_box(self) -> o3d.geometry.OrientedBoundingBox:
        import open3d as o3d

        centre = self.to_world(self.aabb.mean(0, keepdims=True))[0]
        R = self.transform[:, :3]
        return o3d.geometry.OrientedBoundingBox(centre, R.T, (self.aabb[1] - self.aabb[0]) / self.scale)

    def diagonal(self) -> float:
        """Length of the box's diagonal in metres (no depth inside the box can be longer)."""
        return float(np.linalg.norm(self.aabb[1] - self.aabb[0]) / self.scale)


@dataclass
class DepthView:
    """One view to fuse: planar depth in metres (0 = nothing there) with its colour, seen by an OpenCV camera."""

    rgb: np.ndarray
    """(H, W, 3) uint8."""
    depth: np.ndarray
    """(H, W) float32 planar z, metres."""
    K: np.ndarray
    """(3, 3) intrinsics, nerfstudio's pixel convention (pixel (0, 0) covers [0, 1) x [0, 1))."""
    c2w: np.ndarray
    """(4, 4) camera-to-world, world frame of the scene, OpenCV axes."""
    rendered: bool = False
    """Depth rendered by the model (else: the training view's own depth)."""


def backproject_view(view: DepthView) -> np.ndarray:
    """World points (N, 3) of a view's fused pixels."""
    v, u = np.nonzero(view.depth > 0)
    z = view.depth[v, u].astype(np.float64)
    cam = np.stack([(u + 0.5 - view.K[0, 2]) / view.K[0, 0] * z, (v + 0.5 - view.K[1, 2]) / view.K[1, 1] * z, z])
    return (view.c2w[:3, :3] @ cam + view.c2w[:3, 3:4]).T


def keep_inside(view: DepthView, frame: WorldFrame, margin: float) -> DepthView:
    """The view with depth that falls outside the scene box (or on its faces, within `margin`) removed."""
    v, u = np.nonzero(view.depth > 0)
    outside = ~frame.inside(backproject_view(view), margin)
    depth = view.depth.copy()
    depth[v[outside], u[outside]] = 0.0
    return DepthView(view.rgb, depth, view.K, view.c2w, view.rendered)


def dense_enough(view: DepthView, voxel: float) -> DepthView:
    """The view upsampled (nearest) until a pixel covers at most one voxel at its farthest depth.

    Open3D allocates voxel blocks around each pixel's point, so pixels wider than about two voxels (a view rendered
    at low resolution) leave unallocated gaps and a striped mesh; nearest upsampling gives every voxel the same pixel
    as before, and allocates them all.
    """
    import cv2

    factor = int(np.ceil(float(view.depth.max()) / min(view.K[0, 0], view.K[1, 1]) / voxel))
    if factor <= 1:
        return view
    h, w = view.depth.shape
    size = (w * factor, h * factor)
    return DepthView(
        cv2.resize(view.rgb, size, interpolation=cv2.INTER_NEAREST),
        cv2.resize(view.depth, size, interpolation=cv2.INTER_NEAREST),
        np.diag([factor, factor, 1.0]) @ view.K,
        view.c2w,
        view.rendered,
    )


def fuse_views(
    views: list[DepthView],
    voxel: float,
    truncation: float,
    depth_max: float,
    weight_threshold: float = 1.0,
) -> o3d.geometry.TriangleMesh:
    """Open3D TSDF fusion (voxel-block grid) of the views; voxel and truncation in metres. A legacy mesh."""
    import open3d as o3d
    import open3d.core as o3c

    grid = o3d.t.geometry.VoxelBlockGrid(
        attr_names=("tsdf", "weight", "color"),
        attr_dtypes=(o3c.float32, o3c.float32, o3c.float32),
        attr_channels=(1, 1, 3),
        voxel_size=voxel,
        block_resolution=8,
        block_count=50_000,
    )
    multiplier = truncation / voxel
    for view in views:
        if not (view.depth > 0).any():
            continue
        view = dense_enough(view, voxel)
        # Open3D samples pixel floor(u) for a projection u: the same convention as nerfstudio's intrinsics.
        K = o3c.Tensor(view.K, o3c.float64)
        extrinsic = o3c.Tensor(np.linalg.inv(view.c2w), o3c.float64)
        depth = o3d.t.geometry.Image(o3c.Tensor(np.ascontiguousarray(view.depth, np.float32)))
        color = o3d.t.geometry.Image(o3c.Tensor(np.ascontiguousarray(view.rgb, np.float32) / 255.0))
        blocks = grid.compute_unique_block_coordinates(depth, K, extrinsic, 1.0, depth_max, multiplier)
        grid.integrate(blocks, depth, color, K, extrinsic, 1.0, depth_max, multiplier)
    if grid.hashmap().size() == 0:
        return o3d.geometry.TriangleMesh()
    return grid.extract_triangle_mesh(weight_threshold=weight_threshold).to_legacy()


def poisson_mesh(views: list[DepthView], voxel: float, depth: int = 9) -> o3d.geometry.TriangleMesh:
    """Screened Poisson of the views' points (normals estimated, oriented towards each view's camera)."""
    import open3d as o3d

    clouds = o3d.geometry.PointCloud()
    for view in views:
        points = backproject_view(view)
        if len(points) < 10:
            continue
        pcd = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(points))
        v, u = np.nonzero(view.depth > 0)
        pcd.colors = o3d.utility.Vector3dVector(view.rgb[v, u].astype(np.float64) / 255.0)
        pcd.estimate_normals(o3d.geometry.KDTreeSearchParamHybrid(radius=4 * voxel, max_nn=30))
        pcd.orient_normals_towards_camera_location(view.c2w[:3, 3])
        clouds += pcd
    clouds = clouds.voxel_down_sample(voxel / 2)
    mesh, densities = o3d.geometry.TriangleMesh.create_from_point_cloud_poisson(clouds, depth=depth)
    densities = np.asarray(densities)
    mesh.remove_vertices_by_mask(densities < np.quantile(densities, 0.1))  # nerfstudio's trim
    return mesh


def cast_camera_rays(
    mesh: o3d.geometry.TriangleMesh, K: np.ndarray, c2w: np.ndarray, height: int, width: int
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Open3D's ray-cast results (`t_hit`, `primitive_normals`, ...) for every pixel of an OpenCV camera
    (nerfstudio intrinsics) and the world ray directions, scaled to camera-z 1: Open3D measures `t_hit` in
    units of the direction's length, so `t_hit` is planar z-depth (inf where no triangle is hit)."""
    import open3d as o3d

    scene = o3d.t.geometry.RaycastingScene()
    scene.add_triangles(o3d.t.geometry.TriangleMesh.from_legacy(mesh))
    u, v = np.meshgrid(np.arange(width) + 0.5, np.arange(height) + 0.5)
    cam = np.stack([(u - K[0, 2]) / K[0, 0], (v - K[1, 2]) / K[1, 1], np.ones_like(u)], -1)
    dirs = cam @ c2w[:3, :3].T
    origins = np.broadcast_to(c2w[:3, 3], dirs.shape)
    rays = o3d.core.Tensor(np.concatenate([origins, dirs], -1).astype(np.float32))
    return {k: v.numpy() for k, v in scene.cast_rays(rays).items()}, dirs


def mesh_depth(mesh: o3d.geometry.TriangleMesh, K: np.ndarray, c2w: np.ndarray, height: int, width: int) -> np.ndarray:
    """Planar z-depth (metres, 0 where no triangle is hit) of a mesh seen by an OpenCV camera."""
    t = cast_camera_rays(mesh, K, c2w, height, width)[0]["t_hit"]
    return np.where(np.isfinite(t), t, 0.0).astype(np.float32)


def crop_to_box(mesh: o3d.geometry.TriangleMesh, frame: WorldFrame) -> o3d.geometry.TriangleMesh:
    return mesh.crop(frame.world_box()) if len(mesh.vertices) else mesh


def refined_poses(pipeline: Pipeline, cameras: Cameras) -> torch.Tensor:
    """(N, 3, 4) training poses with the run's pose refinement applied (unchanged when it refined none)."""
    model = pipeline.model
    optimizer = getattr(model, "camera_optimizer", None)
    c2w = cameras.camera_to_worlds.to(pipeline.device)
    if optimizer is None or optimizer.config.mode == "off":
        return c2w
    with torch.no_grad():
        adj = optimizer(torch.arange(len(c2w), device=pipeline.device))
    return torch.cat([adj[:, :3, :3] @ c2w[:, :3, :3], c2w[:, :3, 3:] + adj[:, :3, 3:]], dim=-1)


@dataclass
class Rendered:
    """One rendered camera: colour, planar depth in metres (median ray termination), and how sure the model is."""

    rgb: np.ndarray
    """(H, W, 3) uint8."""
    depth: np.ndarray
    """(H, W) float32 planar z, metres (the median of the ray's termination: one surface, not a blend)."""
    spread: np.ndarray
    """(H, W) |median - expected| termination depth, metres: large where the ray's density is spread over several
    surfaces or over free space (a guess, not a surface)."""
    accumulation: np.ndarray
    """(H, W) accumulated opacity; unrendered pixels have 0 here and in `depth`."""


def render_depth(
    model: torch.nn.Module, camera: Cameras, frame: WorldFrame, pixels: np.ndarray | None = None
) -> Rendered:
    """Render one camera (or only `pixels`, a boolean (H, W) mask).

    The model renders distance along each ray in the normalised frame; it is converted to planar z and metres here.
    """
    h, w = int(camera.height), int(camera.width)
    rays = camera.generate_rays(camera_indices=0, keep_shape=True)
    flat = torch.from_numpy(np.flatnonzero(np.ones((h, w), bool) if pixels is None else pixels))
    if pixels is not None:
        rays = rays.flatten()[flat][:, None]  # an (n, 1) "image" of the wanted rays
    with torch.no_grad():
        out = model.get_outputs_for_camera_ray_bundle(rays)

    def z_of(key: str) -> np.ndarray:
        return (ray_to_z_depth(out[key], out["directions_norm"]) / frame.scale).reshape(-1).cpu().numpy()

    def full(values: np.ndarray, dtype: type, channels: int = 1) -> np.ndarray:
        image = np.zeros((h * w, channels), dtype)
        image[flat.numpy()] = values.reshape(len(flat), channels)
        return image.reshape(h, w, channels)[..., 0] if channels == 1 else image.reshape(h, w, channels)

    z = z_of("depth")
    return Rendered(
        rgb=full((out["rgb"][..., :3].clamp(0, 1).cpu().numpy() * 255 + 0.5).astype(np.uint8), np.uint8, 3),
        depth=full(z, np.float32),
        spread=full(np.abs(z - z_of("expected_depth")), np.float32),
        accumulation=full(out["accumulation"].cpu().numpy(), np.float32),
    )


def drop_seen_through(views: list[DepthView], margin: float, margin_per_metre: float) -> list[DepthView]:
    """The views with each rendered pixel removed where a sensor view measured free space through its point.

    A rendered point that a sensor view sees *past* (its measured depth there exceeds the point's depth by more than
    `margin + margin_per_metre * depth`, the sensor's noise) lies in space that camera saw empty: a floater. Points
    a sensor view sees in front of them (occluded there) or not at all are kept.
    """
    sensors = [v for v in views if not v.rendered]
    out = []
    for view in views:
        if not view.rendered or not sensors:
            out.append(view)
            continue
        v, u = np.nonzero(view.depth > 0)
        points = backproject_view(view)
        seen_through = np.zeros(len(points), bool)
        for sensor in sensors:
            w2c = np.linalg.inv(sensor.c2w)
            cam = points @ w2c[:3, :3].T + w2c[:3, 3]
            z = cam[:, 2]
            front = z > 1e-6
            zs = np.where(front, z, 1.0)
            px = np.floor(cam[:, 0] / zs * sensor.K[0, 0] + sensor.K[0, 2]).astype(np.int64)
            py = np.floor(cam[:, 1] / zs * sensor.K[1, 1] + sensor.K[1, 2]).astype(np.int64)
            h, w = sensor.depth.shape
            hit = front & (px >= 0) & (px < w) & (py >= 0) & (py < h)
            measured = np.zeros(len(points), np.float32)
            measured[hit] = sensor.depth[py[hit], px[hit]]
            seen_through |= hit & (measured > z + margin + margin_per_metre * z)
        depth = view.depth.copy()
        depth[v[seen_through], u[seen_through]] = 0.0
        out.append(DepthView(view.rgb, depth, view.K, view.c2w, rendered=True))
    return out


def holes_at(depth: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Pixels of a (w, h) = `size` image whose area is mostly holes (depth 0) in the full-resolution `depth`."""
    import cv2

    return cv2.resize((depth <= 0).astype(np.float32), size, interpolation=cv2.INTER_AREA) >= 0.5


def interpolated_poses(c2w: np.ndarray, between: int) -> np.ndarray:
    """`between` poses (3, 4) between each consecutive pair of `c2w` (N, 3, 4): centres lerped, rotations slerped."""
    from scipy.spatial.transform import Rotation, Slerp

    out = []
    for a, b in zip(c2w[:-1], c2w[1:], strict=True):
        slerp = Slerp([0.0, 1.0], Rotation.from_matrix(np.stack([a[:3, :3], b[:3, :3]])))
        for s in np.arange(1, between + 1) / (between + 1):
            pose = np.zeros((3, 4))
            pose[:, :3] = slerp([s]).as_matrix()[0]
            pose[:, 3] = (1 - s) * a[:, 3] + s * b[:, 3]
            out.append(pose)
    return np.asarray(out).reshape(-1, 3, 4)


@dataclass
class MeshSettings:
    """How a mesh is made from a run (defaults chosen by `benchmarks/bench_mesh.py`)."""

    method: Literal["tsdf", "poisson"] = "tsdf"
    """'tsdf': Open3D TSDF fusion of the views' depth; 'poisson': screened Poisson of their points."""
    depth: Literal["sensor-filled", "rendered"] = "sensor-filled"
    """'sensor-filled': the training views' depth where measured, the model's rendered depth in its holes;
    'rendered': the model's rendered depth only."""
    voxel: float = 0.02
    """TSDF voxel (metres)."""
    truncation: float = 0.04
    """TSDF truncation distance (metres)."""
    downscale: int = 4
    """Render at 1/downscale of the training views' resolution."""
    views_between: int = 0
    """Rendered views interpolated between consecutive training views (all their pixels rendered)."""
    min_accumulation: float = 0.5
    """Rendered pixels with less accumulated opacity (no surface on the ray) are not fused."""
    max_depth_spread: float | None = 0.02
    """Rendered pixels whose median and expected termination depths differ by more (metres) are not fused: the
    model spreads that ray over several surfaces or free space. None fuses them all."""
    seen_through_margin: float | None = 0.03
    """Rendered points a training view's sensor depth sees past by more than this (metres, plus
    `seen_through_per_metre` x depth) are not fused: that camera measured free space there. None skips the check."""
    seen_through_per_metre: float = 0.02
    box_margin: float = 0.02
    """Depth within this distance (metres) of the scene box's faces is not fused: rays that hit nothing end there."""
    weight_threshold: float = 1.0
    """Voxels whose fused weight is not above this are not meshed (each view adds 1: 1.0 keeps voxels seen twice)."""
    export_samples: tuple[int, int, int] | None = None
    """(proposal 1, proposal 2, field) samples per ray while rendering; None keeps the model's."""
    poses: Literal["refined", "dataset"] = "refined"
    """Training views' poses: as the run refined them (its camera optimiser), or as the dataset gave them."""


def collect_views(pipeline: Pipeline, settings: MeshSettings, log=print) -> tuple[list[DepthView], dict]:
    """The views to fuse: training views' depth (sensor and/or rendered) and interpolated rendered views."""

    frame = WorldFrame.of_pipeline(pipeline)
    model = pipeline.model.eval()
    sampler = getattr(model, "proposal_sampler", None)
    if settings.export_samples is not None and sampler is not None:
        sampler.num_proposal_samples_per_ray = tuple(settings.export_samples[:2])
        sampler.num_nerf_samples_per_ray = settings.export_samples[2]
    dataset = pipeline.datamanager.train_dataset
    cameras = dataset.cameras
    poses = refined_poses(pipeline, cameras).cpu() if settings.poses == "refined" else cameras.camera_to_worlds
    views: list[DepthView] = []
    stats = {"rendered_rays": 0, "render_seconds": 0.0, "views": 0, "rendered_views": 0}

    def render(camera: Cameras, pixels: np.ndarray | None) -> DepthView:
        start = time.perf_counter()
        out = render_depth(model, camera.to(pipeline.device), frame, pixels)
        stats["render_seconds"] += time.perf_counter() - start
        stats["rendered_rays"] += int(out.depth.size if pixels is None else pixels.sum())
        unsure = out.accumulation < settings.min_accumulation
        if settings.max_depth_spread is not None:
            unsure |= out.spread > settings.max_depth_spread
        z = np.where(unsure, 0.0, out.depth).astype(np.float32)
        K = camera.get_intrinsics_matrices()[0].numpy().astype(np.float64)
        c2w = frame.pose_to_world(camera.camera_to_worlds[0].numpy().astype(np.float64))
        return keep_inside(DepthView(out.rgb, z, K, c2w, rendered=True), frame, settings.box_margin)

    for i in range(len(cameras)):
        camera = cameras[i : i + 1].to("cpu")
        camera.camera_to_worlds = poses[i : i + 1].to(camera.camera_to_worlds.dtype)
        small = cameras[i : i + 1].to("cpu")
        small.camera_to_worlds = camera.camera_to_worlds.clone()
        small.rescale_output_resolution(1.0 / settings.downscale)
        pixels = None
        if settings.depth == "sensor-filled":
            data = dataset[i]
            sensor = data["depth_image"][..., 0].numpy() / frame.scale
            rgb = (data["image"][..., :3].clamp(0, 1).numpy() * 255 + 0.5).astype(np.uint8)
            K = camera.get_intrinsics_matrices()[0].numpy().astype(np.float64)
            c2w = frame.pose_to_world(camera.camera_to_worlds[0].numpy().astype(np.float64))
            views.append(keep_inside(DepthView(rgb, sensor.astype(np.float32), K, c2w), frame, settings.box_margin))
            pixels = holes_at(sensor, (int(small.width), int(small.height)))
            if not pixels.any():
                stats["views"] += 1
                continue
        views.append(render(small, pixels))
        stats["views"] += 1
        stats["rendered_views"] += 1
        if (i + 1) % 10 == 0:
            log(f"  {i + 1}/{len(cameras)} training views, {stats['rendered_rays']} rays rendered")
    if settings.views_between > 0:
        between = interpolated_poses(poses.numpy().astype(np.float64), settings.views_between)
        for j, pose in enumerate(between):
            k = min(j // settings.views_between, len(cameras) - 1)
            small = cameras[k : k + 1].to("cpu")
            small.camera_to_worlds = torch.from_numpy(pose[None]).to(small.camera_to_worlds.dtype)
            small.rescale_output_resolution(1.0 / settings.downscale)
            views.append(render(small, None))
            stats["rendered_views"] += 1
    return views, stats


def export_mesh(pipeline: Pipeline, settings: MeshSettings, log=print) -> tuple[o3d.geometry.TriangleMesh, dict]:
    """The run's surface in the scene's world frame (metres), cropped to its scene box, and what it cost."""
    start = time.perf_counter()
    frame = WorldFrame.of_pipeline(pipeline)
    views, stats = collect_views(pipeline, settings, log)
    if settings.seen_through_margin is not None:
        views = drop_seen_through(views, settings.seen_through_margin, settings.seen_through_per_metre)
    fuse_start = time.perf_counter()
    if settings.method == "tsdf":
        mesh = fuse_views(views, settings.voxel, settings.truncation, frame.diagonal(), settings.weight_threshold)
    else:
        mesh = poisson_mesh(views, settings.voxel)
    mesh = crop_to_box(mesh, frame)
    stats.update(fuse_seconds=time.perf_counter() - fuse_start, seconds=time.perf_counter() - start)
    return mesh, stats


@dataclass
class ExportMesh(MeshSettings):
    """Export a diffnerf (or any nerfacto-family) run as a mesh in the scene's world frame, bounded by its box."""

    load_config: Path = tyro.MISSING
    """The run's config.yml."""
    output_dir: Path = Path("exports/mesh")
    normals: bool = False
    """Write per-vertex normals (from the mesh's faces)."""
    threads: int | None = None
    """torch threads while rendering (default: torch's)."""

    def main(self) -> Path:
        import open3d as o3d
        from nerfstudio.utils.eval_utils import eval_setup

        if self.threads:
            torch.set_num_threads(self.threads)
        _, pipeline, _, _ = eval_setup(self.load_config)
        settings = MeshSettings(**{k: getattr(self, k) for k in MeshSettings.__dataclass_fields__})
        mesh, stats = export_mesh(pipeline, settings)
        if self.normals:
            mesh.compute_vertex_normals()
        self.output_dir.mkdir(parents=True, exist_ok=True)
        path = self.output_dir / "mesh.ply"
        o3d.io.write_triangle_mesh(str(path), mesh, write_vertex_normals=self.normals)
        record = {
            "config": str(self.load_config),
            "settings": asdict(settings),
            "frame": "scene world, metres",
            "vertices": len(mesh.vertices),
            "triangles": len(mesh.triangles),
            **stats,
        }
        (self.output_dir / "mesh.json").write_text(json.dumps(record, indent=2))
        print(
            f"mesh: {path} ({len(mesh.triangles)} triangles, scene world frame, metres); "
            f"{stats['views']} training views + {stats['rendered_views']} rendered, "
            f"{stats['rendered_rays']} rays in {stats['render_seconds']:.0f} s; total {stats['seconds']:.0f} s"
        )
        lo, hi = (" ".join(f"{x:.3f}" for x in corner) for corner in WorldFrame.of_pipeline(pipeline).aabb)
        print(f"the run's scene box, for nerfstudio's exporters: --bounding-box-min {lo} --bounding-box-max {hi}")
        return path


def entrypoint() -> None:
    tyro.cli(ExportMesh).main()


if __name__ == "__main__":
    entrypoint()
