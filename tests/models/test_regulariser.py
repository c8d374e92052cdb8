"""The DiffusioNeRF patch regulariser inside diffnerf: valid patch cameras, gradients reach the field."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch
from nerfstudio.engine.trainer import Trainer

from diffnerf_ns.diffnerf_config import diffnerf_method
from diffnerf_ns.models.patch_regulariser import PatchRegulariserConfig
from diffnerf_ns.presets import configure_run
from diffnerf_ns.prior.sources import frames_from_scene
from diffnerf_ns.prior.train import TrainConfig, train_prior

TINY_PRIOR = TrainConfig(
    patch_size=16, block_out_channels=(16, 32), layers_per_block=1, attention=False, steps=40, batch_size=8,
    lr=1e-3, warmup_steps=5, ema_decay=0.9, checkpoint_every=1000,
)


@pytest.fixture(scope="module")
def scene_prior(demo_scene: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("scene_prior")
    train_prior(frames_from_scene(demo_scene), dataclasses.replace(TINY_PRIOR, out=out))
    return out


def make_trainer(demo_scene: Path, out: Path, prior: Path | None, **regulariser) -> Trainer:
    torch.manual_seed(0)
    config = configure_run(diffnerf_method.config, demo_scene, out, iterations=4, rays_per_batch=64)
    model = dataclasses.replace(
        config.pipeline.model, regulariser=PatchRegulariserConfig(prior_path=prior, **regulariser)
    )
    config.pipeline = dataclasses.replace(config.pipeline, model=model)
    trainer = Trainer(config)
    trainer.setup()
    return trainer


def test_patch_cameras_inside_box_and_looking_into_scene(demo_scene: Path, scene_prior: Path, tmp_path: Path) -> None:
    trainer = make_trainer(demo_scene, tmp_path, scene_prior, jitter_translation=0.5, jitter_rotation=0.5)
    reg = trainer.pipeline.model.regulariser
    lo, hi = reg.box_lo, reg.box_hi
    for index in range(len(reg.cameras)):
        for _ in range(10):
            camera, x0, y0 = reg.patch_camera(index, jitter=True)
            centre = camera.camera_to_worlds[0, :3, 3]
            assert torch.all(centre > lo) and torch.all(centre < hi)
            assert 0 <= x0 <= int(reg.cameras.width[index]) - 16 and 0 <= y0 <= int(reg.cameras.height[index]) - 16
            # Every patch ray, cast from inside the box, hits the room box at a positive distance.
            bundle = trainer.pipeline.model.collider(camera.generate_rays(camera_indices=0).flatten())
            assert torch.all(bundle.fars > bundle.nears) and torch.all(bundle.nears >= 0)
            # The jittered view turns away from its training view by at most the jitter angle.
            fwd = -camera.camera_to_worlds[0, :3, 2]
            fwd0 = -reg.cameras.camera_to_worlds[index, :3, 2]
            assert float(torch.dot(fwd, fwd0)) > np.cos(0.5) - 1e-5


def field_update(trainer: Trainer) -> torch.Tensor:
    before = torch.cat([p.detach().flatten().clone() for p in trainer.pipeline.model.field.parameters()])
    trainer.train_iteration(0)
    return torch.cat([p.detach().flatten() for p in trainer.pipeline.model.field.parameters()]) - before


def test_regulariser_gradient_reaches_the_field(demo_scene: Path, scene_prior: Path, tmp_path: Path) -> None:
    trainer = make_trainer(demo_scene, tmp_path, scene_prior, gt_rgb_probability=0.0)
    model = trainer.pipeline.model
    model.train()
    trainer.pipeline.model.regulariser.step = 0
    losses = model.regulariser.loss_dict({})
    total = losses["prior_rgb_loss"] + losses["prior_depth_loss"]
    model.field.zero_grad()
    total.backward()
    grads = [p.grad for p in model.field.parameters() if p.grad is not None]
    assert grads, "no field parameter received a gradient from the regulariser"
    flat = torch.cat([g.flatten() for g in grads])
    assert torch.isfinite(flat).all() and flat.abs().sum() > 0


def test_regulariser_changes_the_training_step(demo_scene: Path, scene_prior: Path, tmp_path: Path) -> None:
    with_prior = field_update(make_trainer(demo_scene, tmp_path / "on", scene_prior, rgb_weight=1.0, depth_weight=1.0))
    without = field_update(make_trainer(demo_scene, tmp_path / "off", None))
    assert torch.isfinite(with_prior).all()
    assert not torch.allclose(with_prior, without), "the regulariser did not change the update"


def test_viewer_switch_and_score_output(demo_scene: Path, scene_prior: Path, tmp_path: Path) -> None:
    trainer = make_trainer(demo_scene, tmp_path, scene_prior)
    model = trainer.pipeline.model
    camera = trainer.pipeline.datamanager.train_dataset.cameras[0:1]
    score = model.get_outputs_for_camera(camera)["prior_score"]
    assert score.shape == (48, 64, 1) and torch.isfinite(score).all() and (score >= 0).all() and score.max() > 0
    model.train()
    assert set(model.regulariser.loss_dict({})) == {"prior_rgb_loss", "prior_depth_loss"}
    model.prior_regulariser_switch.value = False  # what unticking the viewer checkbox does
    assert model.regulariser.loss_dict({}) == {}
