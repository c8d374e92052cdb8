"""`RGBDPrior`: a diffusers pipeline holding one UNet that is both the unconditional RGB-D patch prior
and the conditional depth refiner, plus the DDPM schedule it was trained with.

Saving, loading, `.to()` and `model_index.json` come from `DiffusionPipeline`; the folder is
`model_index.json` + `unet/` + `scheduler/`. Input channels are the 4 codec channels (RGB + encoded
depth) followed by 2 conditioning channels: the encoded raw depth (holes nearest-filled) and its
validity mask. Training zeroes the conditioning at random, and a zero mask means "nothing observed",
so the unconditional prior is simply the refiner with an empty observation.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal, get_args

import torch
from diffusers import DDPMScheduler, DiffusionPipeline, UNet2DModel
from torch import Tensor

from diffnerf_ns.prior.rgbd_codec import CODEC_NAME

RGBD_CHANNELS = 4
COND_CHANNELS = 2


def make_scheduler(num_train_timesteps: int = 1000) -> DDPMScheduler:
    """The DiffusioNeRF training schedule: cosine betas, epsilon prediction, no clipping."""
    return DDPMScheduler(
        num_train_timesteps=num_train_timesteps,
        beta_schedule="squaredcos_cap_v2",
        prediction_type="epsilon",
        clip_sample=False,
    )


def predict_noise(unet: torch.nn.Module, x_t: Tensor, timestep: int | Tensor, cond: Tensor | None = None) -> Tensor:
    """eps_hat for noisy codec patches; `cond` None means unconditional (zero conditioning).

    Takes the UNet (possibly DDP-wrapped by accelerate) rather than the pipeline, so training
    gradients are synchronised across processes.
    """
    if x_t.ndim != 4 or x_t.shape[1] != RGBD_CHANNELS:
        raise ValueError(f"expected (B, {RGBD_CHANNELS}, H, W) codec patches, got {tuple(x_t.shape)}")
    if cond is None:
        cond = x_t.new_zeros(x_t.shape[0], COND_CHANNELS, *x_t.shape[2:])
    t = torch.as_tensor(timestep, device=x_t.device).long().reshape(-1).expand(x_t.shape[0])
    return unet(torch.cat([x_t, cond.to(x_t.dtype)], dim=1), t).sample


ConditioningFill = Literal["nearest", "colorization"]
"""Classical fills a prior's conditioning may be pre-filled with (`diffnerf_ns.prior.baselines.HOLE_FILLS`)."""


class RGBDPrior(DiffusionPipeline):
    """A noise-predicting UNet over RGB-D patches plus its DDPM schedule, as a diffusers pipeline."""

    def __init__(
        self,
        unet: UNet2DModel,
        scheduler: DDPMScheduler,
        depth_codec: str = CODEC_NAME,
        interval_scale: float = 1.0,
        conditioning_fill: str = "nearest",  # a ConditioningFill, checked below (diffusers warns on Literal)
        interval_reach_weight: float = 0.0,
        interval_far_window: int = 0,
    ) -> None:
        """`interval_scale` and `interval_reach_weight` set the sigma of refinement's holes
        (`diffnerf_ns.prior.refine.hole_sigma`), and `interval_far_window` lets a hole's interval reach the deepest
        depth measured in that box around it (`refine.far_side_depth`), so its stated intervals hold; all three are
        fitted by `diffnerf_ns.prior.calibration` on frames no benchmark scores (1, 0, 0: uncalibrated, the spread
        alone).
        `conditioning_fill` is the classical fill of the conditioning's holes the UNet was trained with; refinement
        uses the same one unless told otherwise (a folder that records none was trained with `nearest`)."""
        super().__init__()
        check_unet(unet.config, "the UNet")
        check_codec(depth_codec, "the prior")
        if not interval_scale > 0:
            raise ValueError(f"interval_scale must be > 0, got {interval_scale}")
        if not interval_reach_weight >= 0:
            raise ValueError(f"interval_reach_weight must be >= 0, got {interval_reach_weight}")
        if int(interval_far_window) != interval_far_window or interval_far_window < 0:
            raise ValueError(f"interval_far_window must be a whole number of pixels >= 0, got {interval_far_window}")
        if conditioning_fill not in get_args(ConditioningFill):
            raise ValueError(f"conditioning_fill {conditioning_fill!r}: one of {get_args(ConditioningFill)}")
        self.register_modules(unet=unet, scheduler=scheduler)
        self.register_to_config(
            depth_codec=depth_codec,
            interval_scale=float(interval_scale),
            conditioning_fill=conditioning_fill,
            interval_reach_weight=float(interval_reach_weight),
            interval_far_window=int(interval_far_window),
        )

    @classmethod
    def create(
        cls,
        patch_size: int = 48,
        block_out_channels: tuple[int, ...] = (32, 64, 128, 192),
        layers_per_block: int = 2,
        attention: bool = True,
        num_train_timesteps: int = 1000,
    ) -> RGBDPrior:
        """A fresh prior. DiffusioNeRF used width 64 (64-128-256-512, 62M parameters, 250 MB); the default
        here is 10M parameters, 20 MB in float16, so a trained prior can ship inside the package."""
        levels = len(block_out_channels)
        if patch_size % 2 ** (levels - 1):
            raise ValueError(f"patch_size {patch_size} must be divisible by {2 ** (levels - 1)} for {levels} levels")
        # Attention only at the coarsest level, where the sequence is short.
        down = ["DownBlock2D"] * (levels - 1) + ["AttnDownBlock2D" if attention else "DownBlock2D"]
        up = ["AttnUpBlock2D" if attention else "UpBlock2D"] + ["UpBlock2D"] * (levels - 1)
        groups = 32 if block_out_channels[0] % 32 == 0 else 16 if block_out_channels[0] % 16 == 0 else 8
        unet = UNet2DModel(
            sample_size=patch_size,
            in_channels=RGBD_CHANNELS + COND_CHANNELS,
            out_channels=RGBD_CHANNELS,
            block_out_channels=tuple(block_out_channels),
            layers_per_block=layers_per_block,
            down_block_types=tuple(down),
            up_block_types=tuple(up),
            norm_num_groups=groups,
        )
        return cls(unet, make_scheduler(num_train_timesteps))

    @property
    def patch_size(self) -> int:
        """Side of the square patches the UNet was trained on."""
        return int(self.unet.config.sample_size)

    @property
    def num_train_timesteps(self) -> int:
        return int(self.scheduler.config.num_train_timesteps)

    @property
    def alphas_cumprod(self) -> Tensor:
        """alpha_bar_t of the training schedule, on the UNet's device."""
        return self.scheduler.alphas_cumprod.to(self.device, torch.float32)

    def eval(self) -> RGBDPrior:
        self.unet.eval()
        return self

    def requires_grad_(self, requires_grad: bool = True) -> RGBDPrior:
        self.unet.requires_grad_(requires_grad)
        return self

    def predict_noise(self, x_t: Tensor, timestep: int | Tensor, cond: Tensor | None = None) -> Tensor:
        """eps_hat for noisy codec patches (see `predict_noise`)."""
        return predict_noise(self.unet, x_t, timestep, cond)

    def score(self, x: Tensor, timestep: int | Tensor) -> Tensor:
        """Score `-eps_hat / sqrt(1 - alpha_bar_t)` of codec patches (B, 4, P, P) treated as noisy at t.

        No graph through the UNet: the regulariser applies it as a fixed gradient direction.
        Runs on the prior's device and dtype and returns a tensor like `x`.
        """
        if x.ndim != 4 or x.shape[1] != RGBD_CHANNELS or x.shape[-2:] != (self.patch_size, self.patch_size):
            raise ValueError(
                f"score expects (B, {RGBD_CHANNELS}, {self.patch_size}, {self.patch_size}) codec patches, "
                f"got {tuple(x.shape)}"
            )
        t = torch.as_tensor(timestep, device=self.device).long().reshape(-1).expand(x.shape[0])
        if bool(((t < 0) | (t >= self.num_train_timesteps)).any()):
            raise ValueError(f"timestep must lie in [0, {self.num_train_timesteps}), got {t.tolist()}")
        with torch.no_grad():
            eps = self.predict_noise(x.detach().to(self.device, self.unet.dtype), t)
            sigma = (1.0 - self.alphas_cumprod[t]).sqrt().view(-1, 1, 1, 1)
            return (-eps.float() / sigma).to(x.device, x.dtype)

    @classmethod
    def from_pretrained(
        cls,
        directory: Path | str,
        patch_size: int | None = None,
        device: str | torch.device = "cpu",
        dtype: torch.dtype = torch.float32,
        **kwargs,
    ) -> RGBDPrior:
        """Load a prior folder, failing with a message that names what is missing or incompatible.

        Weights may be stored in float16 (the shipped prior); they are cast to `dtype`.
        """
        directory = Path(directory)
        index = directory / "model_index.json"
        if not index.is_file():
            hint = (
                " (a prior saved before the diffusers-pipeline format, with the old disparity codec: retrain it)"
                if (directory / "unet" / "config.json").is_file()
                else ""
            )
            raise FileNotFoundError(
                f"{directory}: not a prior folder (model_index.json missing){hint}; "
                "train one with `diffnerf-prior train`"
            )
        check_codec(json.loads(index.read_text()).get("depth_codec", "disparity"), str(directory))
        for part in ("unet/config.json", "scheduler/scheduler_config.json"):
            if not (directory / part).is_file():
                raise FileNotFoundError(f"{directory}: not a prior folder ({part} missing)")
        config = UNet2DModel.load_config(directory / "unet")
        check_unet(config, str(directory))
        if patch_size is not None and int(config["sample_size"]) != patch_size:
            raise ValueError(f"{directory}: prior was trained on {config['sample_size']} px patches, not {patch_size}")
        prior = super().from_pretrained(directory, dtype=dtype, **kwargs)
        return prior.to(device).eval()


def check_unet(config: dict, where: str) -> None:
    """Reject UNets that do not read RGB-D + conditioning and predict RGB-D noise."""
    want_in, want_out = RGBD_CHANNELS + COND_CHANNELS, RGBD_CHANNELS
    if config["in_channels"] != want_in or config["out_channels"] != want_out:
        raise ValueError(
            f"{where}: UNet has {config['in_channels']} input / {config['out_channels']} output channels; "
            f"an RGB-D prior needs {want_in} (RGB-D + raw depth + mask) / {want_out}"
        )


def check_codec(depth_codec: str, where: str) -> None:
    """Reject priors whose depth channel was encoded differently from `rgbd_codec` (they would see garbage)."""
    if depth_codec != CODEC_NAME:
        raise ValueError(f"{where}: prior was trained with depth codec {depth_codec!r}, this code uses {CODEC_NAME!r}")
