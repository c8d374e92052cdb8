"""diffnerf-export-mesh on an analytic scene: a wall seen by nerfstudio cameras in a rotated, shifted, scaled frame.

A fake model renders the wall exactly the way nerfstudio's renderer reports depth (distance along unit-length rays,
in the dataparser's normalised frame), so every conversion the exporter makes is checked against known geometry.
"""

from __future__ import annotations

from collections.abc import Callable
from types import SimpleNamespace

import numpy as np
import torch
from nerfstudio.cameras.cameras import Cameras
from nerfstudio.cameras.rays import RayBundle
from scipy.spatial.transform import Rotation

from diffnerf_ns.export_mesh import (
    DepthView,
    MeshSettings,
    WorldFrame,
    backproject_view,
    drop_seen_through,
    export_mesh,
    fuse_views,
    mesh_depth,
    render_depth,
)

WALL_Z = 1.513
"""The wall is the plane z = WALL_Z (metres) of the world frame; the camera at the origin looks at it along +z."""


def make_frame(scale: float = 0.4) -> WorldFrame:
    """A dataparser frame that rotates, shifts and scales the world (as nerfstudio's auto-scaling parsers do); its
    box holds the world region x, y in [-0.5, 0.5] m, z in [0.5, 2.5] m: the wall sticks out of it sideways."""
    R = Rotation.from_euler("xyz", [20, -35, 60], degrees=True).as_matrix()
    t = np.array([0.3, -0.2, 0.5])
    frame = WorldFrame(np.hstack([R, t[:, None]]), scale, np.zeros((2, 3)))
    corners = np.array([[x, y, z] for x in (-0.5, 0.5) for y in (-0.5, 0.5) for z in (0.5, 2.5)])
    # An axis-aligned box in the normalised frame: the tightest one around the world region, then that region's
    # test uses `frame.inside`, so the exact extent does not matter.
    normalised = frame.to_normalised(corners)
    frame.aabb = np.stack([normalised.min(0), normalised.max(0)])
    return frame


def world_camera(frame: WorldFrame, size: tuple[int, int] = (48, 36), focal: float = 20.0) -> Cameras:
    """A wide (100 degree) camera at the world origin looking along world +z, expressed in the normalised frame."""
    c2w_cv = np.eye(4)
    R, t = frame.transform[:, :3], frame.transform[:, 3]
    c2w_gl = c2w_cv @ np.diag([1.0, -1.0, -1.0, 1.0])  # OpenCV -> OpenGL axes
    rot = R @ c2w_gl[:3, :3]
    centre = frame.scale * (R @ c2w_gl[:3, 3] + t)
    pose = torch.from_numpy(np.hstack([rot, centre[:, None]])).float()[None]
    w, h = size
    return Cameras(camera_to_worlds=pose, fx=focal, fy=focal, cx=w / 2, cy=h / 2, width=w, height=h)


def camera_K(camera: Cameras) -> np.ndarray:
    return camera.get_intrinsics_matrices()[0].numpy().astype(np.float64)


class WallModel(torch.nn.Module):
    """Renders the wall like nerfstudio: depth is distance along the (unit) ray in the normalised frame."""

    def __init__(self, frame: WorldFrame):
        super().__init__()
        self.frame = frame
        self.rays_rendered = 0

    def get_outputs_for_camera_ray_bundle(self, bundle) -> dict[str, torch.Tensor]:
        f = self.frame
        R, t = torch.from_numpy(f.transform[:, :3]).float(), torch.from_numpy(f.transform[:, 3]).float()
        # The wall in the normalised frame: points p with (R^T (p / s - t))_z = WALL_Z.
        normal = R[:, 2]  # world z axis, in normalised coordinates
        offset = f.scale * (WALL_Z + normal @ t)  # n . p = offset on the wall
        o, d = bundle.origins, bundle.directions
        dist = (offset - o @ normal) / (d @ normal)
        hit = dist > 0
        self.rays_rendered += int(np.prod(o.shape[:-1]))
        depth = torch.where(hit, dist, torch.zeros_like(dist))[..., None]
        return {
            "depth": depth,
            "expected_depth": depth,
            "directions_norm": bundle.metadata["directions_norm"],
            "accumulation": hit.float()[..., None],
            "rgb": torch.full((*o.shape[:-1], 3), 0.5),
        }


def test_rendered_depth_is_planar_metres_in_the_world() -> None:
    """Catches ray distance fused as planar z (a 100-degree view bends the wall by up to 50%) and a missing dataparser
    scale (every point at 1/0.4 of its distance): back-projected rendered depth must lie on the world wall."""
    frame = make_frame()
    camera = world_camera(frame)
    out = render_depth(WallModel(frame), camera, frame)
    rgb, z = out.rgb, out.depth
    assert (out.accumulation > 0).all() and (out.spread == 0).all()
    K = camera_K(camera)
    c2w = frame.pose_to_world(camera.camera_to_worlds[0].numpy().astype(np.float64))
    np.testing.assert_allclose(c2w, np.eye(4), atol=1e-5)
    np.testing.assert_allclose(z, WALL_Z, atol=1e-4)  # a fronto-parallel wall: planar depth is constant
    points = backproject_view(DepthView(rgb, z, K, c2w))
    np.testing.assert_allclose(points[:, 2], WALL_Z, atol=1e-4)


class FakeDataset:
    """nerfstudio's depth dataset contract: depth in the normalised frame's units (metres x dataparser scale)."""

    def __init__(self, cameras: Cameras, depth_m: np.ndarray, scale: float):
        self.cameras = cameras
        self.depth = depth_m * scale

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        h, w = self.depth.shape
        return {"image": torch.full((h, w, 3), 0.25), "depth_image": torch.from_numpy(self.depth)[..., None].float()}


def fake_pipeline(frame: WorldFrame, sensor_depth: np.ndarray, camera: Cameras) -> SimpleNamespace:
    outputs = SimpleNamespace(
        dataparser_transform=torch.from_numpy(frame.transform).float(),
        dataparser_scale=frame.scale,
        scene_box=SimpleNamespace(aabb=torch.from_numpy(frame.aabb).float()),
    )
    datamanager = SimpleNamespace(
        train_dataparser_outputs=outputs, train_dataset=FakeDataset(camera, sensor_depth, frame.scale)
    )
    return SimpleNamespace(datamanager=datamanager, model=WallModel(frame), device=torch.device("cpu"))


def test_sensor_filled_mesh_is_bounded_metric_and_fills_holes() -> None:
    """Catches the sensor depth fused in the normalised frame's units (the wall at 0.4 x 1.5 m), an unbounded box
    (the wall is 3.6 m wide in view, the box 1 m), holes left open, and rendering more than the holes."""
    frame = make_frame()
    camera = world_camera(frame)
    h, w = 36, 48
    sensor = np.full((h, w), WALL_Z, np.float32)
    sensor[8:24, 12:32] = 0.0  # a hole of 16 x 20 pixels
    pipeline = fake_pipeline(frame, sensor, camera)
    settings = MeshSettings(voxel=0.02, truncation=0.06, downscale=2, box_margin=0.0, weight_threshold=0.5)
    mesh, stats = export_mesh(pipeline, settings, log=lambda *_: None)
    vertices = np.asarray(mesh.vertices)
    assert len(vertices) > 100
    np.testing.assert_allclose(vertices[:, 2], WALL_Z, atol=0.011)  # on the wall, in metres
    assert frame.inside(vertices, margin=-0.03).all()  # inside the box (a voxel of slack)
    wall = backproject_view(
        DepthView(np.zeros((h, w, 3), np.uint8), np.full((h, w), WALL_Z), camera_K(camera), np.eye(4))
    )
    assert (~frame.inside(wall, margin=-0.03)).mean() > 0.3  # so an unbounded export would show
    # The hole (world x, y within the hole's footprint on the wall) is covered by the rendered depth.
    K = camera_K(camera)
    hole_x = (np.array([12, 32]) - K[0, 2]) / K[0, 0] * WALL_Z
    hole_y = (np.array([8, 24]) - K[1, 2]) / K[1, 1] * WALL_Z
    inside_hole = (
        (vertices[:, 0] > hole_x[0] + 0.05) & (vertices[:, 0] < hole_x[1] - 0.05)
        & (vertices[:, 1] > hole_y[0] + 0.05) & (vertices[:, 1] < hole_y[1] - 0.05)
    )  # fmt: skip
    assert inside_hole.sum() > 20
    # Only the hole's pixels were rendered, at half resolution: 8 x 10.
    assert stats["rendered_rays"] == pipeline.model.rays_rendered == 80


def sensorless_pipeline(edit: Callable[[RayBundle, dict], dict]) -> tuple[SimpleNamespace, WorldFrame]:
    """A wall scene without sensor depth whose model's renders pass through `edit(bundle, outputs)`."""
    frame = make_frame()
    pipeline = fake_pipeline(frame, np.zeros((36, 48), np.float32), world_camera(frame))
    inner = pipeline.model.get_outputs_for_camera_ray_bundle
    pipeline.model.get_outputs_for_camera_ray_bundle = lambda bundle: edit(bundle, inner(bundle))
    return pipeline, frame


def test_rendered_mode_without_surface_fuses_nothing() -> None:
    """Catches fusing rays that hit nothing (accumulation 0: nerfstudio still reports a depth) as a surface."""
    pipeline, _ = sensorless_pipeline(
        lambda _, out: {
            **out, "depth": torch.full_like(out["depth"], 0.5), "accumulation": torch.zeros_like(out["depth"])
        }
    )  # fmt: skip
    mesh, _ = export_mesh(
        pipeline, MeshSettings(depth="rendered", downscale=1, weight_threshold=0.5), log=lambda *_: None
    )
    assert len(mesh.triangles) == 0


def test_mesh_depth_is_planar_z() -> None:
    """Catches scoring a mesh by ray distance instead of planar z (a 100-degree view of a flat wall would show
    depth growing towards the corners), a flipped camera, and a coarse view fused with gaps (its 7.6 cm pixels are
    wider than two 2 cm voxels: Open3D then leaves three quarters of the wall unmeshed, in stripes)."""
    frame = make_frame()
    camera = world_camera(frame)
    h, w = 36, 48
    K = camera_K(camera)
    wall = np.full((h, w), WALL_Z, np.float32)
    mesh = fuse_views([DepthView(np.zeros((h, w, 3), np.uint8), wall, K, np.eye(4))], 0.02, 0.06, 8.0, 0.5)
    z = mesh_depth(mesh, K, np.eye(4), h, w)
    hit = z > 0
    assert hit[4:-4, 4:-4].all()
    np.testing.assert_allclose(z[hit], WALL_Z, atol=0.011)
    behind = np.diag([1.0, -1.0, -1.0, 1.0])  # the same camera turned around: sees nothing
    assert (mesh_depth(mesh, K, behind, h, w) == 0).all()


def test_whole_image_renders_skip_density_normals(monkeypatch) -> None:
    """Catches `ns-export tsdf` (nerfstudio's `render_trajectory` calls `get_outputs_for_camera_ray_bundle` on whole
    images) paying for the density-normals pass it never reads (9.8 s instead of 7.8 s per 80x60 view of the demo
    model on one CPU thread). Ray batches (`ns-export pointcloud`) still get normals."""
    from nerfstudio.data.scene_box import SceneBox

    from diffnerf_ns.models.diffnerf_model import DiffNerfModelConfig
    from diffnerf_ns.presets import small_model

    torch.manual_seed(0)
    config = small_model(DiffNerfModelConfig(implementation="torch"))
    model = config.setup(scene_box=SceneBox(aabb=torch.tensor([[-1.0, -1, -1], [1, 1, 1]])), num_train_data=2).eval()
    camera = Cameras(camera_to_worlds=torch.eye(4)[None, :3], fx=4.0, fy=4.0, cx=4.0, cy=3.0, width=8, height=6)
    calls = []
    monkeypatch.setattr(model, "density_normals", lambda rays: calls.append(1) or torch.zeros(*rays.shape, 3))
    image = camera.generate_rays(camera_indices=0, keep_shape=True)
    assert "normals" not in model.get_outputs_for_camera_ray_bundle(image)
    assert not calls
    with torch.no_grad():
        assert "normals" in model(image.flatten())


def test_rendered_pixels_spread_over_depth_are_not_fused() -> None:
    """Catches the spread filter inverted or skipped: rays whose expected termination lies 0.3 m behind their median
    (density smeared along the ray) must not reach the mesh; the others must."""

    def smeared_left_half(bundle: RayBundle, out: dict) -> dict:
        x_world = (bundle.directions @ torch.from_numpy(frame.transform[:, :3]).float())[..., :1]
        left = x_world < 0
        return {**out, "expected_depth": out["depth"] + left.float() * 0.3 * frame.scale}

    pipeline, frame = sensorless_pipeline(smeared_left_half)
    settings = MeshSettings(depth="rendered", downscale=1, weight_threshold=0.5, box_margin=0.0)
    vertices = np.asarray(export_mesh(pipeline, settings, log=lambda *_: None)[0].vertices)
    assert len(vertices) > 50
    assert (vertices[:, 0] > -0.03).all()  # nothing from the smeared half (a voxel and a half of slack)
    everything = MeshSettings(
        depth="rendered", downscale=1, weight_threshold=0.5, box_margin=0.0, max_depth_spread=None
    )
    assert (np.asarray(export_mesh(pipeline, everything, log=lambda *_: None)[0].vertices)[:, 0] < -0.1).any()


def test_rendered_points_in_measured_free_space_are_dropped() -> None:
    """Catches the free-space test's comparison reversed (dropping occluded points, keeping floaters), points
    projected with the wrong pose, and sensor views' own depth being filtered."""
    K = np.array([[40.0, 0, 24], [0, 40.0, 18], [0, 0, 1]])
    wall = np.full((36, 48), 2.0, np.float32)
    sensor = DepthView(np.zeros((36, 48, 3), np.uint8), wall, K, np.eye(4))
    side = np.eye(4)
    side[0, 3] = 0.5  # the rendered view stands 0.5 m to the right, looking the same way
    rendered = np.zeros((36, 48), np.float32)
    rendered[18, 10] = 1.0  # a floater 1 m in front of the wall the sensor measured: seen through
    rendered[18, 30] = 3.0  # behind the wall: occluded for the sensor, kept
    rendered[18, 20] = 1.97  # within the sensor's noise of the wall: kept
    rendered[18, 47] = 1.0  # outside the sensor's view: kept
    view = DepthView(np.zeros((36, 48, 3), np.uint8), rendered, K, side, rendered=True)
    kept_sensor, kept = drop_seen_through([sensor, view], 0.03, 0.02)
    assert kept_sensor is sensor
    assert kept.depth[18, 10] == 0.0
    np.testing.assert_array_equal(kept.depth[18, [30, 20, 47]], np.float32([3.0, 1.97, 1.0]))
