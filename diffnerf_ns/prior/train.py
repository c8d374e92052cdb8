"""Training the RGB-D prior: epsilon-prediction L1 (DiffusioNeRF) plus an optional Sobel edge loss.

Runs through accelerate, so the same loop covers CPU, one GPU with mixed precision, and
`accelerate launch` multi-GPU. Patch sampling (crops, Kinect corruption, nearest fills) is off the
critical path: steps draw batches from a `PatchBank` of pre-rendered patches on the training device,
and DataLoader workers render replacement chunks in the background. Bank contents, batch indices and
noise are all functions of the step, so resuming at step `s` continues exactly as an uninterrupted run.
"""

from __future__ import annotations

import json
import platform
import shutil
import time
from collections.abc import Iterator, Sequence
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
from diffnerf_ns.prior.model import ConditioningFill, RGBDPrior, predict_noise
from diffnerf_ns.prior.patches import RGBDPatchDataset, TrainingFrame

SYNC_EVERY_ON_ACCELERATOR = 25
"""Steps between host reads (losses, the time limit) on a GPU: a read every step stalls its launch queue."""
_SOBEL_X = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]]) / 8.0


@dataclass
class TrainConfig:
    """Hyper-parameters; defaults are the shippable prior (10M parameters) for a GPU."""

    out: Path = Path("outputs/prior")
    """Final prior folder; checkpoints go to `<out>/checkpoints/`."""
    init_from: Path | None = None
    """Fine-tune: start from this prior folder's weights (its architecture and patch size win)."""
    init_step: int = 0
    """Steps `init_from` was already trained for (its model card says): the learning-rate schedule, the EMA's
    decay warm-up and the patch stream continue from there instead of starting over."""
    patch_size: int = 48
    block_out_channels: tuple[int, ...] = (32, 64, 128, 192)
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
    conditioning_fill: ConditioningFill = "nearest"
    """Classical fill of the conditioning's holes (`patches.observation_channels`); refinement must condition with
    the same one (`RefineConfig.conditioning_fill`)."""
    hole_weight: float = 4.0
    """Extra weight of the depth channel's loss at the conditioning's holes: the pixels refinement invents."""
    crops_per_frame: int = 64
    """Consecutive patches cut from one whole-frame Kinect corruption (it costs ~0.1 s per 640x480 frame)."""
    bank_size: int = 8192
    """Pre-rendered patches held on the training device; batches are drawn from it at random."""
    bank_chunk: int = 256
    """Patches per bank refresh; each refresh replaces the oldest chunk."""
    bank_refresh_every: int = 8
    """Steps between refreshes: every patch is seen about batch * refresh_every * bank / chunk / bank times."""
    num_workers: int = 0
    """DataLoader workers rendering bank chunks in the background (0 = in the training process)."""
    checkpoint_every: int = 5000
    keep_checkpoints: int = 2
    resume: bool = True
    """Continue from the newest checkpoint under `<out>/checkpoints/` when there is one."""
    max_minutes: float | None = None
    """Stop (and save) after this much wall time even if `steps` are not done; for bounded runs."""
    deadline: float | None = None
    """Absolute stop time (`time.time()` seconds): a bounded session counts it from its own start, so the
    setup before the loop comes out of the training time instead of pushing the final save past a hard cap."""
    save_every_seconds: float | None = None
    """Also save the EMA prior to `out` (as the final save does) this often: a run killed later keeps it."""
    channels_last: bool = True
    """On CUDA, keep the UNet's conv weights NHWC (the tensor cores' native layout)."""
    half_precision_weights: bool = False
    """Save the final prior's weights in float16 (half the size; loading casts back to float32)."""
    seed: int = 0
    mixed_precision: Literal["auto", "no", "fp16", "bf16"] = "auto"
    """`auto`: bf16 (or fp16) on CUDA, full precision on CPU."""


def sobel(x: Tensor) -> Tensor:
    """Per-channel horizontal and vertical Sobel responses, (B, 2C, H, W)."""
    c = x.shape[1]
    kernels = torch.stack([_SOBEL_X, _SOBEL_X.T]).to(x)[:, None].repeat(c, 1, 1, 1)
    return F.conv2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), kernels, groups=c)


def predicted_x0(x_t: Tensor, eps: Tensor, alpha_bar: Tensor) -> Tensor:
    """The clean patch implied by a noise prediction: (x_t - sqrt(1 - abar) eps) / sqrt(abar)."""
    return (x_t - (1 - alpha_bar).sqrt() * eps) / alpha_bar.sqrt()


def denoising_loss(
    prior: RGBDPrior,
    x0: Tensor,
    cond: Tensor,
    t: Tensor,
    noise: Tensor,
    sobel_weight: float = 0.0,
    net: torch.nn.Module | None = None,
    hole_weight: float = 0.0,
) -> Tensor:
    """L1 on the noise prediction, plus the Sobel loss on x0_hat weighted by alpha_bar.

    `net` is the (possibly DDP-wrapped) UNet to call, so multi-GPU gradients are synchronised.
    `hole_weight` adds weight to the depth channel where the conditioning observed some pixels but not
    this one: holes are ~10% of pixels, so an unweighted loss spends its capacity on what refinement
    already knows (RGB, measured depth).
    Weighting by alpha_bar cancels the 1/sqrt(alpha_bar) blow-up of x0_hat at high noise, where an
    edge loss carries no information anyway.
    """
    x_t = prior.scheduler.add_noise(x0, noise, t)
    eps = predict_noise(net or prior.unet, x_t, t, cond).float()
    error = (eps - noise).abs()
    if hole_weight > 0:
        observed = cond[:, 1:2] > 0.5
        holes = observed.flatten(1).any(1).view(-1, 1, 1, 1) & ~observed
        error = torch.cat([error[:, :3], error[:, 3:] * (1.0 + hole_weight * holes)], 1)
    loss = error.mean()
    if sobel_weight > 0:
        abar = prior.alphas_cumprod.to(x0.device)[t].view(-1, 1, 1, 1)
        x0_hat = predicted_x0(x_t, eps, abar)
        loss = loss + sobel_weight * (abar * (sobel(x0_hat) - sobel(x0)).abs()).mean()
    return loss


class PatchBank:
    """Pre-rendered training patches on the training device, refreshed chunk by chunk in the background.

    Chunk `c` is dataset items `[c * chunk, (c + 1) * chunk)` and lives in slot `c % slots`. Before
    step `s` (1-based), `r = (s - 1) // refresh_every` refreshes have happened and the bank holds
    chunks `r .. r + slots - 1`, so a resumed run rebuilds exactly the bank it had.
    """

    def __init__(
        self,
        dataset: RGBDPatchDataset,
        size: int,
        chunk: int,
        refresh_every: int,
        num_workers: int,
        device: torch.device,
        start_step: int = 0,
        pin_memory: bool = False,
    ) -> None:
        if size < chunk or chunk < 1 or refresh_every < 1:
            raise ValueError(f"bank_size {size} must be >= bank_chunk {chunk} >= 1, refresh_every >= 1")
        self.slots, self.chunk, self.refresh_every = size // chunk, chunk, refresh_every
        self.refreshes = start_step // refresh_every
        first_item = self.refreshes * chunk
        loader = DataLoader(
            dataset,
            batch_size=chunk,
            sampler=range(first_item, len(dataset)),
            num_workers=num_workers,
            persistent_workers=num_workers > 0,
            prefetch_factor=2 if num_workers > 0 else None,
            pin_memory=pin_memory,
        )
        self._chunks: Iterator[dict[str, Tensor]] = iter(loader)
        self.device = device
        self.x = self.cond = torch.empty(0)
        for c in range(self.refreshes, self.refreshes + self.slots):
            self._store(c, next(self._chunks))

    def _store(self, c: int, batch: dict[str, Tensor]) -> None:
        if self.x.numel() == 0:
            self.x = torch.empty(self.slots * self.chunk, *batch["x"].shape[1:], device=self.device)
            self.cond = torch.empty(self.slots * self.chunk, *batch["cond"].shape[1:], device=self.device)
        rows = slice((c % self.slots) * self.chunk, (c % self.slots + 1) * self.chunk)
        self.x[rows] = batch["x"].to(self.device, non_blocking=True)
        self.cond[rows] = batch["cond"].to(self.device, non_blocking=True)

    def batch(self, step: int, size: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        """The (x, cond) batch of 1-based `step`, refreshing the bank first when it is due."""
        while (step - 1) // self.refresh_every > self.refreshes:
            self.refreshes += 1
            self._store(self.refreshes + self.slots - 1, next(self._chunks))
        index = torch.randint(0, len(self.x), (size,), generator=generator, device=generator.device)
        return self.x[index.to(self.device)], self.cond[index.to(self.device)]


def _out_of_time(config: TrainConfig, started: float) -> bool:
    if config.max_minutes is not None and time.monotonic() - started > 60 * config.max_minutes:
        return True
    return config.deadline is not None and time.time() > config.deadline


def _mixed_precision(choice: str) -> str:
    if choice != "auto":
        return choice
    if default_device() != "cuda":
        return "no"
    return "bf16" if torch.cuda.is_bf16_supported() else "fp16"


def _lr_schedule(optimizer: torch.optim.Optimizer, config: TrainConfig, processes: int, start: int):
    """Warm-up then cosine decay over `config.steps`, positioned at `start` (a continued prior skips the warm-up
    it already had; a resumed checkpoint loads its own position instead)."""
    if start > 0:
        for group in optimizer.param_groups:
            group.setdefault("initial_lr", group["lr"])
    return get_cosine_schedule_with_warmup(
        optimizer, config.warmup_steps * processes, config.steps * processes, last_epoch=start * processes - 1
    )


def _latest_checkpoint(out: Path) -> Path | None:
    checkpoints = sorted((out / "checkpoints").glob("step-*"))
    return checkpoints[-1] if checkpoints else None


def _initial_prior(config: TrainConfig, resume_from: Path | None) -> RGBDPrior:
    """The checkpoint resumed (whose conditioning fill must be the config's), or the prior fine-tuned from, or a
    fresh one; the last two record the config's conditioning fill from now on."""
    if resume_from is not None:
        prior = RGBDPrior.from_pretrained(resume_from / "ema_prior")
        recorded = prior.config.get("conditioning_fill", "nearest")
        if recorded != config.conditioning_fill:
            raise ValueError(
                f"{resume_from}: this run was trained with conditioning_fill={recorded!r}, not "
                f"{config.conditioning_fill!r}; resume with the same fill, or start over (--no-resume)"
            )
        return prior
    if config.init_from is not None:
        prior = RGBDPrior.from_pretrained(config.init_from)
    else:
        prior = RGBDPrior.create(
            config.patch_size, config.block_out_channels, config.layers_per_block, config.attention
        )
    prior.register_to_config(conditioning_fill=config.conditioning_fill)
    return prior


def train_prior(frames: Sequence[TrainingFrame], config: TrainConfig) -> list[float]:
    """Train (or resume, or fine-tune) a prior on patches of `frames`, save it to `config.out`; return losses."""
    accelerator = Accelerator(mixed_precision=_mixed_precision(config.mixed_precision))
    set_seed(config.seed)
    cuda = accelerator.device.type == "cuda"
    torch.backends.cudnn.benchmark = cuda  # fixed patch and batch shapes: pick the fastest conv kernels once
    out = Path(config.out)
    resume_from = _latest_checkpoint(out) if config.resume else None
    prior = _initial_prior(config, resume_from)
    prior.unet.train()
    if cuda and config.channels_last:
        prior.unet.to(memory_format=torch.channels_last)
    if resume_from is not None:
        start = json.loads((resume_from / "progress.json").read_text())["step"]
    else:
        start = config.init_step if config.init_from is not None else 0
    dataset = RGBDPatchDataset(
        frames,
        prior.patch_size,
        length=2**62,
        cond_drop_prob=config.cond_drop_prob,
        seed=config.seed + 7919 * accelerator.process_index,
        crops_per_frame=config.crops_per_frame,
        conditioning_fill=config.conditioning_fill,
    )
    optimizer = torch.optim.AdamW(prior.unet.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    lr_schedule = _lr_schedule(optimizer, config, accelerator.num_processes, start if resume_from is None else 0)
    ema = EMAModel(
        prior.unet.parameters(),
        decay=config.ema_decay,
        use_ema_warmup=True,
        model_cls=UNet2DModel,
        model_config=prior.unet.config,
        foreach=True,
    )
    unet, optimizer, lr_schedule = accelerator.prepare(prior.unet, optimizer, lr_schedule)
    ema.optimization_step = start  # a fine-tuned prior's EMA decays as slowly as its step count says
    ema.to(accelerator.device)
    if resume_from is not None:
        accelerator.load_state(str(resume_from / "state"))
        ema.load_state_dict(torch.load(resume_from / "ema.pt", map_location="cpu", weights_only=True))
        ema.to(accelerator.device)
    # A short run never draws more than steps * batch patches: do not render a bigger bank than that.
    bank_size = min(config.bank_size, config.steps * config.batch_size)
    bank = PatchBank(
        dataset,
        bank_size,
        min(config.bank_chunk, bank_size),
        config.bank_refresh_every,
        config.num_workers,
        accelerator.device,
        start,
        pin_memory=cuda,
    )

    losses: list[float] = []
    pending: list[Tensor] = []  # losses not read back yet: reading each step's would stall a GPU's launch queue
    sync_every = 1 if accelerator.device.type == "cpu" else SYNC_EVERY_ON_ACCELERATOR
    started = last_save = time.monotonic()
    data_wait = 0.0  # seconds the loop spent on bank refreshes and batch gathering (workers too slow shows here)
    bar = tqdm(total=config.steps, initial=start, desc="training prior", disable=not accelerator.is_local_main_process)
    for step in range(start + 1, config.steps + 1):
        # Batch, noise and timesteps from a per-step generator: a resumed run draws what the original would have.
        generator = torch.Generator(accelerator.device).manual_seed(
            config.seed + 1_000_003 * step + accelerator.process_index
        )
        waited = time.monotonic()
        x0, cond = bank.batch(step, config.batch_size, generator)
        data_wait += time.monotonic() - waited
        noise = torch.randn(x0.shape, generator=generator, device=x0.device, dtype=x0.dtype)
        t = torch.randint(0, prior.num_train_timesteps, (x0.shape[0],), generator=generator, device=x0.device)
        with accelerator.autocast():
            loss = denoising_loss(prior, x0, cond, t, noise, config.sobel_weight, unet, config.hole_weight)
        accelerator.backward(loss)
        if accelerator.sync_gradients:
            accelerator.clip_grad_norm_(unet.parameters(), 1.0)
        optimizer.step()
        lr_schedule.step()
        optimizer.zero_grad(set_to_none=True)
        ema.step(prior.unet.parameters())
        pending.append(loss.detach())
        bar.update(1)
        if step % config.checkpoint_every == 0 and step < config.steps:
            _save_checkpoint(accelerator, prior, ema, out, step, config)
        if step % sync_every and step < config.steps:
            continue
        losses += _gathered_means(accelerator, pending)
        pending = []
        bar.set_postfix(loss=f"{losses[-1]:.4f}", lr=f"{lr_schedule.get_last_lr()[0]:.2e}")
        if config.save_every_seconds is not None and time.monotonic() - last_save > config.save_every_seconds:
            last_save = time.monotonic()
            if accelerator.is_main_process:
                prior.unet = accelerator.unwrap_model(unet)
                _save_final(prior, ema, out, config, _stats(losses, started, data_wait, accelerator, start, config))
            accelerator.wait_for_everyone()
        out_of_time = _out_of_time(config, started)
        if accelerator.gather(torch.tensor([out_of_time], device=x0.device)).any():
            break
    losses += _gathered_means(accelerator, pending)
    bar.close()
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        prior.unet = accelerator.unwrap_model(unet)
        _save_final(prior, ema, out, config, _stats(losses, started, data_wait, accelerator, start, config))
    return losses


def _stats(
    losses: list[float], started: float, data_wait: float, accelerator: Accelerator, start: int, config: TrainConfig
) -> dict:
    seconds = time.monotonic() - started
    steps_per_second = len(losses) / max(seconds, 1e-9)
    return {
        "steps": len(losses),
        "seconds": seconds,
        "steps_per_second": steps_per_second,
        "patches_per_second": steps_per_second * config.batch_size * accelerator.num_processes,
        "data_wait_seconds": data_wait,
        "device": str(accelerator.device),
        "processes": accelerator.num_processes,
        "device_name": torch.cuda.get_device_name() if accelerator.device.type == "cuda" else platform.machine(),
        "start_step": start,
        "loss_last_100": sum(losses[-100:]) / max(len(losses[-100:]), 1),
    }


def _save_final(prior: RGBDPrior, ema: EMAModel, out: Path, config: TrainConfig, stats: dict) -> None:
    """The EMA prior plus its config and stats in `out`, written beside it and swapped in whole: a run killed
    while saving leaves the previous save intact."""
    partial = out.with_name(out.name + ".saving")
    shutil.rmtree(partial, ignore_errors=True)
    _save_ema_prior(prior, ema, partial, config.half_precision_weights)
    (partial / "train_config.json").write_text(json.dumps(asdict(config), indent=2, default=str))
    (partial / "train_stats.json").write_text(json.dumps(stats, indent=2))
    out.mkdir(parents=True, exist_ok=True)
    for item in partial.iterdir():  # checkpoints/ in `out` stay; the prior's own files are replaced
        target = out / item.name
        if target.is_dir():
            shutil.rmtree(target)
        item.replace(target)
    partial.rmdir()
    print(
        f"saved prior to {out}: step {stats['start_step'] + stats['steps']}, {stats['steps_per_second']:.2f} "
        f"steps/s, {stats['patches_per_second']:.0f} patches/s, loss {stats['loss_last_100']:.4f}",
        flush=True,
    )


def _gathered_means(accelerator: Accelerator, pending: list[Tensor]) -> list[float]:
    """Per-step losses averaged over processes, read back in one transfer."""
    if not pending:
        return []
    values = accelerator.gather(torch.stack(pending)).view(-1, len(pending))
    return values.float().mean(0).tolist()


def _save_ema_prior(prior: RGBDPrior, ema: EMAModel, directory: Path, half: bool = False) -> None:
    """Save the EMA weights as a prior folder without disturbing the training weights."""
    ema.store(prior.unet.parameters())
    ema.copy_to(prior.unet.parameters())
    if half:
        prior.unet.half()
    prior.save_pretrained(directory)
    prior.unet.float()
    ema.restore(prior.unet.parameters())


def _save_checkpoint(
    accelerator: Accelerator, prior: RGBDPrior, ema: EMAModel, out: Path, step: int, config: TrainConfig
) -> None:
    """`step-N/`: `ema_prior/` (usable on its own), `state/` + `ema.pt` + `progress.json` to resume."""
    directory = out / "checkpoints" / f"step-{step:08d}"
    accelerator.save_state(str(directory / "state"))
    if accelerator.is_main_process:
        torch.save(ema.state_dict(), directory / "ema.pt")
        _save_ema_prior(prior, ema, directory / "ema_prior")
        (directory / "progress.json").write_text(json.dumps({"step": step}))
        for old in sorted((out / "checkpoints").glob("step-*"))[: -config.keep_checkpoints]:
            shutil.rmtree(old)
    accelerator.wait_for_everyone()
