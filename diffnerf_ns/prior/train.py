"""Training the RGB-D prior: epsilon-prediction L1 (DiffusioNeRF) plus an optional Sobel edge loss.

Runs through accelerate, so the same loop covers CPU, one GPU with mixed precision, and
`accelerate launch` multi-GPU. The dataset is deterministic per index, so resuming at step `s`
continues with exactly the patches an uninterrupted run would have seen.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

import torch
import torch.nn.functional as F
from accelerate import Accelerator
from accelerate.utils import set_seed
from diffusers import UNet2DModel
from diffusers.optimization import get_cosine_schedule_with_warmup
from diffusers.training_utils import EMAModel
from torch import Tensor
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from diffnerf_ns.device import default_device
from diffnerf_ns.prior.model import RGBDPrior
from diffnerf_ns.prior.patches import RGBDPatchDataset, TrainingFrame

_SOBEL_X = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]]) / 8.0


@dataclass
class TrainConfig:
    """Hyper-parameters; defaults are the DiffusioNeRF-sized prior for a GPU."""

    out: Path = Path("outputs/prior")
    """Final prior folder; checkpoints go to `<out>/checkpoints/`."""
    patch_size: int = 48
    block_out_channels: tuple[int, ...] = (64, 128, 256, 512)
    layers_per_block: int = 2
    attention: bool = True
    steps: int = 100_000
    batch_size: int = 64
    lr: float = 2e-4
    warmup_steps: int = 1000
    weight_decay: float = 1e-2
    ema_decay: float = 0.9999
    cond_drop_prob: float = 0.3
    """Probability that a patch's conditioning is zeroed, training the unconditional prior."""
    sobel_weight: float = 0.0
    """Weight of the edge loss on Sobel gradients of the reconstructed clean patch (0 = off)."""
    checkpoint_every: int = 5000
    keep_checkpoints: int = 2
    resume: bool = True
    """Continue from the newest checkpoint under `<out>/checkpoints/` when there is one."""
    max_minutes: float | None = None
    """Stop (and save) after this much wall time even if `steps` are not done; for bounded CPU runs."""
    seed: int = 0
    num_workers: int = 0
    mixed_precision: Literal["auto", "no", "fp16", "bf16"] = "auto"
    """`auto`: bf16 (or fp16) on CUDA, full precision on CPU."""


def sobel(x: Tensor) -> Tensor:
    """Per-channel horizontal and vertical Sobel responses, (B, 2C, H, W)."""
    c = x.shape[1]
    kernels = torch.stack([_SOBEL_X, _SOBEL_X.T]).to(x)[:, None].repeat(c, 1, 1, 1)
    return F.conv2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), kernels, groups=c)


def denoising_loss(
    prior: RGBDPrior,
    x0: Tensor,
    cond: Tensor,
    t: Tensor,
    noise: Tensor,
    sobel_weight: float = 0.0,
    net: torch.nn.Module | None = None,
) -> Tensor:
    """L1 on the noise prediction, plus the Sobel loss on x0_hat weighted by alpha_bar.

    `net` is the (possibly DDP-wrapped) prior to call, so multi-GPU gradients are synchronised.

    Weighting by alpha_bar cancels the 1/sqrt(alpha_bar) blow-up of x0_hat at high noise, where an
    edge loss carries no information anyway.
    """
    x_t = prior.scheduler.add_noise(x0, noise, t)
    eps = (net or prior)(x_t, t, cond).float()
    loss = (eps - noise).abs().mean()
    if sobel_weight > 0:
        abar = prior.alphas_cumprod[t].view(-1, 1, 1, 1)
        x0_hat = (x_t - (1 - abar).sqrt() * eps) / abar.sqrt()
        loss = loss + sobel_weight * (abar * (sobel(x0_hat) - sobel(x0)).abs()).mean()
    return loss


def _mixed_precision(choice: str) -> str:
    if choice != "auto":
        return choice
    if default_device() != "cuda":
        return "no"
    return "bf16" if torch.cuda.is_bf16_supported() else "fp16"


def _latest_checkpoint(out: Path) -> Path | None:
    checkpoints = sorted((out / "checkpoints").glob("step-*"))
    return checkpoints[-1] if checkpoints else None


def train_prior(frames: Sequence[TrainingFrame], config: TrainConfig) -> list[float]:
    """Train (or resume) a prior on patches of `frames`, save it to `config.out`; return per-step losses."""
    accelerator = Accelerator(mixed_precision=_mixed_precision(config.mixed_precision))
    set_seed(config.seed)
    out = Path(config.out)
    resume_from = _latest_checkpoint(out) if config.resume else None
    if resume_from is not None:
        prior = RGBDPrior.from_pretrained(resume_from / "ema_prior", patch_size=config.patch_size)
    else:
        prior = RGBDPrior.create(
            config.patch_size, config.block_out_channels, config.layers_per_block, config.attention
        )
    prior.train()
    dataset = RGBDPatchDataset(
        frames,
        config.patch_size,
        length=config.steps * config.batch_size * accelerator.num_processes,
        cond_drop_prob=config.cond_drop_prob,
        seed=config.seed,
    )
    loader = DataLoader(dataset, batch_size=config.batch_size, num_workers=config.num_workers, drop_last=True)
    optimizer = torch.optim.AdamW(prior.unet.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    lr_schedule = get_cosine_schedule_with_warmup(
        optimizer, config.warmup_steps * accelerator.num_processes, config.steps * accelerator.num_processes
    )
    ema = EMAModel(
        prior.unet.parameters(),
        decay=config.ema_decay,
        use_ema_warmup=True,
        model_cls=UNet2DModel,
        model_config=prior.unet.config,
    )
    prior, optimizer, loader, lr_schedule = accelerator.prepare(prior, optimizer, loader, lr_schedule)
    model: RGBDPrior = accelerator.unwrap_model(prior)
    ema.to(accelerator.device)
    start = 0
    if resume_from is not None:
        accelerator.load_state(str(resume_from / "state"))
        ema.load_state_dict(torch.load(resume_from / "ema.pt", map_location="cpu", weights_only=True))
        ema.to(accelerator.device)
        start = json.loads((resume_from / "progress.json").read_text())["step"]
        loader = accelerator.skip_first_batches(loader, start)

    losses: list[float] = []
    started = time.monotonic()
    bar = tqdm(
        total=config.steps, initial=start, desc="training prior", disable=not accelerator.is_local_main_process
    )
    for step, batch in enumerate(loader, start=start + 1):
        x0, cond = batch["x"], batch["cond"]
        # Noise from a per-step generator, so a resumed run draws exactly what the original would have.
        generator = torch.Generator(x0.device).manual_seed(config.seed + 1_000_003 * step + accelerator.process_index)
        noise = torch.randn(x0.shape, generator=generator, device=x0.device, dtype=x0.dtype)
        t = torch.randint(0, model.num_train_timesteps, (x0.shape[0],), generator=generator, device=x0.device)
        with accelerator.autocast():
            loss = denoising_loss(model, x0, cond, t, noise, config.sobel_weight, net=prior)
        accelerator.backward(loss)
        if accelerator.sync_gradients:
            accelerator.clip_grad_norm_(prior.parameters(), 1.0)
        optimizer.step()
        lr_schedule.step()
        optimizer.zero_grad(set_to_none=True)
        ema.step(model.unet.parameters())
        losses.append(float(accelerator.gather(loss.detach()).mean()))
        bar.update(1)
        bar.set_postfix(loss=f"{losses[-1]:.4f}", lr=f"{lr_schedule.get_last_lr()[0]:.2e}")
        if step % config.checkpoint_every == 0 and step < config.steps:
            _save_checkpoint(accelerator, model, ema, out, step, config)
        out_of_time = config.max_minutes is not None and time.monotonic() - started > 60 * config.max_minutes
        if step >= config.steps or accelerator.gather(torch.tensor([out_of_time], device=x0.device)).any():
            break
    bar.close()
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        _save_ema_prior(model, ema, out)
        (out / "train_config.json").write_text(json.dumps(asdict(config), indent=2, default=str))
    return losses


def _save_ema_prior(model: RGBDPrior, ema: EMAModel, directory: Path) -> None:
    """Save the EMA weights as a prior folder without disturbing the training weights."""
    ema.store(model.unet.parameters())
    ema.copy_to(model.unet.parameters())
    model.save_pretrained(directory)
    ema.restore(model.unet.parameters())


def _save_checkpoint(
    accelerator: Accelerator, model: RGBDPrior, ema: EMAModel, out: Path, step: int, config: TrainConfig
) -> None:
    """`step-N/`: `ema_prior/` (usable on its own), `state/` + `ema.pt` + `progress.json` to resume."""
    directory = out / "checkpoints" / f"step-{step:08d}"
    accelerator.save_state(str(directory / "state"))
    if accelerator.is_main_process:
        torch.save(ema.state_dict(), directory / "ema.pt")
        _save_ema_prior(model, ema, directory / "ema_prior")
        (directory / "progress.json").write_text(json.dumps({"step": step}))
        for old in sorted((out / "checkpoints").glob("step-*"))[: -config.keep_checkpoints]:
            shutil.rmtree(old)
    accelerator.wait_for_everyone()
