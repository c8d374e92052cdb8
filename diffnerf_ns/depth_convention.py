"""Planar z-depth versus distance along the ray: the one place the two are converted.

nerfstudio renders `depth` as the distance along each ray, while sensors, datasets and the prior
use planar z-depth. For a ray whose (unnormalised) camera direction has z-component 1, the two
differ by the norm of that direction, which the renderer outputs as `directions_norm`.
"""

from __future__ import annotations

import torch


def ray_to_z_depth(ray_distance: torch.Tensor, directions_norm: torch.Tensor) -> torch.Tensor:
    """Distance along the ray to planar z-depth (divide by the camera direction's norm)."""
    return ray_distance / directions_norm


def z_to_ray_depth(z_depth: torch.Tensor, directions_norm: torch.Tensor) -> torch.Tensor:
    """Planar z-depth to distance along the ray (the inverse of `ray_to_z_depth`)."""
    return z_depth * directions_norm
