"""Realistic hole shapes to hide in real depth: self-supervised training and scoring on frames without truth.

A refiner restores hidden pixels well only if the hidden shapes look like the sensor's own holes,
so the mask is built from what makes Kinect holes (`data_converters.synthetic.kinect_noise`):
projector-shadow strips beside depth discontinuities (on the projector's side, widened beyond the
shadow the sensor already has), blobs that prefer dark and glancing surfaces, and a few random
blobs. Only valid pixels are ever hidden, so the hidden raw values are the reference.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from data_converters.synthetic.kinect_noise import (
    KinectNoiseModel,
    correlated_noise,
    default_focal_px,
    incidence_cosine,
    normals_from_depth,
    projector_shadow,
)
from diffnerf_ns.prior.baselines import nearest_fill


def realistic_hole_mask(
    depth: np.ndarray,
    rgb: np.ndarray,
    rng: np.random.Generator,
    *,
    fx: float | None = None,
    fraction: tuple[float, float] = (0.05, 0.15),
    sensor: KinectNoiseModel | None = None,
) -> np.ndarray:
    """Bool mask of valid pixels to hide, covering a fraction of them drawn from `fraction`.

    About a third of the budget goes to edge-shadow strips (the shadows of `sensor`'s projector and
    IR camera for baselines 1.5-4x the real ones, so the strips extend the sensor's own shadows), the
    rest to smooth blobs whose placement favours dark and glancing surfaces. `sensor` defaults to a
    Kinect registered to its RGB camera (NYU labeled, SUN3D, most RGB-D datasets); `fx` to a Kinect
    field of view.
    """
    sensor = sensor or KinectNoiseModel.registered_to_rgb()
    depth = np.asarray(depth, dtype=np.float64)
    valid = depth > 0
    if not valid.any():
        raise ValueError("depth has no valid pixel to hide")
    h, w = depth.shape
    fx = default_focal_px(w) if fx is None else fx
    budget = rng.uniform(*fraction) * valid.sum()
    filled = nearest_fill(depth)
    stretch = rng.uniform(1.5, 4.0)
    shadow = projector_shadow(filled, fx, sensor.baseline_m * stretch)
    if sensor.ir_camera_offset_m:
        shadow |= projector_shadow(filled, fx, sensor.ir_camera_offset_m * stretch)
    shadow &= valid
    if shadow.sum() > budget / 3:  # keep the strips next to the edges, drop their far ends
        dist = ndimage.distance_transform_edt(~_edges(filled))
        shadow &= dist <= np.quantile(dist[shadow], (budget / 3) / shadow.sum())
    grey = np.asarray(rgb, dtype=np.float64).mean(-1)
    grey = grey / 255.0 if np.asarray(rgb).dtype == np.uint8 else grey
    cos = incidence_cosine(filled, normals_from_depth(filled, fx), fx, w / 2, h / 2)
    scale = rng.uniform(0.02, 0.06) * w
    # Dark and glancing surfaces attract blobs; smoothed so blobs are coherent, not salt.
    surface = ndimage.gaussian_filter(_standardise(-grey) + _standardise(-cos), scale / 3)
    score = correlated_noise((h, w), scale, rng) + rng.uniform(0.3, 1.0) * _standardise(surface)
    score[~valid | shadow] = -np.inf
    remaining = max(budget - shadow.sum(), 0)
    blobs = np.zeros_like(valid)
    if remaining > 0:
        blobs = score > np.quantile(score[valid & ~shadow], 1 - min(remaining / max((valid & ~shadow).sum(), 1), 1))
        blobs = ndimage.binary_opening(ndimage.binary_closing(blobs, iterations=2), iterations=1) & valid
    return shadow | blobs


def _edges(depth: np.ndarray, jump: float = 0.05) -> np.ndarray:
    """Pixels next to a relative depth jump larger than `jump` (5%) along rows."""
    rel = np.abs(np.diff(depth, axis=1)) / np.maximum(depth[:, 1:], 1e-3) > jump
    edges = np.zeros_like(depth, dtype=bool)
    edges[:, 1:] |= rel
    edges[:, :-1] |= rel
    return edges


def _standardise(x: np.ndarray) -> np.ndarray:
    return (x - x.mean()) / max(float(x.std()), 1e-6)
