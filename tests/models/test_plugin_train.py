"""diffnerf trains on CPU and its depth moves toward ground truth; checkpoints load through nerfstudio."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from data_converters.nerfstudio_scene import load_scene


def test_loss_finite_and_decreasing(trained) -> None:
    _, _, losses, _, _ = trained
    assert np.all(np.isfinite(losses))
    assert np.mean(losses[-10:]) < 0.5 * np.mean(losses[:5])


def test_depth_moves_toward_ground_truth(trained) -> None:
    _, _, _, before, after = trained
    assert after < 0.5 * before, (before, after)
    assert after < 0.25  # metres, on a ~1-4 m room after 60 tiny CPU steps


def test_scene_box_covers_the_room(trained, demo_scene: Path) -> None:
    _, trainer, _, _, _ = trained
    aabb = trainer.pipeline.datamanager.train_dataparser_outputs.scene_box.aabb
    scene = load_scene(demo_scene)
    # Room is 5 x 4 x 2.6 m; the box is fitted to back-projected depth (+10% margin), in metres.
    size = (aabb[1] - aabb[0]).numpy()
    assert np.all(size > [4.0, 3.0, 2.0]) and np.all(size < [7.0, 6.0, 4.0]), size
    assert len(scene.c2w) == 24


def test_checkpoint_loads_with_eval_setup(trained) -> None:
    from nerfstudio.utils.eval_utils import eval_setup

    config, trainer, _, _, _ = trained
    _, pipeline, ckpt, step = eval_setup(config.get_base_dir() / "config.yml")
    assert step == config.max_num_iterations - 1
    for name, value in trainer.pipeline.model.state_dict().items():
        assert torch.equal(value.cpu(), pipeline.model.state_dict()[name].cpu()), name
