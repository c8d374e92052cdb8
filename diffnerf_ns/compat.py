"""Making nerfstudio 1.1.5 work offline and under torch >= 2.6 without user action.

Two upstream behaviours break a fresh offline install:
- nerfstudio's checkpoints hold numpy scalars (learning-rate scheduler state), and torch >= 2.6
  `torch.load` refuses them by default, which breaks ns-viewer, ns-export, ns-eval and resuming.
  We allow-list exactly those numpy types instead of turning weights-only loading off.
- nerfacto builds torchmetrics' LPIPS at model construction, which downloads AlexNet.
  We build it only when the weights are already on disk.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from unittest import mock

import numpy as np
import torch
from nerfstudio.utils.rich_utils import CONSOLE

ALEXNET_WEIGHTS_FILE = "alexnet-owt-7be5be79.pth"  # torchvision AlexNet_Weights.IMAGENET1K_V1


def allow_numpy_scalars_in_checkpoints() -> None:
    """Allow-list the numpy scalar types nerfstudio writes into checkpoints for weights-only loading."""
    add_safe_globals = getattr(torch.serialization, "add_safe_globals", None)
    if add_safe_globals is None:  # torch < 2.4 loads everything anyway
        return
    scalar_types = [np.float64, np.float32, np.int64, np.int32, np.bool_]
    add_safe_globals([np.core.multiarray.scalar, np.dtype, *scalar_types, *(type(np.dtype(t)) for t in scalar_types)])


def alexnet_weights_path() -> Path:
    """Where torchvision caches AlexNet weights; LPIPS is computed only if this file exists."""
    return Path(torch.hub.get_dir()) / "checkpoints" / ALEXNET_WEIGHTS_FILE


def lpips_if_available() -> torch.nn.Module | None:
    """torchmetrics LPIPS when AlexNet weights are on disk, else None (and say so once)."""
    weights = alexnet_weights_path()
    if not weights.exists():
        CONSOLE.print(
            f"[yellow]LPIPS unavailable: AlexNet weights not found at {weights}. "
            "Copy alexnet-owt-7be5be79.pth there to enable it; PSNR/SSIM/depth metrics are unaffected."
        )
        return None
    from torchmetrics.image.lpip import LearnedPerceptualImagePatchSimilarity

    return LearnedPerceptualImagePatchSimilarity(normalize=True)


@contextlib.contextmanager
def offline_lpips() -> Iterator[None]:
    """Within this block, nerfacto-family models construct LPIPS only from local weights."""
    with mock.patch("torchmetrics.image.lpip.LearnedPerceptualImagePatchSimilarity", lambda **_: lpips_if_available()):
        yield
