"""Density-gradient normals are rendered only when something asks for them."""

from __future__ import annotations

import pytest
import torch
from nerfstudio.cameras.cameras import Cameras
from nerfstudio.data.scene_box import SceneBox

from diffnerf_ns.models.diffnerf_model import DiffNerfModel, DiffNerfModelConfig
from diffnerf_ns.presets import small_model


def _model() -> DiffNerfModel:
    torch.manual_seed(0)
    config = small_model(DiffNerfModelConfig(implementation="torch"))
    return config.setup(scene_box=SceneBox(aabb=torch.tensor([[-1.0, -1, -1], [1, 1, 1]])), num_train_data=2)


def test_normals_only_when_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    """Catches the density-normals pass running on every camera render (ns-eval, viewer, ns-render: it
    doubles their time), and the opposite bug: ns-export pointcloud (a model call on rays) or the
    viewer's checkbox no longer getting normals."""
    model = _model().eval()
    camera = Cameras(camera_to_worlds=torch.eye(4)[None, :3], fx=4.0, fy=4.0, cx=4.0, cy=3.0, width=8, height=6)
    calls = []
    monkeypatch.setattr(model, "density_normals", lambda rays: calls.append(1) or torch.zeros(*rays.shape, 3))
    assert "normals" not in model.get_outputs_for_camera(camera)
    assert not calls
    model.camera_normals_switch.value = True
    assert "normals" in model.get_outputs_for_camera(camera)
    model.camera_normals_switch.value = False
    rays = camera.generate_rays(camera_indices=0).flatten()
    with torch.no_grad():
        assert "normals" in model(rays)
