"""Contraction around the fitted room box: the box is the inner cube, space past it stays representable."""

from __future__ import annotations

import torch
from nerfstudio.cameras.rays import RayBundle
from nerfstudio.data.scene_box import SceneBox

from diffnerf_ns.fields.box_contraction import BoxContraction
from diffnerf_ns.models.diffnerf_model import DiffNerfModel, DiffNerfModelConfig
from diffnerf_ns.presets import small_model

AABB = torch.tensor([[-1.0, -3.0, 0.0], [5.0, 1.0, 2.5]])  # a metric room box, off-centre and not a cube


def test_box_is_the_inner_cube() -> None:
    """Catches contracting raw metric coordinates (nerfacto's unit cube: a 6 m room would be squeezed into the
    shell) and a missing per-axis scale or centre shift: inside the box the map must be the affine box -> cube."""
    contraction = BoxContraction(AABB)
    assert torch.allclose(contraction(AABB), torch.tensor([[-1.0, -1, -1], [1, 1, 1]]))
    inside = torch.tensor([[4.0, -2.0, 0.5]])
    expected = (inside - AABB.mean(0)) / ((AABB[1] - AABB[0]) / 2)
    assert torch.allclose(contraction(inside), expected)


def test_outside_the_box_is_contracted_not_clipped() -> None:
    """Catches clamping to the box (everything past a wall lands on it) or no contraction at all (output
    leaves the [-2, 2] cube the hash grid reads): far points must stay distinct, ordered and inside (-2, 2)."""
    contraction = BoxContraction(AABB)
    beyond = torch.tensor([[5.0 + d, -1.0, 1.25] for d in (1.0, 3.0, 30.0, 3000.0)])  # past the +x wall
    x = contraction(beyond)[:, 0]
    assert (x > 1).all() and (x < 2).all()
    assert (x.diff() > 1e-3).all()


def _model(contract: bool) -> DiffNerfModel:
    config = small_model(DiffNerfModelConfig(implementation="torch", disable_scene_contraction=not contract))
    return config.setup(scene_box=SceneBox(aabb=AABB), num_train_data=2)


def test_model_rays_run_past_the_box_only_with_contraction() -> None:
    """Catches the option being a no-op (rays still clipped to the box, so a window 4 m past the wall has no
    place to be) and contracting only the field while the proposal networks still read uncontracted
    positions (they would sample the wrong space)."""

    def far(model: DiffNerfModel) -> float:  # a fresh bundle each time: colliders keep nears/fars already set
        rays = RayBundle(
            origins=torch.tensor([[2.0, -1.0, 1.25]]),
            directions=torch.tensor([[1.0, 0.0, 0.0]]),
            pixel_area=torch.ones(1, 1),
            camera_indices=torch.zeros(1, 1, dtype=torch.long),
        )
        return float(model.collider(rays).fars)

    bounded, unbounded = _model(contract=False), _model(contract=True)
    assert far(bounded) <= 3.0 + 1e-4  # the +x wall is 3 m away
    assert far(unbounded) > 100.0
    assert bounded.field.spatial_distortion is None
    for network in (unbounded.field, *unbounded.proposal_networks):
        assert isinstance(network.spatial_distortion, BoxContraction)
