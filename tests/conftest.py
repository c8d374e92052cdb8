"""Shared test fixtures: the real-data folder beside the repo, and tiny generated scenes."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from diffnerf_ns.depth_convention import ray_to_z_depth

os.environ.setdefault("HF_HUB_OFFLINE", "1")

FIXTURES = Path(__file__).resolve().parents[1].parent / "shared" / "fixtures"


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    """The real NYU / ICL-NUIM fixtures in ../shared/fixtures; tests needing them skip without it."""
    if not FIXTURES.is_dir():
        pytest.skip(f"real fixtures not found at {FIXTURES} (they live in ../shared beside the repo)")
    return FIXTURES


@pytest.fixture(scope="session")
def demo_scene(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny rendered room (24 frames, 64x48) with exact depth, shared by the plugin tests."""
    from data_converters.synthetic.demo_scene import make_demo_scene

    out = tmp_path_factory.mktemp("demo_scene")
    make_demo_scene(out, num_frames=24, width=64, height=48)
    return out


def depth_error_on_view(pipeline, scene_dir: Path, index: int = 0) -> float:
    """Median |rendered z - true z| in metres on training camera `index`."""
    dataset = pipeline.datamanager.train_dataset
    camera = dataset.cameras[index : index + 1].to(pipeline.device)
    gt = dataset.get_metadata({"image_idx": index})["depth_image"][..., 0]
    with torch.no_grad():
        out = pipeline.model.get_outputs_for_camera(camera)
    z = ray_to_z_depth(out["depth"], out["directions_norm"])[..., 0].cpu()
    valid = gt > 0
    return float((z[valid] - gt[valid]).abs().median())


@pytest.fixture(scope="session")
def trained(demo_scene: Path, tmp_path_factory: pytest.TempPathFactory):
    """diffnerf trained 60 tiny CPU steps on the demo scene through Trainer.train() (callbacks run), saved."""
    from nerfstudio.engine.trainer import Trainer

    from benchmarks.nerf_harness import train_like_ns_train
    from diffnerf_ns.compat import offline_lpips
    from diffnerf_ns.diffnerf_config import diffnerf_method
    from diffnerf_ns.presets import configure_run

    torch.manual_seed(0)
    config = configure_run(
        diffnerf_method.config, demo_scene, tmp_path_factory.mktemp("runs"), iterations=60, rays_per_batch=256
    )
    # The untrained error, measured on an identically seeded twin, so the trained run is untouched.
    with offline_lpips():
        fresh = Trainer(config)
        fresh.setup()
    before = depth_error_on_view(fresh.pipeline, demo_scene)
    del fresh
    torch.manual_seed(0)
    trainer, stats = train_like_ns_train(config)
    after = depth_error_on_view(trainer.pipeline, demo_scene)
    return config, trainer, stats.losses, before, after
