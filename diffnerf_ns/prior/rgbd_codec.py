"""The RGB-D normalisation shared by training, refinement and the NeRF regulariser.

RGB in [0, 1] maps to [-1, 1]. Planar depth in metres maps to [-1, 1] by log-depth over the
indoor range [0.3, 10] m: a code error is then the same *relative* depth error at every range
(0.01 of code = 1.75% of depth), where the earlier disparity code `0.4/d - 1` turned 0.01 into
2.5 cm at 1 m but 40 cm at 4 m and squeezed 1-4 m into 15% of the code range. The comparison is
measured by `benchmarks/bench_codec.py` (benchmarks/results/codec.md). Plain torch, so gradients
flow through `encode` inside the range.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

CODEC_NAME = "log-depth-0.3-10m"
"""Recorded in every saved prior: a prior trained with another codec cannot be used with this one."""
MIN_DEPTH_M = 0.3
"""Depth at code -1; nearer depths clamp here (the Kinect v1 sees nothing closer than ~0.4 m)."""
MAX_DEPTH_M = 10.0
"""Depth at code +1; farther depths clamp here (indoor rooms)."""
_LOG_RANGE = math.log(MAX_DEPTH_M / MIN_DEPTH_M)
CODE_PER_LOG_DEPTH = 2.0 / _LOG_RANGE
"""d code / d ln(depth) (0.570): one unit of log-depth moves the code this much, at every depth in range."""
_GRADIENT_FLOOR_M = 1e-3
"""Nearest depth whose log the straight-through code differentiates (a ray with no density renders 0 m)."""


def encode_depth(depth_m: Tensor, straight_through: bool = False) -> Tensor:
    """Planar depth in metres to codec space [-1, 1]: 0.3 m and nearer = -1, 10 m and farther = +1.

    `straight_through` keeps those values but differentiates the unclamped log-depth code, so depth outside
    [0.3, 10] m (a floater a few centimetres from a camera, with the near plane at 0.05 m) still gets the
    prior's pull instead of the clamp's zero gradient.
    """
    code = CODE_PER_LOG_DEPTH * torch.log(depth_m.clamp(MIN_DEPTH_M, MAX_DEPTH_M) / MIN_DEPTH_M) - 1.0
    if not straight_through:
        return code
    unclamped = CODE_PER_LOG_DEPTH * torch.log(depth_m.clamp(min=_GRADIENT_FLOOR_M) / MIN_DEPTH_M) - 1.0
    return code.detach() + unclamped - unclamped.detach()


def decode_depth(code: Tensor) -> Tensor:
    """Codec space back to metres, within [0.3, 10] m (codes outside [-1, 1] clamp)."""
    return MIN_DEPTH_M * torch.exp((code.clamp(-1.0, 1.0) + 1.0) * (0.5 * _LOG_RANGE))


def encode(rgb: Tensor, depth_m: Tensor, straight_through: bool = False) -> Tensor:
    """(B, 3, H, W) RGB in [0, 1] and (B, 1, H, W) depth in metres to a (B, 4, H, W) codec tensor."""
    return torch.cat([rgb * 2.0 - 1.0, encode_depth(depth_m, straight_through)], dim=1)


def decode(x: Tensor) -> tuple[Tensor, Tensor]:
    """(B, 4, H, W) codec tensor to RGB in [0, 1] and depth in metres."""
    return ((x[:, :3] + 1.0) * 0.5).clamp(0.0, 1.0), decode_depth(x[:, 3:4])
