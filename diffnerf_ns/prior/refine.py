"""Depth refinement: guided DDIM sampling of the conditional prior over whole frames.

Every DDIM step denoises all overlapping patch tiles of the frame at once and blends their
noise predictions with weights that fall off towards tile borders, so the frame is one sample
with no seams (MultiDiffusion-style). RGB is always known and observed depth is known where the
sensor returned a value: after each step those pixels are replaced by the observation noised to
the new level (RePaint-style), so the sample agrees with what was measured and only invents the
holes. A few samples are drawn; holes take the measurement-supported value the samples point to
(or the samples themselves, `fill="sample"`), and the samples' spread, together with their
disagreement with observed pixels, gives the confidence.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from diffusers import DDIMScheduler
from PIL import Image
from torch import Tensor
from tqdm.auto import tqdm

from data_converters.nerfstudio_scene import depth_to_png_mm, load_scene
from diffnerf_ns.prior.baselines import directional_fills, nearest_fill, opencv_inpaint
from diffnerf_ns.prior.model import RGBDPrior
from diffnerf_ns.prior.patches import check_rgbd, observation_channels
from diffnerf_ns.prior.rgbd_codec import decode_depth, encode

CONFIDENCE_PNG_SCALE = 65535
"""Confidence PNGs are uint16: value / 65535 is the confidence in [0, 1]."""


@dataclass
class RefineConfig:
    """Sampling settings; more steps and samples trade time for quality and better confidence."""

    steps: int = 20
    """DDIM steps over the full schedule (fewer run when `strength` < 1)."""
    strength: float = 0.3
    """Noise level to start from, as a fraction of the schedule (SDEdit): 1 samples from pure noise; lower
    values start from the observation with holes pre-filled by nearest neighbour, noised to that level, so
    the prior corrects a classical fill instead of inventing the whole frame."""
    samples: int = 4
    """Independent samples averaged into the result; their spread gives the confidence."""
    overlap: int = 16
    """Pixels shared by neighbouring tiles."""
    batch_size: int = 256
    """Tiles per UNet call."""
    fill: Literal["snap", "sample"] = "snap"
    """How holes are filled from the prior's samples. `snap`: the observation-supported candidate (nearest
    measurement left/right/above/below, nearest overall, Telea inpainting) closest to the samples' median,
    so the prior decides which surface a hole belongs to (e.g. the background behind an IR shadow) while
    the value stays a measured one; robust to imprecise priors. `sample`: the samples themselves, shifted to
    meet the nearest observation; lets a strong prior invent geometry no measurement supports."""
    relative_tolerance: float = 0.03
    """Relative depth spread (or disagreement) at which confidence drops to 0.5."""
    seed: int = 0


def tile_starts(length: int, patch: int, overlap: int) -> list[int]:
    """Tile origins covering [0, length) with at least `overlap` shared pixels; the last is flush."""
    if length < patch:
        raise ValueError(f"frame side {length} is smaller than the prior's {patch} px patch")
    stride = max(1, patch - overlap)
    starts = list(range(0, length - patch + 1, stride))
    if starts[-1] != length - patch:
        starts.append(length - patch)
    return starts


def tile_weight(patch: int, overlap: int) -> Tensor:
    """Separable blend weight: flat in the middle, linear ramp over the overlap, positive at borders."""
    ramp = torch.minimum(torch.arange(patch) + 1.0, torch.arange(patch, 0, -1).float())
    w = (ramp / max(overlap, 1)).clamp(max=1.0)
    return w[:, None] * w[None, :]


class TiledDenoiser:
    """Noise prediction for whole frames from overlapping patch tiles, blended without seams."""

    def __init__(self, prior: RGBDPrior, height: int, width: int, overlap: int, batch_size: int) -> None:
        p = prior.patch_size
        self.prior, self.patch, self.batch_size = prior, p, batch_size
        self.origins = [(y, x) for y in tile_starts(height, p, overlap) for x in tile_starts(width, p, overlap)]
        self.weight = tile_weight(p, overlap).to(prior.device)
        norm = torch.zeros(height, width, device=prior.device)
        for y, x in self.origins:
            norm[y : y + p, x : x + p] += self.weight
        self.norm = norm

    def tiles(self, frames: Tensor) -> Tensor:
        """(S, C, H, W) -> (S * tiles, C, P, P), frame-major."""
        p = self.patch
        return torch.stack([frames[:, :, y : y + p, x : x + p] for y, x in self.origins], 1).flatten(0, 1)

    def __call__(self, x_t: Tensor, t: Tensor, cond_tiles: Tensor) -> Tensor:
        """Blended eps_hat for (S, 4, H, W) noisy frames; `cond_tiles` from `tiles(cond)`."""
        x_tiles = self.tiles(x_t)
        eps_tiles = torch.cat(
            [
                self.prior(x_tiles[i : i + self.batch_size], t, cond_tiles[i : i + self.batch_size])
                for i in range(0, x_tiles.shape[0], self.batch_size)
            ]
        ).view(x_t.shape[0], len(self.origins), *x_tiles.shape[1:])
        out = torch.zeros_like(x_t)
        p = self.patch
        for k, (y, x) in enumerate(self.origins):
            out[:, :, y : y + p, x : x + p] += eps_tiles[:, k] * self.weight
        return out / self.norm


@torch.no_grad()
def refine_depth(
    prior: RGBDPrior, rgb: np.ndarray, raw_depth: np.ndarray, config: RefineConfig | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Refined depth (metres, float32) and confidence in [0, 1] for one frame.

    `rgb` is (H, W, 3) uint8 or float in [0, 1]; `raw_depth` is (H, W) metres with 0 = missing.
    """
    config = config or RefineConfig()
    rgb, raw_depth = np.asarray(rgb), np.asarray(raw_depth, np.float32)
    check_rgbd(rgb, raw_depth, "refine input", prior.patch_size)
    rgb_f = rgb.astype(np.float32) / 255.0 if rgb.dtype == np.uint8 else rgb.astype(np.float32)
    device, dtype = prior.device, prior.dtype
    raw_t = torch.from_numpy(raw_depth)[None, None].to(device)
    known = (raw_t > 0).float()
    obs = encode(torch.from_numpy(rgb_f).permute(2, 0, 1)[None].to(device), raw_t.clamp(min=1e-3))
    known4 = torch.cat([torch.ones_like(known).expand(-1, 3, -1, -1), known], 1)
    height, width = raw_depth.shape
    denoiser = TiledDenoiser(prior, height, width, config.overlap, config.batch_size)
    cond = observation_channels(raw_depth)[None].to(device, dtype)
    cond_tiles = denoiser.tiles(cond).repeat(config.samples, 1, 1, 1)

    scheduler = DDIMScheduler.from_config(prior.scheduler.config, clip_sample=True)  # x0 stays in codec range
    scheduler.set_timesteps(config.steps, device=device)
    timesteps = scheduler.timesteps[scheduler.timesteps < config.strength * prior.num_train_timesteps]
    if len(timesteps) == 0:
        raise ValueError(f"strength {config.strength} leaves no DDIM step out of {config.steps}")
    generator = torch.Generator(device=device).manual_seed(config.seed)
    shape = (config.samples, 4, height, width)
    start = torch.cat([obs[:, :3], cond[:, :1].float()], 1).expand(shape)  # holes: nearest fill
    noise = torch.randn(shape, generator=generator, device=device)
    x = scheduler.add_noise(start, noise, timesteps[:1])
    x0_hat = x
    for i, t in enumerate(timesteps):
        eps = denoiser(x.to(dtype), t, cond_tiles).float()
        step = scheduler.step(eps, t, x, eta=0.0)
        x, x0_hat = step.prev_sample, step.pred_original_sample
        if i + 1 < len(timesteps):
            t_next = timesteps[i + 1]
            noise = torch.randn(shape, generator=generator, device=device)
            noised_obs = scheduler.add_noise(obs.expand(shape), noise, t_next.reshape(1))
            x = known4 * noised_obs + (1 - known4) * x
    depth_samples = decode_depth(x0_hat[:, 3:4]).cpu().numpy()[:, 0]  # (S, H, W)
    observed = raw_depth > 0
    if config.fill == "snap":
        typical = np.median(depth_samples, 0)
        candidates = np.concatenate(
            [directional_fills(raw_depth), nearest_fill(raw_depth)[None], opencv_inpaint(raw_depth)[None]]
        )
        gap = np.nan_to_num(np.abs(candidates - typical), nan=np.inf)
        filled = np.take_along_axis(candidates, gap.argmin(0)[None], 0)[0]
        hole_spread = depth_samples.std(0) + np.abs(typical - filled)
    else:
        # Each sample is shifted by the residual (measurement - sample) at the nearest observed pixel, so
        # fills meet the observations without a step and a local bias of the sample cancels.
        aligned = np.stack([d + nearest_fill(np.where(observed, raw_depth - d, 0.0)) for d in depth_samples])
        filled, hole_spread = aligned.mean(0), aligned.std(0)
    # Observed pixels keep the measurement; their confidence is how well the prior's samples agree with it.
    refined = np.where(observed, raw_depth, filled)
    spread = np.where(observed, np.abs(depth_samples - raw_depth).mean(0), hole_spread)
    relative = spread / np.maximum(refined, 1e-3)
    confidence = 1.0 / (1.0 + (relative / config.relative_tolerance) ** 2)
    return refined.astype(np.float32), confidence.astype(np.float32)


def refine_scene(prior: RGBDPrior, scene_dir: Path, config: RefineConfig | None = None) -> Path:
    """Refine every frame of a converted scene; writes `depth_refined/` and `depth_confidence/`.

    `transforms.json` gains `refined_depth_file_path` and `depth_confidence_file_path` per frame;
    `depth_file_path` keeps pointing at the raw depth.
    """
    scene_dir = Path(scene_dir)
    scene = load_scene(scene_dir)
    transforms_path = scene_dir / "transforms.json"
    transforms = json.loads(transforms_path.read_text())
    (scene_dir / "depth_refined").mkdir(exist_ok=True)
    (scene_dir / "depth_confidence").mkdir(exist_ok=True)
    for i, frame in enumerate(tqdm(transforms["frames"], desc="refining depth")):
        rgb, raw = scene.rgb(i), scene.depth(i)
        if rgb.shape[:2] != (scene.height, scene.width) or raw.shape != (scene.height, scene.width):
            raise ValueError(
                f"{scene.image_paths[i]}: rgb {rgb.shape[:2]} / depth {raw.shape} differ from the scene size "
                f"{scene.height}x{scene.width} in transforms.json"
            )
        depth, confidence = refine_depth(prior, rgb, raw, config)
        name = Path(frame["depth_file_path"]).name
        Image.fromarray(depth_to_png_mm(depth)).save(scene_dir / "depth_refined" / name)
        conf_png = np.round(confidence * CONFIDENCE_PNG_SCALE).astype(np.uint16)
        Image.fromarray(conf_png).save(scene_dir / "depth_confidence" / name)
        frame["refined_depth_file_path"] = f"depth_refined/{name}"
        frame["depth_confidence_file_path"] = f"depth_confidence/{name}"
    tmp = transforms_path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(transforms, indent=2))
    os.replace(tmp, transforms_path)
    return transforms_path
