"""Classical hole-filling baselines the prior's refinement is measured against."""

from __future__ import annotations

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage


def nearest_fill(depth: np.ndarray) -> np.ndarray:
    """Each hole takes the value of the nearest observed pixel."""
    holes = depth <= 0
    if not holes.any():
        return depth.copy()
    _, (iy, ix) = ndimage.distance_transform_edt(holes, return_indices=True)
    return depth[iy, ix]


def directional_fills(depth: np.ndarray) -> np.ndarray:
    """(4, H, W): each hole takes the nearest observation to its left, right, above and below (NaN if none)."""
    fills = []
    for transpose in (False, True):
        d = depth.T if transpose else depth
        for reverse in (False, True):
            e = d[:, ::-1] if reverse else d
            last = np.maximum.accumulate(np.where(e > 0, np.arange(e.shape[1])[None], 0), axis=1)
            f = np.take_along_axis(e, last, axis=1)
            f = np.where(f > 0, f, np.nan)
            f = f[:, ::-1] if reverse else f
            fills.append(f.T if transpose else f)
    return np.stack(fills)


def opencv_inpaint(depth: np.ndarray, radius: int = 5) -> np.ndarray:
    """OpenCV Telea inpainting of the holes, on 16-bit millimetres (Telea on float32 input is unreliable)."""
    holes = (depth <= 0).astype(np.uint8)
    mm = np.clip(np.round(depth * 1000.0), 0, 65535).astype(np.uint16)
    return cv2.inpaint(mm, holes, radius, cv2.INPAINT_TELEA).astype(np.float32) / 1000.0


def joint_bilateral_fill(
    depth: np.ndarray, rgb: np.ndarray, radius: int = 7, sigma_space: float = 4.0, sigma_color: float = 0.1
) -> np.ndarray:
    """RGB-guided joint bilateral filter over observed depth; repeated until holes close.

    Every pixel becomes the average of observed neighbours weighted by distance and colour
    similarity to the centre (cv2.ximgproc is not in opencv-python-headless, so it is done here by
    accumulating shifted images, O(H*W) memory). Pixels still empty after a few passes take their
    nearest neighbour.
    """
    guide = torch.from_numpy(np.asarray(rgb, np.float32) / (255.0 if rgb.dtype == np.uint8 else 1.0))
    h, w = depth.shape
    padded_guide = F.pad(guide.permute(2, 0, 1)[None], [radius] * 4, mode="replicate")[0]
    current = torch.from_numpy(depth.astype(np.float32))
    for _ in range(4):
        padded = F.pad(current[None, None], [radius] * 4)[0, 0]
        total, weighted = torch.zeros(h, w), torch.zeros(h, w)
        for dy in range(-radius, radius + 1):
            for dx in range(-radius, radius + 1):
                rows, cols = slice(radius + dy, radius + dy + h), slice(radius + dx, radius + dx + w)
                d = padded[rows, cols]
                colour = ((padded_guide[:, rows, cols].permute(1, 2, 0) - guide) ** 2).sum(-1)
                wgt = torch.exp(-(dy * dy + dx * dx) / (2 * sigma_space**2) - colour / (2 * sigma_color**2)) * (d > 0)
                total += wgt
                weighted += wgt * d
        current = torch.where(total > 1e-6, weighted / total.clamp(min=1e-12), torch.zeros_like(total))
        if bool((current > 0).all()):
            break
    return nearest_fill(current.numpy())
