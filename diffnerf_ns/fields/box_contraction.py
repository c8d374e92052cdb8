"""Scene contraction around a fitted room box (nerfacto's contraction, in box-normalised coordinates).

nerfacto contracts space outside the unit cube of its auto-scaled world. diffnerf keeps metric units and
fits a box to the room instead, so the unit cube would be an arbitrary 2 m cube around the camera path.
Normalising by the box first makes the box the contraction's inner cube: the hash grid keeps resolving the
room uniformly, and whatever lies past the box (windows, doorways, far walls the box fit cut off) still has
somewhere to be, at decreasing resolution, instead of being painted onto the box's walls.
"""

from __future__ import annotations

import torch
from nerfstudio.field_components.spatial_distortions import SceneContraction, SpatialDistortion


class BoxContraction(SpatialDistortion):
    """Maps `aabb` (2, 3) affinely onto [-1, 1]^3, then applies nerfacto's L-inf contraction (output in [-2, 2]^3)."""

    def __init__(self, aabb: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("centre", (aabb[0] + aabb[1]) / 2)
        self.register_buffer("half_size", (aabb[1] - aabb[0]) / 2)
        self.contraction = SceneContraction(order=float("inf"))

    def forward(self, positions: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return self.contraction((positions - self.centre) / self.half_size)
