"""DiffusioNeRF's patch regulariser: score rendered RGB-D patches from jittered poses with the prior.

Each step renders P x P patches from training poses jittered in translation and rotation, maps
them into the prior's normalised RGB-D space, asks the prior for its score at an annealed noise
level, and adds `-(w * stopgrad(score) * patch).sum()`, whose gradient pushes the patch along
the score, i.e. towards what real rooms look like. The score is normalised per patch, so the
weights are the gradient norms the regulariser contributes, independent of the noise level.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from nerfstudio.cameras.cameras import Cameras
from nerfstudio.engine.callbacks import TrainingCallback, TrainingCallbackAttributes, TrainingCallbackLocation
from nerfstudio.viewer.viewer_elements import ViewerCheckbox
from scipy.spatial.transform import Rotation

from diffnerf_ns.depth_convention import ray_to_z_depth
from diffnerf_ns.prior.rgbd_codec import encode

if TYPE_CHECKING:
    from diffnerf_ns.models.diffnerf_model import DiffNerfModel


@dataclass
class PatchRegulariserConfig:
    """Where the prior comes from and how strongly it pulls; all defaults follow DiffusioNeRF."""

    prior_path: Path | None = None
    """Folder of a trained RGB-D prior (`diffnerf-prior train` / `fit-scene`). None turns the regulariser off."""
    start_step: int = 0
    """First training step that uses the regulariser."""
    patch_size: int | None = None
    """Patch side in pixels; None uses the prior's training patch size (a different size is an error)."""
    patches_per_step: int = 1
    """Patches rendered and scored per step."""
    jitter_translation: float = 0.05
    """Max translation jitter, as a fraction of the scene box's diagonal (DiffusioNeRF: 0.2 in its units)."""
    jitter_rotation: float = 0.1 * np.pi
    """Max rotation jitter in radians, about a random axis."""
    t_start: int = 99
    """Diffusion timestep at the first regularised step..."""
    t_end: int = 3
    """...annealed linearly down to this one..."""
    anneal_steps: int = 2500
    """...over this many steps."""
    gt_rgb_probability: float = 0.25
    """Probability of scoring an un-jittered patch with ground-truth RGB (regularises depth only)."""
    rgb_weight: float = 1e-3
    """Norm of the gradient the regulariser puts on a patch's RGB."""
    depth_weight: float = 1e-3
    """Norm of the gradient the regulariser puts on a patch's depth channel."""

    def setup(self, model: DiffNerfModel) -> PatchRegulariser | None:
        if self.prior_path is None:
            return None
        from diffnerf_ns.prior.model import RGBDPrior

        prior = RGBDPrior.from_pretrained(self.prior_path, patch_size=self.patch_size, device=model.device)
        return PatchRegulariser(self, prior, model)


class PatchRegulariser:
    """Renders jittered patches through the model and turns the prior's score into a loss."""

    def __init__(self, config: PatchRegulariserConfig, prior: torch.nn.Module, model: DiffNerfModel) -> None:
        self.config = config
        self.prior = prior.eval().requires_grad_(False)
        self.model = model
        self.patch_size = int(prior.patch_size)
        self.cameras: Cameras | None = None
        self.gt_image: Callable[[int], np.ndarray] | None = None
        self.step = 0
        self.rng = np.random.default_rng(0)
        self.enabled = ViewerCheckbox("Diffusion prior regulariser", default_value=True)
        lo, hi = model.scene_box.aabb[0], model.scene_box.aabb[1]
        self.box_lo, self.box_hi = lo, hi
        self.max_translation = float(config.jitter_translation * torch.linalg.norm(hi - lo))

    def training_callbacks(self, attrs: TrainingCallbackAttributes) -> list[TrainingCallback]:
        assert attrs.pipeline is not None
        dataset = attrs.pipeline.datamanager.train_dataset
        self.cameras = dataset.cameras
        # Ground-truth RGB patches are cut every regularised step (every step in the few-view preset): decode each
        # training image once, not per step.
        self.gt_image = functools.lru_cache(maxsize=64)(dataset.get_numpy_image)

        def set_step(step: int) -> None:
            self.step = step

        return [TrainingCallback([TrainingCallbackLocation.BEFORE_TRAIN_ITERATION], set_step)]

    def timestep(self) -> int:
        """Noise level annealed linearly from t_start to t_end after start_step."""
        c = self.config
        frac = np.clip((self.step - c.start_step) / max(c.anneal_steps, 1), 0.0, 1.0)
        return int(round(c.t_start + frac * (c.t_end - c.t_start)))

    def jittered_pose(self, c2w: torch.Tensor) -> torch.Tensor:
        """Rotate about a random axis and translate randomly; the centre stays inside the scene box."""
        axis = self.rng.normal(size=3)
        angle = self.rng.uniform(-self.config.jitter_rotation, self.config.jitter_rotation)
        rot = torch.as_tensor(Rotation.from_rotvec(axis / np.linalg.norm(axis) * angle).as_matrix(), dtype=c2w.dtype)
        shift = torch.as_tensor(self.rng.uniform(-1, 1, size=3) * self.max_translation, dtype=c2w.dtype)
        out = c2w.clone()
        out[:3, :3] = rot.to(c2w.device) @ c2w[:3, :3]
        margin = 0.02 * (self.box_hi - self.box_lo)
        out[:3, 3] = torch.minimum(
            torch.maximum(c2w[:3, 3] + shift.to(c2w.device), self.box_lo + margin), self.box_hi - margin
        )
        return out

    def patch_camera(self, index: int, jitter: bool) -> tuple[Cameras, int, int]:
        """A P x P crop of training camera `index` (optionally jittered), and the crop's top-left corner."""
        assert self.cameras is not None, "training_callbacks() must run before the regulariser is used"
        cam = self.cameras[index : index + 1]
        p = self.patch_size
        x0 = int(self.rng.integers(0, max(int(cam.width) - p, 0) + 1))
        y0 = int(self.rng.integers(0, max(int(cam.height) - p, 0) + 1))
        c2w = cam.camera_to_worlds[0]
        return (
            Cameras(
                camera_to_worlds=(self.jittered_pose(c2w) if jitter else c2w)[None],
                fx=cam.fx,
                fy=cam.fy,
                cx=cam.cx - x0,
                cy=cam.cy - y0,
                width=p,
                height=p,
                camera_type=cam.camera_type,
            ),
            x0,
            y0,
        )

    def render_patch(self, index: int, jitter: bool) -> tuple[torch.Tensor, torch.Tensor, int, int]:
        """Differentiable RGB (P, P, 3) and planar depth in metres (P, P) of one patch camera."""
        camera, x0, y0 = self.patch_camera(index, jitter)
        bundle = camera.to(self.model.device).generate_rays(camera_indices=0)
        bundle.camera_indices = torch.full_like(bundle.camera_indices, index)
        outputs = self.model(bundle.flatten())
        p = self.patch_size
        z = ray_to_z_depth(outputs["expected_depth"], outputs["directions_norm"])
        return outputs["rgb"].view(p, p, 3), (z * self.model.metres_per_unit).view(p, p), x0, y0

    @torch.no_grad()
    def score_map(self, rgb: torch.Tensor, depth_m: torch.Tensor) -> torch.Tensor:
        """Per-pixel magnitude of the prior's score over a rendered view (H, W, 1), for the viewer.

        Large where the render looks unlike the prior's rooms; tiles the view in prior-sized patches.
        """
        p, (h, w) = self.patch_size, depth_m.shape[:2]
        x = encode(rgb[..., :3].permute(2, 0, 1)[None], depth_m.reshape(1, 1, h, w))
        x = torch.nn.functional.pad(x, (0, -w % p, 0, -h % p), mode="replicate")
        hp, wp = x.shape[-2:]
        tiles = x.unfold(2, p, p).unfold(3, p, p).permute(0, 2, 3, 1, 4, 5).reshape(-1, 4, p, p)
        magnitude = self.prior.score(tiles, self.config.t_end).norm(dim=1)
        grid = magnitude.reshape(hp // p, wp // p, p, p).permute(0, 2, 1, 3).reshape(hp, wp)
        return grid[:h, :w, None]

    def loss_dict(self, batch: dict) -> dict[str, torch.Tensor]:
        """Regulariser losses for this step (empty before start_step or when switched off in the viewer)."""
        if self.step < self.config.start_step or not self.enabled.value:
            return {}
        assert self.cameras is not None and self.gt_image is not None

        rgb_loss = torch.zeros((), device=self.model.device)
        depth_loss = torch.zeros((), device=self.model.device)
        t = self.timestep()
        for _ in range(self.config.patches_per_step):
            index = int(self.rng.integers(0, len(self.cameras)))
            use_gt_rgb = self.rng.random() < self.config.gt_rgb_probability
            rgb, depth, x0, y0 = self.render_patch(index, jitter=not use_gt_rgb)
            if use_gt_rgb:
                gt = self.gt_image(index)[y0 : y0 + self.patch_size, x0 : x0 + self.patch_size, :3]
                rgb = torch.from_numpy(gt.astype(np.float32) / 255.0).to(self.model.device)
            x = encode(rgb.permute(2, 0, 1)[None], depth[None, None])
            score = self.prior.score(x, t)
            unit = score / score.flatten(2).norm(dim=2).clamp(min=1e-12)[..., None, None]
            depth_loss = depth_loss - self.config.depth_weight * (unit[:, 3:] * x[:, 3:]).sum()
            if not use_gt_rgb:
                rgb_loss = rgb_loss - self.config.rgb_weight * (unit[:, :3] * x[:, :3]).sum()
        n = self.config.patches_per_step
        return {"prior_rgb_loss": rgb_loss / n, "prior_depth_loss": depth_loss / n}
