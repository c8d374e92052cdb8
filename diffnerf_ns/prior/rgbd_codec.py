"""The RGB-D normalisation shared by training, refinement and the NeRF regulariser.

RGB in [0, 1] and planar depth in metres are mapped to [-1, 1] (DiffusioNeRF, REFERENCE §3):
depth becomes disparity `0.2 / max(d, 0.2)`, so near geometry gets resolution and far walls
do not dominate. Everything is plain torch so gradients flow through `encode`.
"""

from __future__ import annotations

import torch
from torch import Tensor

MIN_DEPTH_M = 0.2
"""Depths below this clamp to disparity 1 (the codec's +1)."""
MAX_DECODED_DEPTH_M = 20.0
"""Decoding caps depth here: codes near -1 mean "very far", which indoors is a wall at most this far."""


def encode_depth(depth_m: Tensor) -> Tensor:
    """Planar depth in metres to codec space [-1, 1] (far = -1, 0.2 m and closer = +1)."""
    return 2.0 * (MIN_DEPTH_M / depth_m.clamp(min=MIN_DEPTH_M)) - 1.0


def decode_depth(code: Tensor) -> Tensor:
    """Codec space back to metres, capped at `MAX_DECODED_DEPTH_M`."""
    disparity = ((code + 1.0) * 0.5).clamp(min=MIN_DEPTH_M / MAX_DECODED_DEPTH_M, max=1.0)
    return MIN_DEPTH_M / disparity


def encode(rgb: Tensor, depth_m: Tensor) -> Tensor:
    """(B, 3, H, W) RGB in [0, 1] and (B, 1, H, W) depth in metres to a (B, 4, H, W) codec tensor."""
    return torch.cat([rgb * 2.0 - 1.0, encode_depth(depth_m)], dim=1)


def decode(x: Tensor) -> tuple[Tensor, Tensor]:
    """(B, 4, H, W) codec tensor to RGB in [0, 1] and depth in metres."""
    return ((x[:, :3] + 1.0) * 0.5).clamp(0.0, 1.0), decode_depth(x[:, 3:4])
