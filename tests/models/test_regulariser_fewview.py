"""Few views: a prior fitted on the scene's own training patches improves held-out depth."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from nerfstudio.engine.trainer import Trainer

from data_converters.nerfstudio_scene import split_view
from diffnerf_ns.diffnerf_config import diffnerf_few_view_method
from diffnerf_ns.metrics import depth_metrics
from diffnerf_ns.presets import configure_run
from diffnerf_ns.prior.sources import frames_from_scene
from diffnerf_ns.prior.train import TrainConfig, train_prior

ITERATIONS = 120


@pytest.fixture(scope="module")
def few_view(demo_scene: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """3 training views of the demo room, and a tiny prior fitted on the patches of those 3 views only."""
    root = tmp_path_factory.mktemp("few_view")
    scene = split_view(demo_scene, root / "scene", num_train=3)
    train = set(json.loads((scene / "transforms.json").read_text())["train_filenames"])
    frames = [f for f in frames_from_scene(demo_scene) if f"images/{Path(f.name).name}" in train]
    assert len(frames) == 3
    prior = TrainConfig(
        out=root / "prior", patch_size=16, block_out_channels=(32, 64), layers_per_block=1, attention=False,
        steps=1500, batch_size=16, lr=1e-3, warmup_steps=20, ema_decay=0.99, checkpoint_every=10_000,
    )
    train_prior(frames, prior)
    return scene, prior.out


def held_out_abs_rel(scene: Path, out: Path, prior: Path | None) -> float:
    torch.manual_seed(0)
    config = configure_run(diffnerf_few_view_method.config, scene, out, iterations=ITERATIONS, rays_per_batch=256)
    reg = dataclasses.replace(config.pipeline.model.regulariser, prior_path=prior)
    config.pipeline = dataclasses.replace(
        config.pipeline, model=dataclasses.replace(config.pipeline.model, regulariser=reg)
    )
    trainer = Trainer(config)
    trainer.setup()
    for step in range(ITERATIONS):
        trainer.train_iteration(step)
    model, dataset = trainer.pipeline.model.eval(), trainer.pipeline.datamanager.eval_dataset
    scores = []
    with torch.no_grad():
        for i in range(len(dataset)):
            out = model.get_outputs_for_camera(dataset.cameras[i : i + 1])
            z = (out["depth"] / out["directions_norm"])[..., 0]
            scores.append(depth_metrics(z, dataset[i]["depth_image"][..., 0])["depth_abs_rel"])
    return float(np.mean(scores))


def test_prior_improves_few_view_held_out_depth(few_view: tuple[Path, Path], tmp_path: Path) -> None:
    scene, prior = few_view
    without = held_out_abs_rel(scene, tmp_path / "without", None)
    with_prior = held_out_abs_rel(scene, tmp_path / "with", prior)
    print(f"few-view held-out depth AbsRel: without prior {without:.4f}, with prior {with_prior:.4f}")
    assert with_prior < without
