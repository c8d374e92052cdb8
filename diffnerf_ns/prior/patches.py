"""Random RGB-D training patches: crops, flips and Kinect-style corruption for the conditioning.

A target patch must have (nearly) complete depth, since the prior learns complete geometry: crops
with more than a few isolated holes are never cut, and those few are nearest-filled. The conditioning
channels are the frame's own raw depth when the source has one (NYU `rawDepths`, the corpus) or a
`KinectNoiseModel` corruption of the target otherwise.

The corruption and the conditioning's hole pre-fill act on the whole (possibly mirrored) frame with
its real intrinsics, and crops are cut afterwards: projector shadows are `fx * b * (1/z_near - 1/z_far)`
pixels wide, noise and dropout blobs have a fixed size on the sensor, and a shadow cast into a crop by
an edge outside it is still there, exactly as refinement (which pre-fills the whole frame) sees them.
A 48 px crop corrupted on its own would shrink all of these to crop scale. Consecutive items share one
prepared frame (`crops_per_frame`), which amortises its cost (~0.1 s per 640x480 frame).

The conditioning's holes are pre-filled by a classical fill (`conditioning_fill`): the nearest observation by
default, or the colorization fill, so the network learns a correction of the strongest classical answer.
Colorization costs seconds per 640x480 frame, so it is computed once per frame that carries its own sensor raw
(a fixed observation) and kept; frames corrupted afresh on every visit pay it every time.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from data_converters.synthetic.kinect_noise import KinectNoiseModel
from diffnerf_ns.prior.baselines import hole_fill, nearest_fill
from diffnerf_ns.prior.rgbd_codec import encode, encode_depth
from diffnerf_ns.prior.sources import TrainingFrame

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


def crop_corners(depth: np.ndarray, patch: int, max_holes: float = MAX_TARGET_HOLES) -> np.ndarray:
    """(H - p + 1, W - p + 1) bool: the `patch` x `patch` crop with this top-left corner has few enough holes."""
    holes = np.pad((depth <= 0).astype(np.int64), ((1, 0), (1, 0))).cumsum(0).cumsum(1)
    count = holes[patch:, patch:] - holes[:-patch, patch:] - holes[patch:, :-patch] + holes[:-patch, :-patch]
    return count <= max_holes * patch * patch


def mirror_intrinsics(K: np.ndarray, width: int) -> np.ndarray:
    """K of the left-right mirrored image (pixel centres at +0.5: u_c -> width - u_c)."""
    K = np.array(K, dtype=np.float64)
    K[0, 2] = width - K[0, 2]
    return K


@dataclass
class PreparedFrame:
    """One frame as a group of items crops it: encoded target, conditioning and where crops may start."""

    x: Tensor  # (4, H, W) codec target, holes nearest-filled
    cond: Tensor  # (2, H, W) observation channels of the whole (corrupted) frame
    corners: np.ndarray  # flat indices into the (H - p + 1, W - p + 1) grid of allowed top-left corners
    grid_width: int


class RGBDPatchDataset(Dataset):
    """Deterministic random patches: item `i` is always the same crop, flip and corruption.

    Items `[g * crops_per_frame, (g + 1) * crops_per_frame)` are crops of one frame, mirrored or not and
    corrupted once as a whole (group `g`'s random stream); each item's crop and conditioning drop come from
    its own stream. DataLoader batches of consecutive items therefore prepare each frame once.
    """

    def __init__(
        self,
        frames: Sequence[TrainingFrame],
        patch_size: int = 48,
        length: int = 1_000_000,
        cond_drop_prob: float = 0.3,
        noise_model: KinectNoiseModel | None = None,
        seed: int = 0,
        crops_per_frame: int = 64,
        conditioning_fill: str = "nearest",
    ) -> None:
        if not frames:
            raise ValueError("no frames to sample patches from")
        if crops_per_frame < 1:
            raise ValueError(f"crops_per_frame must be >= 1, got {crops_per_frame}")
        for frame in frames:
            check_rgbd(frame.rgb, frame.depth, frame.name, patch_size)
            if frame.raw is not None and frame.raw.shape != frame.depth.shape:
                raise ValueError(f"{frame.name}: raw depth {frame.raw.shape} does not match {frame.depth.shape}")
        self.frames = list(frames)
        self.usable = [i for i, f in enumerate(self.frames) if crop_corners(f.depth, patch_size).any()]
        if not self.usable:
            raise ValueError(
                f"no {patch_size}x{patch_size} depth crop with at most {MAX_TARGET_HOLES:.0%} holes in any of the "
                f"{len(self.frames)} frames; the depth maps have too many holes for this patch size (use a smaller "
                "--patch-size or filled depth)"
            )
        self.patch_size = patch_size
        self.length = length
        self.cond_drop_prob = cond_drop_prob
        self.noise_model = noise_model or KinectNoiseModel()
        self.seed = seed
        self.crops_per_frame = crops_per_frame
        self.conditioning_fill = conditioning_fill
        self._prepared: tuple[int, PreparedFrame] | None = None
        self._fixed_cond: dict[int, Tensor] = {}  # frame index -> conditioning of a frame with its own raw

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        frame = self.prepared(index // self.crops_per_frame)
        rng = np.random.default_rng((self.seed, index))
        y, x = divmod(int(frame.corners[rng.integers(len(frame.corners))]), frame.grid_width)
        rows, cols = slice(y, y + self.patch_size), slice(x, x + self.patch_size)
        cond = frame.cond[:, rows, cols].clone()
        if rng.random() < self.cond_drop_prob:
            cond.zero_()
        return {"x": frame.x[:, rows, cols].clone(), "cond": cond}

    def prepared(self, group: int) -> PreparedFrame:
        """Group `group`'s frame, cached: drawn; without a sensor raw, mirrored or not and corrupted whole with its K.

        A sensor's own raw is never mirrored: that would put its projector shadows on the wrong side.
        """
        if self._prepared is None or self._prepared[0] != group:
            self._prepared = (group, self._prepare(np.random.default_rng((self.seed, group, 1))))
        return self._prepared[1]

    def _prepare(self, rng: np.random.Generator) -> PreparedFrame:
        index = self.usable[rng.integers(len(self.usable))]
        frame = self.frames[index]
        rgb, depth, raw, K = frame.rgb, frame.depth, frame.raw, frame.K
        cond = self._fixed_cond.get(index)
        if raw is None:  # mirror, then corrupt, so IR shadows stay on the projector's side
            if rng.random() < 0.5:
                # Without a K the Kinect model centres its own default, which mirroring leaves unchanged.
                rgb, depth = rgb[:, ::-1], depth[:, ::-1]
                K = None if K is None else mirror_intrinsics(K, depth.shape[1])
            raw = self.noise_model.corrupt(depth, rgb, rng, K=K)
        corners = crop_corners(depth, self.patch_size)
        x = encode(
            torch.from_numpy(rgb.astype(np.float32) / 255.0).permute(2, 0, 1)[None],
            torch.from_numpy(np.ascontiguousarray(nearest_fill(depth), dtype=np.float32))[None, None],
        )[0]
        if cond is None:
            cond = observation_channels(raw, rgb, self.conditioning_fill)
            if frame.raw is not None and self.conditioning_fill != "nearest":  # nearest is cheaper than the memory
                self._fixed_cond[index] = cond
        return PreparedFrame(x, cond, np.flatnonzero(corners), corners.shape[1])


def observation_channels(raw_depth_m: np.ndarray, rgb: np.ndarray | None = None, fill: str = "nearest") -> Tensor:
    """(H, W) raw depth (0 = missing) to the (2, H, W) conditioning: encoded depth, validity mask.

    Holes in the depth channel are pre-filled with a classical fill (`baselines.HOLE_FILLS`; colorization
    needs `rgb`), so the network learns a correction of a classical fill rather than hole filling from
    scratch; the mask says which pixels were measured. Nothing observed gives all zeros, the same as
    dropped conditioning. A prior must be conditioned with the fill it was trained with.
    """
    mask = raw_depth_m > 0
    if not mask.any():
        return torch.zeros(2, *raw_depth_m.shape)
    filled = torch.from_numpy(np.ascontiguousarray(hole_fill(raw_depth_m, rgb, fill), dtype=np.float32))
    return torch.stack([encode_depth(filled), torch.from_numpy(mask).float()])
