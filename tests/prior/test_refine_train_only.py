"""Refinement of a benchmark view's training frames only, and a view that keeps those layers while its split holds."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from data_converters.nerfstudio_scene import split_view
from diffnerf_ns.data_split import EVAL_INTERVAL
from diffnerf_ns.prior.model import RGBDPrior
from diffnerf_ns.prior.refine import REFINED_LAYERS, RefineConfig, refine_scene


def _refined(view: Path) -> list[str]:
    frames = json.loads((view / "transforms.json").read_text())["frames"]
    return [f["file_path"] for f in frames if all(k in f for k in REFINED_LAYERS)]


def test_train_only_refines_the_training_frames_and_the_view_keeps_them(demo_scene: Path, tmp_path: Path) -> None:
    """Catches refinement of held-out frames (wasted work: they are scored on raw depth), a frame matched by the
    wrong path, layers lost when the benchmark rebuilds the same view (refinement redone every invocation), the
    rebuilt view's file rewritten in another layout (its fingerprint changes, so a resumed benchmark retrains every
    cached run), and layers kept after the split changed (other frames' refined depth)."""
    torch.manual_seed(0)
    prior = RGBDPrior.create(patch_size=16, block_out_channels=(8, 16), layers_per_block=1, attention=False)

    def view(num_train: int) -> Path:
        return split_view(demo_scene, tmp_path / "view", num_train, EVAL_INTERVAL)

    train = json.loads((view(3) / "transforms.json").read_text())["train_filenames"]
    refine_scene(prior, view(3), RefineConfig(steps=2, samples=2, overlap=4), train_only=True)
    assert sorted(_refined(tmp_path / "view")) == sorted(train)
    refined = (tmp_path / "view" / "transforms.json").read_bytes()
    assert sorted(_refined(view(3))) == sorted(train)
    assert (tmp_path / "view" / "transforms.json").read_bytes() == refined  # fingerprinted: rebuilt, not rewritten
    assert _refined(view(4)) == []
