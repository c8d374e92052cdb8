"""Ray distance vs planar z-depth, pinned on a tilted camera looking at a known plane."""

from __future__ import annotations

import numpy as np
import torch
from nerfstudio.cameras.cameras import Cameras, CameraType
from scipy.spatial.transform import Rotation

from diffnerf_ns.depth_convention import ray_to_z_depth, z_to_ray_depth


def test_z_depth_of_a_tilted_camera_over_a_floor() -> None:
    """Catches ray distance used as z-depth (off by up to 1/cos of the off-axis angle, ~25% at these corners)
    and a multiply-instead-of-divide by directions_norm. Truth is solved per pixel from the pinhole model,
    independently of nerfstudio's ray directions."""
    w, h, f = 40, 30, 20.0  # wide field of view: 90 x 74 degrees
    height = 2.0  # camera 2 m above the floor z = 0, looking down and tilted 35 degrees off nadir
    R = Rotation.from_euler("x", 35, degrees=True).as_matrix()  # OpenGL camera: looks along -z, i.e. down at 0
    c2w = torch.tensor(np.hstack([R, [[0.3], [-0.2], [height]]]), dtype=torch.float32)
    camera = Cameras(
        camera_to_worlds=c2w[None],
        fx=f,
        fy=f,
        cx=w / 2,
        cy=h / 2,
        width=w,
        height=h,
        camera_type=CameraType.PERSPECTIVE,
    )
    bundle = camera.generate_rays(camera_indices=0)
    t = -bundle.origins[..., 2] / bundle.directions[..., 2]  # distance along the unit ray to the floor
    assert (t > 0).all()
    z = ray_to_z_depth(t[..., None], bundle.metadata["directions_norm"])[..., 0]

    # Independent truth: pixel centre (u, v) -> camera ray (x, -y, -1) in OpenGL axes; z solves height + z (R d)_z = 0.
    u, v = np.meshgrid(np.arange(w) + 0.5, np.arange(h) + 0.5)
    d_cam = np.stack([(u - w / 2) / f, -(v - h / 2) / f, -np.ones_like(u)], -1)
    truth = -height / (d_cam @ R.T)[..., 2]
    np.testing.assert_allclose(z.numpy(), truth, rtol=1e-5)
    assert np.abs(t.numpy() / truth - 1).max() > 0.2  # the wrong convention is far off at the corners
    np.testing.assert_allclose(z_to_ray_depth(z[..., None], bundle.metadata["directions_norm"])[..., 0], t, rtol=1e-6)
