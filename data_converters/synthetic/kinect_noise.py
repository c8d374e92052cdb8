"""Kinect v1 depth corruption, so refinement and registration are tested against known truth.

The model follows how the sensor measures: depth comes from 11-bit disparity
(`raw = 1092.5 - 351.3 / d`, the inverse of the NYU toolbox conversion), so quantisation
steps and noise grow with the square of depth; the IR projector and camera are 7.5 cm apart,
so surfaces right of a depth edge fall into shadow; dark and glancing surfaces return no
speckle. Missing pixels are 0.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from data_converters.nyu.calibration import RAW_INVALID, metres_to_raw, raw_to_metres


@dataclass
class KinectNoiseModel:
    """Parameters of the corruption; defaults give NYU-like hole ratios (5-15%)."""

    disparity_sigma: float = 0.35
    """Std of the raw disparity noise, in raw units, before rounding."""
    shadow_threshold: float = 0.08
    """A depth jump (metres) larger than this casts an IR shadow."""
    shadow_width_px: int = 3
    dark_threshold: float = 0.08
    """Surfaces whose grey level is below this return no depth."""
    glancing_cos: float = 0.2
    """Surfaces seen at a cosine below this return no depth."""
    dropout: float = 0.01
    """Independent random missing pixels (speckle failures)."""
    max_range: float = 8.0

    def corrupt(self, depth_m: np.ndarray, rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Noisy, quantised, holed depth in metres (0 = missing) from clean planar depth."""
        return raw_to_metres(self.corrupt_raw(depth_m, rgb, rng))

    def corrupt_raw(self, depth_m: np.ndarray, rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """What the sensor stores: noisy 11-bit raw disparity (uint16, `RAW_INVALID` = missing)."""
        depth = np.asarray(depth_m, dtype=np.float64)
        raw = np.round(metres_to_raw(depth) + rng.normal(0.0, self.disparity_sigma, depth.shape))
        holes = self.hole_mask(depth, rgb, rng)
        invalid = holes | (depth > self.max_range) | (depth <= 0) | ~np.isfinite(raw) | (raw < 0) | (raw >= RAW_INVALID)
        raw[invalid] = RAW_INVALID
        return raw.astype(np.uint16)

    def hole_mask(self, depth: np.ndarray, rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Where a real Kinect would return nothing: edge shadows, dark, glancing, random."""
        grey = np.asarray(rgb, dtype=np.float64)
        grey = grey.mean(-1) / (255.0 if grey.max() > 1.0 else 1.0)
        # Shadow: the projector sits to the right, so the far side right of an edge is unlit.
        jump = np.zeros_like(depth, dtype=bool)
        jump[:, 1:] = (depth[:, 1:] - depth[:, :-1]) > self.shadow_threshold
        shadow = ndimage.binary_dilation(jump, structure=np.ones((1, self.shadow_width_px)), origin=(0, -1))
        # Glancing angle from the depth gradient: cos = 1 / |(-dz/dx, -dz/dy, 1)| in normalised units.
        gy, gx = np.gradient(depth)
        scale = depth.shape[1] / 2.0 / np.maximum(depth, 1e-3)
        cos = 1.0 / np.sqrt(1.0 + (gx * scale) ** 2 + (gy * scale) ** 2)
        glancing = (cos < self.glancing_cos) & ~jump
        dark = grey < self.dark_threshold
        speckle = rng.random(depth.shape) < self.dropout
        return shadow | glancing | dark | speckle
