"""`RGBDPrior`: one diffusers UNet that is both the unconditional RGB-D patch prior and the
conditional depth refiner, saved as a plain folder (`unet/` + `scheduler/`).

Input channels are the 4 codec channels (RGB + encoded disparity) followed by 2 conditioning
channels: the encoded raw depth (0 where missing) and its validity mask. Training zeroes the
conditioning at random, and a zero mask means "nothing observed", so the unconditional prior is
simply the refiner with an empty observation.
"""

from __future__ import annotations

from pathlib import Path

import torch
from diffusers import DDPMScheduler, UNet2DModel
from torch import Tensor

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


class RGBDPrior(torch.nn.Module):
    """A noise-predicting UNet over RGB-D patches plus the DDPM schedule it was trained with."""

    def __init__(self, unet: UNet2DModel, scheduler: DDPMScheduler) -> None:
        super().__init__()
        _check_unet(unet.config, "the UNet")
        self.unet = unet
        self.scheduler = scheduler
        self.register_buffer("alphas_cumprod", scheduler.alphas_cumprod.clone().float(), persistent=False)

    @classmethod
    def create(
        cls,
        patch_size: int = 48,
        block_out_channels: tuple[int, ...] = (64, 128, 256, 512),
        layers_per_block: int = 2,
        attention: bool = True,
        num_train_timesteps: int = 1000,
    ) -> RGBDPrior:
        """A fresh prior; defaults follow DiffusioNeRF (width 64, multipliers 1-2-4-8, attention)."""
        levels = len(block_out_channels)
        if patch_size % 2 ** (levels - 1):
            raise ValueError(f"patch_size {patch_size} must be divisible by {2 ** (levels - 1)} for {levels} levels")
        # Attention only at the coarsest level, where the sequence is short.
        down = ["DownBlock2D"] * (levels - 1) + ["AttnDownBlock2D" if attention else "DownBlock2D"]
        up = ["AttnUpBlock2D" if attention else "UpBlock2D"] + ["UpBlock2D"] * (levels - 1)
        unet = UNet2DModel(
            sample_size=patch_size,
            in_channels=RGBD_CHANNELS + COND_CHANNELS,
            out_channels=RGBD_CHANNELS,
            block_out_channels=tuple(block_out_channels),
            layers_per_block=layers_per_block,
            down_block_types=tuple(down),
            up_block_types=tuple(up),
            norm_num_groups=min(32, block_out_channels[0]),
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
    def device(self) -> torch.device:
        return next(self.unet.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.unet.parameters()).dtype

    def forward(self, x_t: Tensor, timestep: int | Tensor, cond: Tensor | None = None) -> Tensor:
        """eps_hat for noisy codec patches; `cond` None means unconditional (zero conditioning)."""
        if x_t.ndim != 4 or x_t.shape[1] != RGBD_CHANNELS:
            raise ValueError(f"expected (B, {RGBD_CHANNELS}, H, W) codec patches, got {tuple(x_t.shape)}")
        if cond is None:
            cond = x_t.new_zeros(x_t.shape[0], COND_CHANNELS, *x_t.shape[2:])
        t = torch.as_tensor(timestep, device=x_t.device).long().reshape(-1).expand(x_t.shape[0])
        return self.unet(torch.cat([x_t, cond], dim=1), t).sample

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
            eps = self(x.detach().to(self.device, self.dtype), t)
            sigma = (1.0 - self.alphas_cumprod[t]).sqrt().view(-1, 1, 1, 1)
            return (-eps.float() / sigma).to(x.device, x.dtype)

    def save_pretrained(self, directory: Path | str) -> Path:
        """Write `unet/` (config + safetensors) and `scheduler/` so the folder is the whole prior."""
        directory = Path(directory)
        self.unet.save_pretrained(directory / "unet", safe_serialization=True)
        self.scheduler.save_pretrained(directory / "scheduler")
        return directory

    @classmethod
    def from_pretrained(
        cls, directory: Path | str, patch_size: int | None = None, device: str | torch.device = "cpu"
    ) -> RGBDPrior:
        """Load a prior folder, failing with a message that names what is missing or incompatible."""
        directory = Path(directory)
        for part in ("unet/config.json", "scheduler/scheduler_config.json"):
            if not (directory / part).is_file():
                raise FileNotFoundError(
                    f"{directory}: not a prior folder ({part} missing); train one with `diffnerf-prior train`"
                )
        config = UNet2DModel.load_config(directory / "unet")
        _check_unet(config, str(directory))
        if patch_size is not None and int(config["sample_size"]) != patch_size:
            raise ValueError(f"{directory}: prior was trained on {config['sample_size']} px patches, not {patch_size}")
        unet = UNet2DModel.from_pretrained(directory / "unet")
        scheduler = DDPMScheduler.from_pretrained(directory / "scheduler")
        return cls(unet, scheduler).to(device).eval()


def _check_unet(config: dict, where: str) -> None:
    """Reject UNets that do not read RGB-D + conditioning and predict RGB-D noise."""
    want_in, want_out = RGBD_CHANNELS + COND_CHANNELS, RGBD_CHANNELS
    if config["in_channels"] != want_in or config["out_channels"] != want_out:
        raise ValueError(
            f"{where}: UNet has {config['in_channels']} input / {config['out_channels']} output channels; "
            f"an RGB-D prior needs {want_in} (RGB-D + raw depth + mask) / {want_out}"
        )
