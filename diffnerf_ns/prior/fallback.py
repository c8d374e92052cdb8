"""The default for users without an NYU-trained prior: a small prior fitted to one scene's own frames.

It only knows the scene it was trained on, so it is a fallback; the NYU-trained prior generalises
better. The result is cached in `<scene>/prior/`, and an interrupted fit resumes from its last checkpoint.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from diffnerf_ns.prior.model import RGBDPrior
from diffnerf_ns.prior.presets import PRIOR_PRESETS
from diffnerf_ns.prior.sources import frames_from_scene
from diffnerf_ns.prior.train import TrainConfig, train_prior


def scene_prior_config(out: Path) -> TrainConfig:
    """The `scene` preset: a narrower, shorter run than the shippable prior (a few minutes on one GPU)."""
    return dataclasses.replace(PRIOR_PRESETS["scene"], out=out)


def ensure_scene_prior(scene_dir: Path, config: TrainConfig | None = None, force: bool = False) -> Path:
    """Return `<scene>/prior` (or `config.out`), fitting it on the scene's RGB-D patches if not cached."""
    config = config or scene_prior_config(Path(scene_dir) / "prior")
    out = Path(config.out)
    if not force and (out / "unet" / "config.json").is_file():
        RGBDPrior.from_pretrained(out)  # fail now on a broken or foreign cache
        return out
    train_prior(frames_from_scene(Path(scene_dir)), config)
    return out
