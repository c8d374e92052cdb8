"""Classical hole-filling baselines the prior's refinement is measured against."""

from __future__ import annotations

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage, sparse
from scipy.sparse.linalg import spsolve


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


def colorization_fill(depth: np.ndarray, rgb: np.ndarray, alpha: float = 1.0) -> np.ndarray:
    """The NYU toolbox's `fill_depth_colorization.m` (Levin et al. colorization), the fill behind NYU's `depths`.

    Every pixel is asked to equal the affinity-weighted mean of its 3x3 neighbours, where the weight
    falls with the grey-level difference (`exp(-dg^2 / csig)`, `csig` from the window's variance as in
    the toolbox), and observed pixels are pulled to their measurement with weight `alpha`; the sparse
    least-squares system is solved once with scipy. Depth is scaled by its maximum as in the toolbox.
    """
    depth = np.asarray(depth, np.float64)
    known = (depth > 0) & (depth != 10.0)  # the toolbox also treats exactly 10 m (Kinect max) as noise
    if not known.any():
        raise ValueError("colorization_fill: depth has no valid pixel")
    rgb = np.asarray(rgb, np.float64) / (255.0 if np.asarray(rgb).dtype == np.uint8 else 1.0)
    gray = rgb @ np.array([0.2989, 0.5870, 0.1140])  # MATLAB rgb2gray
    scale = depth[known].max()
    h, w = depth.shape
    index = np.arange(h * w).reshape(h, w)
    padded_gray = np.pad(gray, 1, constant_values=np.nan)
    padded_index = np.pad(index, 1, constant_values=-1)
    offsets = [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1) if (dy, dx) != (0, 0)]
    neighbours = np.stack([padded_gray[1 + dy : 1 + dy + h, 1 + dx : 1 + dx + w] for dy, dx in offsets])
    columns = np.stack([padded_index[1 + dy : 1 + dy + h, 1 + dx : 1 + dx + w] for dy, dx in offsets])
    inside = columns >= 0
    window = np.concatenate([neighbours, gray[None]])
    variance = np.nanmean((window - np.nanmean(window, 0)) ** 2, 0)
    diff2 = (neighbours - gray) ** 2
    csig = np.maximum(variance * 0.6, np.nanmin(diff2, 0) / -np.log(0.01))
    csig = np.maximum(csig, 2e-6)
    weights = np.where(inside, np.exp(-np.nan_to_num(diff2) / csig), 0.0)
    weights /= weights.sum(0)
    rows = np.broadcast_to(index, columns.shape)[inside]
    affinity = sparse.csr_matrix((-weights[inside], (rows, columns[inside])), shape=(h * w, h * w))
    data_term = alpha * known.ravel().astype(np.float64)
    system = (affinity + sparse.identity(h * w) + sparse.diags(data_term)).tocsc()
    solution = spsolve(system, data_term * np.clip(depth / scale, 0.0, 1.0).ravel())
    return (solution.reshape(h, w) * scale).astype(np.float32)


HOLE_FILLS = {
    "nearest": lambda raw, rgb: nearest_fill(raw),
    "telea": lambda raw, rgb: opencv_inpaint(raw),
    "colorization": colorization_fill,
}
"""Name -> fill(raw depth in metres, RGB) of the classical fills refinement can condition on or start from."""


def hole_fill(raw_depth_m: np.ndarray, rgb: np.ndarray | None, name: str) -> np.ndarray:
    """`raw_depth_m` with its holes filled by the named fill; measured pixels keep their value, and the fill is
    floored at 1 mm because the depth codec takes a logarithm. Only the nearest fill works without RGB."""
    if rgb is None and name != "nearest":
        raise ValueError(f"the {name!r} fill needs the frame's RGB")
    filled = HOLE_FILLS[name](raw_depth_m, rgb)
    return np.where(raw_depth_m > 0, raw_depth_m, np.maximum(filled, 1e-3)).astype(np.float32)
