"""The default for users without an NYU-trained prior: a small prior fitted to one scene's own frames.

It only knows the scene it was trained on, so it is a fallback; the NYU-trained prior generalises
better. The result is cached in `<scene>/prior/`, and an interrupted fit resumes from its last checkpoint.
"""

from __future__ import annotations

from pathlib import Path

from diffnerf_ns.prior.model import RGBDPrior
from diffnerf_ns.prior.sources import frames_from_scene
from diffnerf_ns.prior.train import TrainConfig, train_prior


def scene_prior_config(out: Path) -> TrainConfig:
    """A narrower, shorter run than the NYU prior: a few minutes on one GPU."""
    return TrainConfig(
        out=out,
        block_out_channels=(32, 64, 128, 256),
        layers_per_block=1,
        steps=4000,
        batch_size=64,
        lr=5e-4,
        warmup_steps=200,
        ema_decay=0.999,
        checkpoint_every=1000,
    )


def ensure_scene_prior(scene_dir: Path, config: TrainConfig | None = None, force: bool = False) -> Path:
    """Return `<scene>/prior` (or `config.out`), fitting it on the scene's RGB-D patches if not cached."""
    config = config or scene_prior_config(Path(scene_dir) / "prior")
    out = Path(config.out)
    if not force and (out / "unet" / "config.json").is_file():
        RGBDPrior.from_pretrained(out)  # fail now on a broken or foreign cache
        return out
    train_prior(frames_from_scene(Path(scene_dir)), config)
    return out
