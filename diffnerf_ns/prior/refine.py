"""Depth refinement: guided DDIM sampling of the conditional prior over whole frames.

The UNet is conditioned on the frame's raw depth (holes pre-filled by the classical fill it was trained with,
nearest by default, plus the validity mask) and
sampled from pure noise (`strength` 1). RGB is always known and observed depth is known where the
sensor returned a value: after each step those pixels are replaced by the observation noised to the
new level (RePaint), so the sample agrees with what was measured and only invents the holes. Holes
take the mean of several independent samples, the model's own answer with no classical candidates;
observed pixels keep the measurement. Every DDIM step denoises all overlapping tiles of the frame
that hold a hole at once and blends their noise predictions with weights that fall off towards tile
borders (MultiDiffusion), so the frame is one sample with no seams. Tiles without a hole are skipped:
their values would be overwritten by the observation anyway.

Uncertainty: in holes the samples are treated as draws from the model's posterior, and the stated
90% interval is the predictive interval for one more draw (Student t with samples - 1 degrees of
freedom), widened by a term that grows with depth and with the distance to the nearest measured pixel
(`hole_sigma`). Its far end also reaches the deepest depth measured near the pixel (`far_side_depth`): a Kinect
hole beside a depth edge is mostly the projector's shadow on the far surface, and the fill, started from the
nearest measurement, takes the near one there. The constants are the prior's, fitted by
`diffnerf_ns.prior.calibration`. At observed pixels sigma is the Kinect noise, c z^2 (Khoshelham and Elberink
2012).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from diffusers import DDIMScheduler
from scipy import ndimage, stats
from torch import Tensor
from tqdm.auto import tqdm

from data_converters.nerfstudio_scene import load_scene, write_frame_layers
from diffnerf_ns.device import cpu_has_native_bfloat16
from diffnerf_ns.prior.baselines import hole_fill
from diffnerf_ns.prior.model import ConditioningFill, RGBDPrior
from diffnerf_ns.prior.patches import check_rgbd, observation_channels
from diffnerf_ns.prior.rgbd_codec import decode_depth, encode, encode_depth

CONFIDENCE_PNG_SCALE = 65535
"""Confidence PNGs are uint16: value / 65535 is the confidence in [0, 1]."""
REFINED_LAYERS = {"refined_depth_file_path": "depth_refined", "depth_confidence_file_path": "depth_confidence"}
"""transforms.json key -> folder of the layers `refine_scene` adds; `depth_file_path` keeps the raw depth."""


@dataclass
class RefineConfig:
    """Sampling settings; more steps and samples trade time for quality and better confidence."""

    steps: int = 20
    """DDIM steps over the full schedule (fewer run when `strength` < 1)."""
    strength: float = 0.4
    """Noise level to start from, as a fraction of the schedule: 1 samples from pure noise (the model's own
    answer); lower values start from the observation with holes nearest-filled, noised to that level (SDEdit).
    0.4 by `benchmarks/results/refine_strength.md` (validation frames only): the one strength tried (1, 0.6,
    0.4, 0.2) below the nearest fill's hole RMSE on every source, at 0.78x its RMSE on average; from pure
    noise the shipped prior is 2.8-6x worse than the nearest fill."""
    start: Literal["nearest", "telea", "colorization"] = "nearest"
    """The classical fill the holes start from when `strength` < 1: nearest neighbour, OpenCV Telea, or the NYU
    toolbox's colorization (5-14 s per frame).
    Colorization won on the validation frames (`benchmarks/results/refine_start.md`: 0.63x the nearest fill's
    hole RMSE against 0.78x) but lost the scored real frames (`prior_refine_start_colorization.md`: 0.148 m
    against 0.094 m from the nearest fill; on the NYU frame, where the colorization fill itself fails, 0.61 m), so
    the default stays the nearest fill until a validation set with NYU-like frames decides."""
    conditioning_fill: ConditioningFill | None = None
    """The classical fill of the conditioning's holes; None: the one the prior records it was trained with
    (`RGBDPrior.config.conditioning_fill`, set from `TrainConfig.conditioning_fill`)."""
    samples: int = 4
    """Independent samples; holes take their mean, and their spread gives the interval and confidence."""
    overlap: int | None = None
    """Pixels shared by neighbouring tiles; default a third of the prior's patch (16 at 48 px). A fixed 16 on a
    24 px prior would evaluate every pixel 9 times instead of about 2-4 (3x the time for the same blend)."""
    batch_size: int = 256
    """Tiles per UNet call."""
    interval: float = 0.9
    """Coverage of the stated per-pixel interval."""
    sensor_sigma_at_1m: float = 0.0015
    """Kinect v1 depth noise at 1 m (metres); it grows with z^2 (disparity noise plus quantisation)."""
    relative_tolerance: float = 0.03
    """Relative sigma (sigma / depth) at which confidence drops to 0.5."""
    interval_scale: float | None = None
    """Factor on the hole sigma (`hole_sigma`); None: the prior's calibrated one (`model_index.json`)."""
    interval_reach_weight: float | None = None
    """Sigma per metre of depth per pixel of distance into the hole (`hole_sigma`); None: the prior's calibrated
    one (`model_index.json`; 0, the samples' spread alone, where it records none)."""
    interval_far_window: int | None = None
    """Side (pixels) of the box in which a hole pixel's interval reaches the deepest measured depth
    (`far_side_depth`); 0: symmetric intervals; None: the prior's calibrated one (0 where it records none)."""
    seed: int = 0
    precision: Literal["auto", "float32", "bfloat16"] = "auto"
    """UNet arithmetic on the CPU: `auto` is bfloat16 autocast where the CPU computes it natively (AMX or
    AVX512-BF16: twice float32's speed, noise predictions within ~0.003 mean), else float32. GPUs: float32."""


def use_cpu_bfloat16(precision: str, device: torch.device | str) -> bool:
    """Whether refinement runs the UNet under CPU bfloat16 autocast."""
    if torch.device(device).type != "cpu" or precision == "float32":
        return False
    return precision == "bfloat16" or cpu_has_native_bfloat16()


@dataclass
class Refinement:
    """One refined frame: depth (metres), its stated interval and a confidence in [0, 1]."""

    depth: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    sigma: np.ndarray
    """Per-pixel sigma (metres): the sensor's at measured pixels; in holes the stated interval's mean half-width in
    sigmas (wider where the interval reaches a far surface)."""
    confidence: np.ndarray
    samples: np.ndarray
    """(samples, H, W) depth of each independent sample."""


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
    """Noise prediction for whole frames from overlapping patch tiles, blended without seams.

    With `needed` (an (H, W) bool mask), only tiles holding a needed pixel are evaluated. Every tile that
    covers a needed pixel holds it, so the blend there is exactly the full frame's; elsewhere the result is 0.
    Refinement needs only the holes (RePaint overwrites every measured value each step), so hole-free
    tiles, half of a typical Kinect frame's, are skipped at no cost in accuracy.
    """

    def __init__(
        self,
        prior: RGBDPrior,
        height: int,
        width: int,
        overlap: int,
        batch_size: int,
        needed: Tensor | None = None,
    ) -> None:
        p = prior.patch_size
        self.prior, self.patch, self.batch_size = prior, p, batch_size
        origins = [(y, x) for y in tile_starts(height, p, overlap) for x in tile_starts(width, p, overlap)]
        if needed is not None:
            origins = [(y, x) for y, x in origins if bool(needed[y : y + p, x : x + p].any())]
        self.origins = origins
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
        out = torch.zeros_like(x_t)
        if not self.origins:
            return out
        x_tiles = self.tiles(x_t)
        eps_tiles = torch.cat(
            [
                self.prior.predict_noise(x_tiles[i : i + self.batch_size], t, cond_tiles[i : i + self.batch_size])
                for i in range(0, x_tiles.shape[0], self.batch_size)
            ]
        ).view(x_t.shape[0], len(self.origins), *x_tiles.shape[1:])
        p = self.patch
        for k, (y, x) in enumerate(self.origins):
            out[:, :, y : y + p, x : x + p] += eps_tiles[:, k].to(out.dtype) * self.weight
        return out / self.norm.clamp(min=1e-12)


def conditioning_fill(prior: RGBDPrior, config: RefineConfig) -> str:
    """The fill refinement conditions with: the config's, else the one the prior was trained with."""
    return config.conditioning_fill or prior.config.get("conditioning_fill", "nearest")


def start_depth(
    rgb: np.ndarray, raw_depth: np.ndarray, start: str, conditioning_fill: str, cond_code: Tensor
) -> Tensor:
    """(1, 1, H, W) codec depth the holes start from when `strength` < 1; the conditioning's own fill
    (`cond_code`) when it is the same one, so no fill is computed twice."""
    if start == conditioning_fill:
        return cond_code
    filled = hole_fill(raw_depth, rgb, start)
    return encode_depth(torch.from_numpy(filled)[None, None]).to(cond_code)


@torch.no_grad()
def sample_depth(prior: RGBDPrior, rgb: np.ndarray, raw_depth: np.ndarray, config: RefineConfig) -> np.ndarray:
    """(samples, H, W) depth samples in metres from guided DDIM sampling (see the module docstring)."""
    rgb_f = rgb.astype(np.float32) / 255.0 if rgb.dtype == np.uint8 else rgb.astype(np.float32)
    device, dtype = prior.device, prior.unet.dtype
    raw_t = torch.from_numpy(raw_depth)[None, None].to(device)
    known = (raw_t > 0).float()
    obs = encode(torch.from_numpy(rgb_f).permute(2, 0, 1)[None].to(device), raw_t.clamp(min=1e-3))
    known4 = torch.cat([torch.ones_like(known).expand(-1, 3, -1, -1), known], 1)
    height, width = raw_depth.shape
    overlap = prior.patch_size // 3 if config.overlap is None else config.overlap
    holes = known[0, 0] == 0
    if not bool(holes.any()):
        return np.repeat(raw_depth[None], config.samples, 0)
    denoiser = TiledDenoiser(prior, height, width, overlap, config.batch_size, needed=holes)
    fill = conditioning_fill(prior, config)
    cond = observation_channels(raw_depth, rgb, fill)[None].to(device, dtype)
    cond_tiles = denoiser.tiles(cond).repeat(config.samples, 1, 1, 1)

    autocast = torch.autocast("cpu", torch.bfloat16, enabled=use_cpu_bfloat16(config.precision, device))
    scheduler = DDIMScheduler.from_config(prior.scheduler.config, clip_sample=True)  # x0 stays in codec range
    scheduler.set_timesteps(config.steps, device=device)
    timesteps = scheduler.timesteps[scheduler.timesteps < config.strength * prior.num_train_timesteps]
    if len(timesteps) == 0:
        raise ValueError(f"strength {config.strength} leaves no DDIM step out of {config.steps}")
    generator = torch.Generator(device=device).manual_seed(config.seed)
    shape = (config.samples, 4, height, width)
    noise = torch.randn(shape, generator=generator, device=device)
    x = noise
    if config.strength < 1:  # SDEdit: the holes start from a classical fill noised to the first step's level
        start = torch.cat([obs[:, :3], start_depth(rgb, raw_depth, config.start, fill, cond[:, :1].float())], 1)
        x = scheduler.add_noise(start.expand(shape), noise, timesteps[:1])
    x0_hat = x
    for t in timesteps:
        # RePaint: known pixels are the observation at this step's noise level, holes keep the sample.
        noise = torch.randn(shape, generator=generator, device=device)
        x = known4 * scheduler.add_noise(obs.expand(shape), noise, t.reshape(1)) + (1 - known4) * x
        with autocast:
            eps = denoiser(x.to(dtype), t, cond_tiles).float()
        step = scheduler.step(eps, t, x, eta=0.0)
        x, x0_hat = step.prev_sample, step.pred_original_sample
    depth = decode_depth(x0_hat[:, 3]).cpu().numpy()
    return np.where(raw_depth > 0, raw_depth, depth)  # measured pixels were never sampled (no tile may cover them)


def hole_reach(raw_depth: np.ndarray) -> np.ndarray:
    """Per pixel, the distance (pixels) to the nearest measured one: 0 where measured."""
    return ndimage.distance_transform_edt(raw_depth <= 0)


def hole_sigma(samples: np.ndarray, depth: np.ndarray, reach: np.ndarray, reach_weight: float) -> np.ndarray:
    """The uncalibrated sigma of a filled pixel, from its (samples, ...) depth draws: their spread as one more
    draw's, in quadrature with `reach_weight * depth * reach`. Why the second term: any fill's error grows with
    depth and with the distance to the nearest measurement, and a few samples that all start from one classical
    fill do not show it. With the spread alone no single factor served both calibration sources (90% on the
    synthetic rooms left 98.4% on the real validation frames); with both terms fitted, both are within 85-95% and
    sigma ranks the errors better (`benchmarks/results/interval_models.md`)."""
    n = samples.shape[0]
    spread = samples.std(0, ddof=1) * np.sqrt(1.0 + 1.0 / n)
    return np.hypot(spread, reach_weight * depth * reach)


def far_side_depth(raw_depth: np.ndarray, window: int) -> np.ndarray:
    """Per pixel, the deepest measured depth in the `window` x `window` box around it: 0 where the box holds no
    measurement, or for window 0. Why: on 89% of the calibration rooms' hole pixels that a symmetric interval
    missed, the fill was too near (docs/prior.md, "Its interval"), as a Kinect shadow lies on the far side of an
    edge and a fill started from the nearest measurement often takes the near side."""
    if window <= 0:
        return np.zeros_like(raw_depth)
    return ndimage.maximum_filter(raw_depth, size=window, mode="constant", cval=0.0)


def hole_interval(depth: np.ndarray, half_width: np.ndarray, far: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(lower, upper) of a filled pixel: depth -/+ half_width, the upper end at least the far-side depth."""
    return depth - half_width, np.maximum(depth + half_width, far)


def interval_quantile(interval: float, samples: int) -> float:
    """The half-width of the `interval` predictive interval in sigmas: Student t with samples - 1 degrees of
    freedom, since sigma is estimated from the samples."""
    return float(stats.t.ppf(0.5 + interval / 2, df=samples - 1))


def confidence_from_sigma(sigma: np.ndarray, depth: np.ndarray, relative_tolerance: float) -> np.ndarray:
    """Confidence in [0, 1] that falls as the relative spread sigma / depth grows: 1 / (1 + (rel / tol)^2),
    0.5 at `relative_tolerance`. The depth loss multiplies by it, so it must never rise with sigma."""
    return 1.0 / (1.0 + (sigma / np.maximum(depth, 1e-3) / relative_tolerance) ** 2)


def refine_depth(
    prior: RGBDPrior, rgb: np.ndarray, raw_depth: np.ndarray, config: RefineConfig | None = None
) -> Refinement:
    """Refined depth with interval and confidence for one frame.

    `rgb` is (H, W, 3) uint8 or float in [0, 1]; `raw_depth` is (H, W) metres with 0 = missing.
    """
    config = config or RefineConfig()
    if config.samples < 2:
        raise ValueError(f"samples must be >= 2 to estimate the spread, got {config.samples}")
    rgb, raw_depth = np.asarray(rgb), np.asarray(raw_depth, np.float32)
    check_rgbd(rgb, raw_depth, "refine input", prior.patch_size)
    samples = sample_depth(prior, rgb, raw_depth, config)
    observed = raw_depth > 0
    scale = config.interval_scale if config.interval_scale is not None else prior.config.get("interval_scale", 1.0)
    reach_weight = config.interval_reach_weight
    if reach_weight is None:
        reach_weight = prior.config.get("interval_reach_weight", 0.0)
    far_window = config.interval_far_window
    if far_window is None:
        far_window = prior.config.get("interval_far_window", 0)
    depth = np.where(observed, raw_depth, samples.mean(0))
    z_hole = interval_quantile(config.interval, config.samples)
    hole_half = z_hole * scale * hole_sigma(samples, depth, hole_reach(raw_depth), reach_weight)
    hole_lower, hole_upper = hole_interval(depth, hole_half, far_side_depth(raw_depth, far_window))
    sensor_sigma = config.sensor_sigma_at_1m * raw_depth**2
    sensor_half = stats.norm.ppf(0.5 + config.interval / 2) * sensor_sigma
    lower = np.where(observed, depth - sensor_half, hole_lower)
    upper = np.where(observed, depth + sensor_half, hole_upper)
    # sigma: the interval's mean half-width in sigmas, so a hole that may be the far surface is trusted less.
    sigma = np.where(observed, sensor_sigma, (hole_upper - hole_lower) / (2 * z_hole))
    confidence = confidence_from_sigma(sigma, depth, config.relative_tolerance)
    return Refinement(
        depth=depth.astype(np.float32),
        lower=lower.astype(np.float32),
        upper=upper.astype(np.float32),
        sigma=sigma.astype(np.float32),
        confidence=confidence.astype(np.float32),
        samples=samples.astype(np.float32),
    )


def refine_scene(
    prior: RGBDPrior, scene_dir: Path, config: RefineConfig | None = None, train_only: bool = False
) -> Path:
    """Refine the frames of a converted scene; adds the `REFINED_LAYERS` through the scene writer.

    Any nerfstudio RGB-D scene works (`load_scene`: per-frame intrinsics, the scene's depth unit). Each frame is
    refined at its depth map's resolution, with the RGB area-resized to it where the two differ (phone depth is
    often 4x coarser than the images), and its layers are written at that resolution, the refined depth in the
    scene's depth unit: readers then treat them exactly as the raw depth they replace (nerfstudio's depth
    dataset resizes both to the image).

    `train_only` refines just the frames in transforms.json's `train_filenames`: only training views are
    supervised with refined depth (held-out views are scored on raw depth), so the rest would be wasted work.
    """
    scene_dir = Path(scene_dir)
    scene = load_scene(scene_dir)
    wanted = range(len(scene.image_paths))
    if train_only:
        meta = json.loads((scene_dir / "transforms.json").read_text())
        if "train_filenames" not in meta:
            raise ValueError(f"{scene_dir / 'transforms.json'}: --train-only needs a train_filenames list")
        train = {(scene_dir / name).resolve() for name in meta["train_filenames"]}
        wanted = [i for i, path in enumerate(scene.image_paths) if Path(path).resolve() in train]
    wanted = set(wanted)

    def layers() -> Iterator[dict[str, np.ndarray] | None]:
        for i in tqdm(range(len(scene.image_paths)), desc="refining depth"):
            if i not in wanted:
                yield None
                continue
            rgb, raw, _ = scene.rgbd(i)
            result = refine_depth(prior, rgb, raw, config)
            yield {
                "refined_depth_file_path": scene.depth_png(result.depth),
                "depth_confidence_file_path": np.round(result.confidence * CONFIDENCE_PNG_SCALE).astype(np.uint16),
            }

    return write_frame_layers(scene_dir, REFINED_LAYERS, layers())
