"""DiffusioNeRF's patch regulariser: the state between steps (prior, random stream, cameras, step).

The maths is in `patch_prior_loss` (stateless); the model renders the patches this class picks and
calls those functions. Defaults follow DiffusioNeRF's public code (REFERENCE §3); every departure
is named in the field's docstring.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from nerfstudio.cameras.cameras import Cameras
from nerfstudio.configs.base_config import InstantiateConfig
from nerfstudio.data.datasets.base_dataset import InputDataset
from nerfstudio.data.scene_box import SceneBox

from diffnerf_ns.models.patch_prior_loss import (
    RECIPE_PATCH_LOSS_MULT,
    RECIPE_RGB_WEIGHT,
    annealed_timestep,
    crop_camera,
    crop_corner,
    jitter_pose,
    log_codec_depth_weight,
    step_at,
)
from diffnerf_ns.prior.model import RGBDPrior
from diffnerf_ns.prior.shipped import require_default_prior


@dataclass
class PatchRegulariserConfig(InstantiateConfig):
    """Which prior scores the patches, which patches, and how strongly the score pulls."""

    _target: type = field(default_factory=lambda: PatchRegulariser)
    enabled: bool = False
    """Score rendered patches with the prior. Off in `diffnerf` until the benchmark shows it helps (README);
    on in `diffnerf-few-view`. Naming a `prior_path` also turns it on."""
    prior_path: Path | None = None
    """Folder of a trained RGB-D prior; None uses the shipped prior (`diffnerf_ns.prior.shipped`)."""
    patch_size: int | None = None
    """Patch side in pixels; None uses the prior's training size (48 for the shipped prior and DiffusioNeRF).
    A size the prior was not trained on is an error."""
    patches_per_step: int = 1
    """Patches rendered and scored per step (DiffusioNeRF: 1)."""
    start_fraction: float = 0.0
    """First regularised step, as a fraction of the run's max_num_iterations."""
    every_n_steps: int = 1
    """Regularise every n-th step with n times the weights: the same pull per run for 1/n of the cost."""
    patch_sample_fraction: float = 0.5
    """Fraction of the model's proposal and NeRF samples per ray used on patch rays (training rays keep theirs).
    Departure: DiffusioNeRF renders patches like any rays (1.0). Half costs 1.23x the no-prior iteration at the
    presets' 4,096 rays instead of 1.50x, at equal quality over 24 paired runs (docs/benchmarks.md)."""
    t_start: int = 99
    """Diffusion timestep at anneal_start_fraction..."""
    t_end: int = 3
    """...annealed linearly down to this one at anneal_end_fraction (DiffusioNeRF: 99 -> 3)."""
    anneal_start_fraction: float = 0.0
    anneal_end_fraction: float = 0.25
    """Fractions of the run's max_num_iterations, so every budget reaches t_end (DiffusioNeRF: its first 2500 of
    10k steps). A fixed step count never finished annealing in short runs (300 iterations stopped at t = 88)."""
    jitter_translation: float = 0.05
    """Max camera-centre shift per axis, as a fraction of the scene box diagonal. Departure: DiffusioNeRF shifts
    by 0.2 in LLFF's normalised units; a fraction of the room keeps the jitter meaningful in metric rooms."""
    jitter_rotation: float = 0.1 * np.pi
    """Max rotation of the view (radians) about a random axis through the camera centre."""
    gt_rgb_probability: float = 0.25
    """Probability of scoring an un-jittered crop of a training view with its ground-truth RGB, regularising
    depth only (DiffusioNeRF: 0.25). The other patches come from jittered, unseen poses."""
    depth_weight: float = RECIPE_PATCH_LOSS_MULT * log_codec_depth_weight()
    """Depth pseudo-loss weight per pixel on the log-depth code (2.8e-7): DiffusioNeRF's 2e-6 x depth on disparity
    re-derived for this codec (`log_codec_depth_weight`: the same uniform pull on log-depth), times its example's
    0.2 patch-loss multiplier."""
    rgb_weight: float = RECIPE_PATCH_LOSS_MULT * RECIPE_RGB_WEIGHT
    """Gradient norm on a patch's RGB (6e-7): the RGB score is divided by its norm (DiffusioNeRF: 1e-9 x 3000, RGB
    coded as here), times the 0.2 patch-loss multiplier."""
    distortion_loss_mult: float = 2e-3
    """mip-NeRF 360 distortion loss on the patch rays (DiffusioNeRF applies its geometry losses to patches);
    0 turns it off. Same default as nerfacto's on the training rays."""
    seed: int = 0
    """Seed of the regulariser's own random stream (patch choice, crops, jitter)."""

    @property
    def active(self) -> bool:
        return self.enabled or self.prior_path is not None


@dataclass
class PatchSample:
    """One patch to render: crop camera of training view `index`; `gt_rgb` (P, P, 3) when un-jittered."""

    index: int
    camera: Cameras
    gt_rgb: torch.Tensor | None


class PatchRegulariser:
    """Holds the prior and the regulariser's state; picks the patch cameras the model renders."""

    def __init__(self, config: PatchRegulariserConfig, scene_box: SceneBox) -> None:
        self.config = config
        # Loaded on the CPU at construction, so a bad folder fails before training; `prior_on` moves it to the
        # model's device on first use. A plain attribute, not a submodule: checkpoints do not carry the prior.
        path = config.prior_path if config.prior_path is not None else require_default_prior()
        self.prior = RGBDPrior.from_pretrained(path, patch_size=config.patch_size).requires_grad_(False)
        self.patch_size = self.prior.patch_size
        self.box_lo, self.box_hi = scene_box.aabb[0].clone(), scene_box.aabb[1].clone()
        self.max_translation = float(config.jitter_translation * torch.linalg.norm(self.box_hi - self.box_lo))
        # Each DDP rank draws its own patches (as nerfstudio seeds each rank's batches with seed + rank).
        distributed = torch.distributed.is_available() and torch.distributed.is_initialized()
        self.generator = torch.Generator().manual_seed(
            config.seed + (torch.distributed.get_rank() if distributed else 0)
        )
        self.step = 0
        self.max_num_iterations: int | None = None
        self.cameras: Cameras | None = None
        self.gt_image: Callable[[int], np.ndarray] | None = None

    def attach(self, dataset: InputDataset, device: torch.device | str) -> None:
        """Cache the training cameras on `device` and a decoder of their images (each decoded once)."""
        self.cameras = dataset.cameras.to(device)
        self.gt_image = functools.lru_cache(maxsize=64)(dataset.get_numpy_image)

    def prior_on(self, device: torch.device | str) -> RGBDPrior:
        """The prior, moved to `device` the first time it is asked there."""
        if self.prior.device != torch.device(device):
            self.prior.to(device)
        return self.prior

    def _step_at(self, fraction: float) -> int:
        if self.max_num_iterations is None:
            raise RuntimeError("PatchRegulariser.max_num_iterations must be set (the model does it from the trainer)")
        return step_at(fraction, self.max_num_iterations)

    def timestep(self) -> int:
        c = self.config
        start, end = self._step_at(c.anneal_start_fraction), self._step_at(c.anneal_end_fraction)
        return annealed_timestep(self.step, c.t_start, c.t_end, start, end)

    def active_now(self) -> bool:
        start = self._step_at(self.config.start_fraction)
        return self.step >= start and (self.step - start) % self.config.every_n_steps == 0

    def sample(self) -> PatchSample:
        """A random training view, then either its un-jittered crop with ground-truth RGB or a jittered crop."""
        if self.cameras is None or self.gt_image is None:
            raise RuntimeError("PatchRegulariser.attach(train_dataset) must run before patches are sampled")
        p, g = self.patch_size, self.generator
        index = int(torch.randint(0, len(self.cameras), (), generator=g))
        width, height = int(self.cameras.width[index]), int(self.cameras.height[index])
        x0, y0 = crop_corner(width, height, p, g)
        fits = p <= width and p <= height
        if fits and float(torch.rand((), generator=g)) < self.config.gt_rgb_probability:
            gt = self.gt_image(index)[y0 : y0 + p, x0 : x0 + p, :3]
            rgb = torch.from_numpy(gt.astype(np.float32) / 255.0).to(self.cameras.device)
            return PatchSample(index, crop_camera(self.cameras, index, x0, y0, p), rgb)
        c = self.config
        c2w = jitter_pose(
            self.cameras.camera_to_worlds[index], self.box_lo, self.box_hi, self.max_translation, c.jitter_rotation, g
        )
        return PatchSample(index, crop_camera(self.cameras, index, x0, y0, p, c2w), None)
