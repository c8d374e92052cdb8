"""`diffnerf-prior train | refine | fit-scene`: the prior's command line."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated

import tyro

from diffnerf_ns.device import resolve_device
from diffnerf_ns.prior.fallback import ensure_scene_prior, scene_prior_config
from diffnerf_ns.prior.model import RGBDPrior
from diffnerf_ns.prior.refine import RefineConfig, refine_scene
from diffnerf_ns.prior.shipped import default_prior_path
from diffnerf_ns.prior.sources import frames_from_path
from diffnerf_ns.prior.train import TrainConfig, train_prior

SHIPPABLE_MB = 25.0
"""Largest prior weights file that can ship inside the package."""


@dataclass
class Train(TrainConfig):
    """Train a prior on NYU (`nyu_depth_v2_labeled.mat`) and/or converted scenes; `--init-from` fine-tunes one,
    `--max-minutes` bounds the wall time, `--half-precision-weights` halves the file."""

    data: tuple[Path, ...] = ()
    """`nyu_depth_v2_labeled.mat`, converted scene folders, or folders of converted scenes."""
    splits: Path | None = None
    """NYU `splits.mat`: train on the official train split of the .mat only (keeps the test split clean)."""

    def main(self) -> None:
        if not self.data:
            raise SystemExit("train: pass --data (nyu_depth_v2_labeled.mat or converted scene folders)")
        indices = None
        if self.splits is not None:
            from data_converters.nyu.labeled import read_splits

            indices = read_splits(self.splits)["train"].tolist()
        frames = [frame for path in self.data for frame in frames_from_path(path, indices)]
        losses = train_prior(frames, self)
        weights = self.out / "unet" / "diffusion_pytorch_model.safetensors"
        size_mb = weights.stat().st_size / 1e6
        print(
            f"saved prior to {self.out} after {len(losses)} steps (final loss "
            f"{sum(losses[-100:]) / max(len(losses[-100:]), 1):.4f}); weights {size_mb:.1f} MB"
        )
        if size_mb > SHIPPABLE_MB:
            print(f"note: over the {SHIPPABLE_MB:.0f} MB a shipped prior may take; use --half-precision-weights")


@dataclass
class Refine:
    """Refine a converted scene's raw depth; writes depth_refined/ and depth_confidence/ beside depth/."""

    scene: Path
    prior: Path | None = None
    """Prior folder; without one the package's shipped prior, or where none ships, the scene's own fallback prior
    (fitted first if needed)."""
    sampling: RefineConfig = field(default_factory=RefineConfig)
    device: str = "auto"
    """`auto`: CUDA when available, else CPU."""
    train_only: bool = False
    """Refine only the frames in transforms.json's train_filenames (the only ones supervised with it)."""

    def main(self) -> None:
        device = resolve_device(self.device)
        path = self.prior or default_prior_path() or ensure_scene_prior(self.scene)
        prior = RGBDPrior.from_pretrained(path, device=device)
        print(f"updated {refine_scene(prior, self.scene, self.sampling, self.train_only)}")


@dataclass
class FitScene:
    """Fit the per-scene fallback prior on a converted scene (cached in <scene>/prior/)."""

    scene: Path
    config: TrainConfig = field(default_factory=lambda: scene_prior_config(Path("<scene>/prior")))
    """Training settings; `--config.out` defaults to `<scene>/prior`."""
    force: bool = False

    def main(self) -> None:
        if self.config.out == Path("<scene>/prior"):
            self.config.out = self.scene / "prior"
        print(f"scene prior: {ensure_scene_prior(self.scene, self.config, self.force)}")


Command = (
    Annotated[Train, tyro.conf.subcommand("train")]
    | Annotated[Refine, tyro.conf.subcommand("refine")]
    | Annotated[FitScene, tyro.conf.subcommand("fit-scene")]
)


def entrypoint() -> None:
    tyro.cli(Command).main()  # type: ignore[arg-type]


if __name__ == "__main__":
    entrypoint()
