"""Random RGB-D training patches: crops, flips and Kinect-style corruption for the conditioning.

A target patch must have (nearly) complete depth, since the prior learns complete geometry: crops
with more than a few isolated holes are rejected and those few are nearest-filled. The conditioning
channels are the frame's own raw depth when the source has one (NYU `rawDepths`) or a
`KinectNoiseModel` corruption of the target otherwise.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from data_converters.synthetic.kinect_noise import KinectNoiseModel
from diffnerf_ns.prior.baselines import nearest_fill
from diffnerf_ns.prior.rgbd_codec import encode, encode_depth
from diffnerf_ns.prior.sources import TrainingFrame

MAX_CROP_TRIES = 64
MAX_TARGET_HOLES = 0.03
"""A target crop may miss this fraction of depth (speckle in raw scenes); those pixels are nearest-filled."""


def check_rgbd(rgb: np.ndarray, depth: np.ndarray, name: str, min_size: int = 1) -> None:
    """Raise a ValueError naming the frame when RGB-D input cannot be used."""
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"{name}: RGB must be (H, W, 3), got {rgb.shape}")
    if depth.shape != rgb.shape[:2]:
        raise ValueError(f"{name}: depth {depth.shape} does not match the RGB size {rgb.shape[:2]}")
    if min(depth.shape) < min_size:
        raise ValueError(f"{name}: frame {depth.shape} is smaller than the {min_size} px patch")
    if not np.isfinite(depth).all():
        raise ValueError(f"{name}: depth has NaN/inf values; mark missing depth with 0")
    if not (depth > 0).any():
        raise ValueError(f"{name}: depth is all zero (no valid pixel)")


class RGBDPatchDataset(Dataset):
    """Deterministic random patches: item `i` is always the same crop, flip and corruption."""

    def __init__(
        self,
        frames: Sequence[TrainingFrame],
        patch_size: int = 48,
        length: int = 1_000_000,
        cond_drop_prob: float = 0.3,
        noise_model: KinectNoiseModel | None = None,
        seed: int = 0,
    ) -> None:
        if not frames:
            raise ValueError("no frames to sample patches from")
        for frame in frames:
            check_rgbd(frame.rgb, frame.depth, frame.name, patch_size)
            if frame.raw is not None and frame.raw.shape != frame.depth.shape:
                raise ValueError(f"{frame.name}: raw depth {frame.raw.shape} does not match {frame.depth.shape}")
        self.frames = list(frames)
        self.patch_size = patch_size
        self.length = length
        self.cond_drop_prob = cond_drop_prob
        self.noise_model = noise_model or KinectNoiseModel()
        self.seed = seed

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        rng = np.random.default_rng((self.seed, index))
        rgb, depth, raw = self._crop(rng)
        if rng.random() < 0.5:
            rgb, depth = rgb[:, ::-1], depth[:, ::-1]
            raw = None if raw is None else raw[:, ::-1]
        if raw is None:  # corrupt after flipping so IR shadows stay on the projector's side
            raw = self.noise_model.corrupt(depth, rgb, rng)
        x = encode(
            torch.from_numpy(rgb.astype(np.float32) / 255.0).permute(2, 0, 1)[None],
            torch.from_numpy(np.ascontiguousarray(depth))[None, None],
        )[0]
        cond = observation_channels(raw)
        if rng.random() < self.cond_drop_prob:
            cond = torch.zeros_like(cond)
        return {"x": x, "cond": cond}

    def _crop(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """A crop whose target depth is (nearly) complete; frames full of holes are skipped."""
        p = self.patch_size
        for _ in range(MAX_CROP_TRIES):
            frame = self.frames[rng.integers(len(self.frames))]
            h, w = frame.depth.shape
            y, x = int(rng.integers(h - p + 1)), int(rng.integers(w - p + 1))
            depth = frame.depth[y : y + p, x : x + p]
            if (depth <= 0).mean() <= MAX_TARGET_HOLES:
                raw = None if frame.raw is None else frame.raw[y : y + p, x : x + p]
                return frame.rgb[y : y + p, x : x + p], nearest_fill(depth), raw
        raise ValueError(
            f"no {p}x{p} depth crop with at most {MAX_TARGET_HOLES:.0%} holes found in {MAX_CROP_TRIES} tries; "
            "the depth maps have too many holes for this patch size (use a smaller --patch-size or filled depth)"
        )


def observation_channels(raw_depth_m: np.ndarray) -> torch.Tensor:
    """(H, W) raw depth (0 = missing) to the (2, H, W) conditioning: encoded depth, validity mask.

    Holes in the depth channel are pre-filled with the nearest observation, so the network learns a
    correction of a classical fill rather than hole filling from scratch; the mask says which
    pixels were measured. Nothing observed gives all zeros, the same as dropped conditioning.
    """
    mask = raw_depth_m > 0
    if not mask.any():
        return torch.zeros(2, *raw_depth_m.shape)
    filled = torch.from_numpy(np.ascontiguousarray(nearest_fill(raw_depth_m), dtype=np.float32))
    return torch.stack([encode_depth(filled), torch.from_numpy(mask).float()])
