"""The depth loss's occluding-edge weight (issue #19.5): depth a pixel off its colour must not cost colour."""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path

import numpy as np
import torch
from nerfstudio.engine.trainer import Trainer

from data_converters.depth_alignment import distance_to_discontinuity
from diffnerf_ns.diffnerf_config import diffnerf_method
from diffnerf_ns.models.diffnerf_model import depth_edge_weights
from diffnerf_ns.presets import configure_run


def test_edge_weight_lower_at_an_edge_than_on_a_plane() -> None:
    """Catches the weight map inverted (edges trusted, planes not) or the band off by one (the two pixels at the
    jump itself must be inside a band of 1)."""
    depth = np.full((20, 30), 2.0, np.float32)
    depth[:, 15:] = 3.5
    distance = torch.from_numpy(np.round(distance_to_discontinuity(depth)).astype(np.uint8))
    weight = depth_edge_weights(distance, band=1, weight=0.1)
    assert torch.all(weight[:, 14:16] == 0.1) and torch.all(weight[:, 16:] == 1) and torch.all(weight[:, :14] == 1)
    wide = depth_edge_weights(distance, band=3, weight=0.0)
    assert torch.all(wide[:, 12:18] == 0) and torch.all(wide[:, :12] == 1) and torch.all(wide[:, 18:] == 1)


def test_edge_band_scales_the_depth_gradient_of_edge_rays(demo_scene: Path, tmp_path: Path) -> None:
    """Through the datamanager and the model: every training ray carries its distance to a depth edge, and with the
    band on, a ray inside it gets `depth_edge_weight` times the depth-loss gradient, a ray outside the full one.
    Catches the distance never reaching the batch, the flag read but not applied, and the band acting when off."""
    torch.manual_seed(0)
    config = configure_run(diffnerf_method.config, demo_scene, tmp_path, iterations=2, rays_per_batch=64)
    model_config = dataclasses.replace(config.pipeline.model, depth_edge_band=2, depth_edge_weight=0.25)
    config.pipeline = dataclasses.replace(config.pipeline, model=model_config)
    trainer = Trainer(config)
    trainer.setup()
    model = trainer.pipeline.model
    model.train()
    bundle, batch = trainer.pipeline.datamanager.next_train(0)
    assert batch["depth_edge_distance"].shape == batch["depth_image"].shape
    assert batch["depth_edge_distance"].dtype == torch.uint8

    def depth_grad(distance: int, band: int) -> torch.Tensor:
        model.config.depth_edge_band = band
        model.field.zero_grad()
        torch.manual_seed(0)  # same stratified samples in every call
        edge = torch.full_like(batch["depth_edge_distance"], distance)
        outputs = model(copy.copy(bundle))
        model.get_metrics_dict(outputs, {**batch, "depth_edge_distance": edge})["depth_loss"].backward()
        return torch.cat([p.grad.flatten() for p in model.field.parameters() if p.grad is not None])

    off = depth_grad(0, band=0)
    at_edge, far = depth_grad(0, band=2), depth_grad(20, band=2)
    assert off.abs().sum() > 0
    assert torch.allclose(far, off, rtol=1e-4, atol=1e-12)
    assert torch.allclose(at_edge, 0.25 * off, rtol=1e-4, atol=1e-12)
