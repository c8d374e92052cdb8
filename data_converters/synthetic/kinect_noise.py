"""Kinect v1 (structured-light) depth corruption: the one model every synthetic generator uses.

It follows how the sensor measures, so refiners and converters are tested against known truth:

- Depth comes from 11-bit disparity, `raw = 1092.5 - 351.3 / d` (the inverse of the NYU toolbox
  conversion in `data_converters.nyu.calibration`), so rounding to integer raw gives steps of
  `d^2 / 351.3` (4.5 cm at 4 m) and disparity noise becomes depth noise growing with `d^2`.
  Part of the noise is spatially correlated, as block matching makes it.
- The IR projector sits `baseline_m` (7.5 cm) to the right (+x) of the IR camera. A surface point
  is unlit when a nearer surface hides it from the projector; this is computed from the geometry
  (a z-buffer from the projector along each epipolar row), so the shadow strip lies beside the
  foreground edge on the side the projector position dictates, with the width it dictates
  (`fx * b * (1/z_near - 1/z_far)` pixels).
- The speckle's IR return falls with albedo, incidence angle and `1 / d^2`: dark, glancing and far
  surfaces drop out, in blobs. Block matching fattens foreground edges by about a pixel and loses
  some pixels on both sides of depth steps; small random blobs drop out anywhere.
- Depth registered to the RGB camera (`KinectNoiseModel.registered_to_rgb`) needs the point lit by
  the projector and seen by the IR camera, both offset from the RGB camera, and is slightly
  misregistered (a sub-pixel to pixel shift and scale), as calibration and timing errors leave it.

Missing pixels are `RAW_INVALID` in raw units and 0 in metres.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from scipy import ndimage

from data_converters.nyu.calibration import RAW_INVALID, T_EFF, metres_to_raw, raw_to_metres

KINECT_IR_HFOV_DEGREES = 58.5
PROJECTOR_FROM_IR_M = 0.075
"""Kinect v1: the IR projector sits 7.5 cm along the IR camera's +x axis."""


def default_focal_px(width: int) -> float:
    """Focal length (pixels) of a Kinect IR camera imaging `width` pixels across; used when no K is given."""
    return 0.5 * width / np.tan(np.deg2rad(KINECT_IR_HFOV_DEGREES) / 2)


def projector_shadow(depth_m: np.ndarray, fx: float, baseline_m: float = 0.075) -> np.ndarray:
    """Pixels the IR projector cannot light: a nearer surface lies between them and the projector.

    Rectified geometry: a pixel at column u and depth z is seen by a projector at `baseline_m` along
    +x in column `u - fx * b / z` of the same row. Scanning towards the projector, a pixel is in shadow
    when a later pixel lands at or left of its projector column (only a nearer surface can). A
    negative baseline (projector to the left) mirrors the image. Invalid depth (<= 0) counts as far.
    """
    depth = np.asarray(depth_m, dtype=np.float64)
    if baseline_m < 0:
        return projector_shadow(depth[:, ::-1], fx, -baseline_m)[:, ::-1]
    z = np.where(depth > 0, depth, np.inf)
    u_proj = np.arange(depth.shape[1], dtype=np.float64) - fx * baseline_m / z
    suffix_min = np.minimum.accumulate(u_proj[:, ::-1], axis=1)[:, ::-1]
    later_min = np.concatenate([suffix_min[:, 1:], np.full((depth.shape[0], 1), np.inf)], axis=1)
    return (u_proj >= later_min) & (depth > 0)


def normals_from_depth(depth_m: np.ndarray, fx: float) -> np.ndarray:
    """Camera-frame unit normals (H, W, 3) from depth gradients, for callers whose renderer gives none."""
    depth = np.asarray(depth_m, dtype=np.float64)
    gy, gx = np.gradient(depth)
    scale = fx / np.maximum(depth, 1e-3)
    n = np.stack([-gx * scale, -gy * scale, -np.ones_like(depth)], -1)
    return n / np.linalg.norm(n, axis=-1, keepdims=True)


def incidence_cosine(depth_m: np.ndarray, normals: np.ndarray, fx: float, cx: float, cy: float) -> np.ndarray:
    """|cos| of the angle between each pixel's viewing ray and its surface normal (1 = facing the camera)."""
    h, w = depth_m.shape
    u, v = np.meshgrid(np.arange(w) + 0.5, np.arange(h) + 0.5)
    rays = np.stack([(u - cx) / fx, (v - cy) / fx, np.ones_like(u)], -1)
    rays /= np.linalg.norm(rays, axis=-1, keepdims=True)
    return np.abs((rays * normals).sum(-1))


def quantise_disparity(depth_m: np.ndarray, noise_raw: np.ndarray | float = 0.0) -> np.ndarray:
    """Integer raw disparity (float64) of depth plus noise in raw units; non-positive depth gives inf."""
    depth = np.asarray(depth_m, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        raw = metres_to_raw(np.where(depth > 0, depth, np.nan)) + noise_raw
    return np.where(np.isfinite(raw), np.round(raw), np.inf)


def correlated_noise(shape: tuple[int, int], scale_px: float, rng: np.random.Generator) -> np.ndarray:
    """Unit-variance noise smooth over about `scale_px` pixels (block matching correlates neighbours)."""
    h, w = shape
    small = rng.standard_normal((max(2, int(np.ceil(h / scale_px)) + 1), max(2, int(np.ceil(w / scale_px)) + 1)))
    field = cv2.resize(small.astype(np.float32), (w, h), interpolation=cv2.INTER_CUBIC).astype(np.float64)
    return field / max(float(field.std()), 1e-6)


def misregister(raw: np.ndarray, shift_px: tuple[float, float], scale: float, fill: int = RAW_INVALID) -> np.ndarray:
    """Shift (dx, dy) and scale about the centre, nearest-neighbour so no new raw values are invented."""
    h, w = raw.shape
    u, v = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    map_x = (u - w / 2) / scale + w / 2 - shift_px[0]
    map_y = (v - h / 2) / scale + h / 2 - shift_px[1]
    return cv2.remap(
        raw, map_x, map_y, cv2.INTER_NEAREST, borderMode=cv2.BORDER_CONSTANT, borderValue=int(fill)
    ).astype(raw.dtype)


@dataclass
class KinectNoiseModel:
    """Parameters of the corruption; defaults tuned against real hole statistics (benchmarks/results/corpus.md)."""

    baseline_m: float = PROJECTOR_FROM_IR_M
    """IR projector position along the image camera's +x axis (Kinect v1: 7.5 cm right of the IR camera)."""
    ir_camera_offset_m: float = 0.0
    """IR camera position along the image camera's +x axis: 0 for depth in the IR camera's own image."""
    disparity_sigma: float = 0.25
    """Std of white disparity noise in raw units (before rounding); depth std = sigma * d^2 / 351.3."""
    correlated_sigma: float = 0.25
    """Std of the spatially correlated part of the disparity noise, raw units."""
    correlated_scale_px: float = 12.0
    """Correlation length of disparity noise in native 640x480 Kinect pixels (weak-return blobs: 2.5x)."""
    min_range_m: float = 0.72
    """The NYU toolbox rejects raw < 600 (0.71 m)."""
    max_range_m: float = 8.0
    ir_threshold: float = 0.01
    """Return `albedo * cos / d^2` (d in metres) below which the speckle is lost (50% dropout point)."""
    ir_softness: float = 0.25
    """Log-spread of the dropout threshold: 0 makes it a hard cut."""
    glancing_cos: float = 0.15
    """Incidence cosine below which no speckle is matched."""
    edge_fattening: float = 0.5
    """Probability that a background pixel touching a foreground edge takes the foreground depth."""
    edge_jump_m: float = 0.1
    edge_dropout: float = 0.25
    """Probability that a pixel beside a depth jump loses its match (the correlation window straddles two depths)."""
    blob_dropout: float = 0.01
    """Fraction of the image lost in random blobs (specular spots, speckle interference)."""
    blob_scale_px: float = 24.0
    """Blob size in native 640x480 pixels."""
    misregistration_px: float = 0.0
    """Std of the depth-to-RGB shift (pixels of this image) for depth registered to a colour camera; 0 = none."""
    misregistration_scale: float = 0.004
    """Std of the relative depth-to-RGB scale error."""

    @classmethod
    def registered_to_rgb(cls, **changes: float) -> KinectNoiseModel:
        """The model for depth registered to the Kinect's RGB camera (NYU labeled, corpus frames).

        In the RGB camera's frame the IR camera sits at the calibrated `T_EFF` (2.5 cm to the left)
        and the projector 7.5 cm to the right of it (5 cm right of the RGB camera): a registered
        pixel needs both, so shadows fall left of near objects and thinner occlusions right of them.
        """
        ir_x = float(T_EFF[0])
        return cls(**{"baseline_m": ir_x + PROJECTOR_FROM_IR_M, "ir_camera_offset_m": ir_x, **changes})

    def corrupt(
        self,
        depth_m: np.ndarray,
        rgb: np.ndarray | None,
        rng: np.random.Generator,
        *,
        K: np.ndarray | None = None,
        albedo: np.ndarray | None = None,
        normals: np.ndarray | None = None,
    ) -> np.ndarray:
        """Noisy, quantised, holed depth in metres (float32, 0 = missing) from clean planar depth."""
        return raw_to_metres(self.corrupt_raw(depth_m, rgb, rng, K=K, albedo=albedo, normals=normals))

    def corrupt_raw(
        self,
        depth_m: np.ndarray,
        rgb: np.ndarray | None,
        rng: np.random.Generator,
        *,
        K: np.ndarray | None = None,
        albedo: np.ndarray | None = None,
        normals: np.ndarray | None = None,
    ) -> np.ndarray:
        """What the sensor stores: 11-bit raw disparity (uint16, `RAW_INVALID` = missing).

        `K` is the intrinsics of the image `depth_m` belongs to (default: a Kinect field of view over its
        width; pass it for crops). `albedo` (H, W) or (H, W, 3) in [0, 1] and camera-frame `normals`
        come from the renderer; without them the grey level of `rgb` and depth-gradient normals stand in.
        """
        depth = np.asarray(depth_m, dtype=np.float64)
        h, w = depth.shape
        if K is None:
            K = np.array([[default_focal_px(w), 0, w / 2], [0, default_focal_px(w), h / 2], [0, 0, 1]])
        depth = self._fatten_edges(depth, rng)
        noise = self.disparity_sigma * rng.standard_normal(depth.shape)
        if self.correlated_sigma > 0:
            scale = self.correlated_scale_px * _native_scale(float(K[0, 0]))
            noise += self.correlated_sigma * correlated_noise(depth.shape, scale, rng)
        raw = quantise_disparity(depth, noise)
        holes = self.hole_mask(depth, rgb, rng, K=K, albedo=albedo, normals=normals)
        valid_range = (depth >= self.min_range_m) & (depth <= self.max_range_m)
        invalid = holes | ~valid_range | ~np.isfinite(raw) | (raw < 0) | (raw >= RAW_INVALID)
        out = np.where(invalid, RAW_INVALID, np.where(np.isfinite(raw), raw, RAW_INVALID)).astype(np.uint16)
        if self.misregistration_px > 0:
            dx, dy = rng.normal(0.0, self.misregistration_px, 2)
            out = misregister(out, (float(dx), float(dy)), 1.0 + rng.normal(0.0, self.misregistration_scale))
        return out

    def hole_mask(
        self,
        depth_m: np.ndarray,
        rgb: np.ndarray | None,
        rng: np.random.Generator,
        *,
        K: np.ndarray | None = None,
        albedo: np.ndarray | None = None,
        normals: np.ndarray | None = None,
    ) -> np.ndarray:
        """Where a real Kinect returns nothing: projector shadows, weak IR return, glancing, random."""
        depth = np.asarray(depth_m, dtype=np.float64)
        h, w = depth.shape
        fx = default_focal_px(w) if K is None else float(K[0, 0])
        cx, cy = (w / 2, h / 2) if K is None else (float(K[0, 2]), float(K[1, 2]))
        shadow = projector_shadow(depth, fx, self.baseline_m)
        if self.ir_camera_offset_m:  # registered depth: also what the IR camera itself could not see
            shadow |= projector_shadow(depth, fx, self.ir_camera_offset_m)
        if normals is None:
            normals = normals_from_depth(depth, fx)
        cos = incidence_cosine(depth, normals, fx, cx, cy)
        if albedo is None:
            albedo = np.full(depth.shape, 0.5) if rgb is None else _grey(rgb)
        albedo = np.asarray(albedo, dtype=np.float64)
        if albedo.ndim == 3:
            albedo = albedo.mean(-1)
        ir = albedo * cos / np.maximum(depth, 1e-3) ** 2
        px = _native_scale(fx)
        jitter = correlated_noise(depth.shape, 2.5 * self.correlated_scale_px * px, rng)  # blobs, not salt
        threshold = self.ir_threshold * np.exp(self.ir_softness * jitter)
        weak = ir < threshold
        glancing = cos < self.glancing_cos
        stretches = correlated_noise(depth.shape, 4.0 * px, rng)  # matching fails along stretches of an edge
        near_jump = _depth_jumps(depth, self.edge_jump_m) & (stretches > np.quantile(stretches, 1 - self.edge_dropout))
        blobs = np.zeros(depth.shape, dtype=bool)
        if self.blob_dropout > 0:
            field = correlated_noise(depth.shape, self.blob_scale_px * px, rng)
            blobs = field > np.quantile(field, 1.0 - self.blob_dropout)
        return shadow | weak | glancing | near_jump | blobs

    def _fatten_edges(self, depth: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Block matching lets the nearer surface bleed about one pixel over a depth edge."""
        if self.edge_fattening <= 0:
            return depth
        near = ndimage.minimum_filter(np.where(depth > 0, depth, np.inf), size=3)
        bleed = (depth - near > self.edge_jump_m) & np.isfinite(near) & (rng.random(depth.shape) < self.edge_fattening)
        return np.where(bleed, near, depth)


def _native_scale(fx: float) -> float:
    """Image pixels per native Kinect pixel: sensor effects have a fixed size on the 640x480 sensor."""
    return fx / default_focal_px(640)


def _depth_jumps(depth: np.ndarray, jump_m: float) -> np.ndarray:
    """Pixels on either side of a depth step larger than `jump_m` between 4-neighbours."""
    out = np.zeros(depth.shape, dtype=bool)
    dx = np.abs(np.diff(depth, axis=1)) > jump_m
    dy = np.abs(np.diff(depth, axis=0)) > jump_m
    out[:, 1:] |= dx
    out[:, :-1] |= dx
    out[1:] |= dy
    out[:-1] |= dy
    return out


def _grey(rgb: np.ndarray) -> np.ndarray:
    """Mean channel in [0, 1] from uint8 or float RGB (a stand-in for IR albedo)."""
    rgb = np.asarray(rgb)
    grey = rgb.astype(np.float64).mean(-1)
    return grey / 255.0 if rgb.dtype == np.uint8 else grey
