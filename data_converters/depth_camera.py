"""Depth shipped in its own camera as if registered: estimate that camera from edges, then register it.

7-Scenes ships Kinect v1 depth as its IR camera saw it, beside colour from the RGB camera, both at 640x480
and with no calibration. The IR camera sits a few centimetres beside the RGB camera and has a longer focal
length (about 585 against 525 px). Read as registered, the depth content that colour shows at pixel p lies at

    q = c + s (p - c) + t + (B / z, 0)

with c the principal point, s the ratio of focal lengths, t the offset of the principal points (px) and B = s f b
(px m) the parallax of a baseline b along x at depth z. One image-plane shift (`depth_alignment`) fits that only
near one pixel and one depth: a 3 px shift is a small part of 30 px at the image border.

The fit extends the edge score of `depth_alignment` from one shift to this camera: every depth jump is moved back by
the offset a candidate camera predicts for it, and the candidate under which the jumps fall onto the strongest colour
edges wins (`estimate_depth_camera`). Depth is then registered with that camera (`DepthCamera.register`: z-buffered,
never blended).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from data_converters.depth_alignment import (
    DEPTH_JUMP,
    EDGE_CLASSES,
    MIN_CONTRAST,
    MIN_EDGE_PIXELS,
    _parabola_vertex,
    colour_gradients,
    depth_jumps,
    inside_window,
)
from data_converters.depth_registration import reproject_depth

SCALES = np.round(np.arange(0.85, 1.25001, 0.005), 4)
"""Focal-length ratios searched (7-Scenes' Kinect v1: about 585 / 525 = 1.11)."""
PARALLAXES = np.arange(-40.0, 40.01, 1.0)
"""Parallax coefficients searched (px m): a 2.5 cm baseline at f = 585 px gives about 15."""
MAX_JUMPS = 20000
"""Jumps kept per edge class (a fixed random subset beyond that): the search's cost is linear in them."""
MARGIN = 48
"""Jumps closer than this to the border are left out, so every searched camera moves them inside the image."""


@dataclass
class DepthCamera:
    """Where depth lies against colour: q = c + scale (p - c) + offset + (parallax / z, 0) (module docstring)."""

    scale: float = 1.0
    """Depth camera's focal length over the colour camera's."""
    offset: tuple[float, float] = (0.0, 0.0)
    """Depth camera's principal point minus the colour camera's (px)."""
    parallax: float = 0.0
    """scale x focal length x baseline along x (px m): the x offset of content at 1 m from the baseline."""
    reliable: bool = False
    reason: str = "not estimated"
    bleed: tuple[float, float] = (0.0, 0.0)
    """Half the gap (px) between the two edge classes of x and of y once the camera is undone (`DepthOffset.bleed`)."""
    gain: float = 0.0
    """How much higher the edges score under this camera than under a pure shift (scale 1, no parallax), relative:
    near 0 when one shift explains the edges."""

    def depth_intrinsics(self, K: np.ndarray) -> tuple[np.ndarray, float]:
        """(3x3 intrinsics of the depth camera, baseline in metres along x from colour to depth camera), from the
        colour camera's `K`."""
        K_depth = np.asarray(K, dtype=np.float64).copy()
        K_depth[0, 0] *= self.scale
        K_depth[1, 1] *= self.scale
        K_depth[0, 2] += self.offset[0]
        K_depth[1, 2] += self.offset[1]
        return K_depth, self.parallax / K_depth[0, 0]

    def colour_intrinsics(self, K: np.ndarray) -> np.ndarray:
        """The colour camera's 3x3 intrinsics when the `K` the fit was given is the depth camera's (7-Scenes: the
        585 px usually taken for it describe its depth camera): focal / scale, principal point - offset / scale."""
        K_colour = np.asarray(K, dtype=np.float64).copy()
        K_colour[0, 0] /= self.scale
        K_colour[1, 1] /= self.scale
        K_colour[0, 2] -= self.offset[0] / self.scale
        K_colour[1, 2] -= self.offset[1] / self.scale
        return K_colour

    def register(self, depth_m: np.ndarray, K: np.ndarray) -> np.ndarray:
        """`depth_m` (metres, as the depth camera saw it) moved into the colour camera's pixels, for the `K` the fit
        was given. The pixel mapping needs only K's principal point (the focal length cancels), so this holds
        whichever camera `K` describes; with the depth camera's, the colour pixels go with `colour_intrinsics(K)`."""
        K_depth, baseline = self.depth_intrinsics(K)
        depth_to_colour = np.eye(4)
        depth_to_colour[0, 3] = -baseline
        h, w = np.shape(depth_m)
        return reproject_depth(depth_m, K_depth, K, depth_to_colour, (w, h))

    def as_dict(self) -> dict:
        """JSON-ready record for a scene's metadata."""
        return {
            "model": "q = c + scale (p - c) + offset + (parallax / z, 0)",
            "scale": round(self.scale, 4),
            "offset": [round(v, 2) for v in self.offset],
            "parallax_px_m": round(self.parallax, 2),
            "reliable": self.reliable,
            "reason": self.reason,
            "bleed": [round(v, 2) for v in self.bleed],
            "gain_over_shift": round(self.gain, 3),
        }


class _Jumps(NamedTuple):
    """One edge class's depth jumps over all frames: pixel positions (the jump's first pixel, as `depth_jumps` and
    `colour_gradients` index pairs), the nearer side's inverse depth, the frame, and the gradient maps scored."""

    x: np.ndarray
    y: np.ndarray
    inverse_depth: np.ndarray
    frame: np.ndarray
    grads: np.ndarray
    """(frames, H, W') gradient maps the class is scored on (one array shared by the two classes of an axis)."""


def _collect(frames: list[tuple[np.ndarray, np.ndarray]], jump: float) -> list[_Jumps]:
    """The four edge classes' jumps (`EDGE_CLASSES` order) of `frames`, at least `MARGIN` px from the border."""
    parts: list[list[tuple]] = [[] for _ in EDGE_CLASSES]
    grads: tuple[list[np.ndarray], list[np.ndarray]] = ([], [])
    for i, (rgb, depth) in enumerate(frames):
        gx, gy = colour_gradients(rgb)
        grads[0].append(gx)
        grads[1].append(gy)
        step_x, step_y = depth_jumps(depth, jump)
        d = np.asarray(depth, dtype=np.float64)
        near_x, near_y = np.minimum(d[:, 1:], d[:, :-1]), np.minimum(d[1:], d[:-1])
        for k, (mask, grad, near) in enumerate(
            ((step_x > 0, gx, near_x), (step_x < 0, gx, near_x), (step_y > 0, gy, near_y), (step_y < 0, gy, near_y))
        ):
            ys, xs = np.nonzero(mask)
            keep = inside_window(ys, xs, grad.shape, MARGIN)
            ys, xs = ys[keep], xs[keep]
            parts[k].append((xs, ys, 1.0 / near[ys, xs], np.full(len(xs), i)))
    stacked = (np.stack(grads[0]), np.stack(grads[1]))
    rng = np.random.default_rng(0)
    out = []
    for k in range(len(EDGE_CLASSES)):
        columns = [np.concatenate([p[j] for p in parts[k]]) for j in range(4)]
        if len(columns[0]) > MAX_JUMPS:
            keep = np.sort(rng.choice(len(columns[0]), MAX_JUMPS, replace=False))
            columns = [c[keep] for c in columns]
        out.append(_Jumps(*columns, stacked[k // 2]))
    return out


def _profile(jumps: _Jumps, axis: int, shift_x: np.ndarray, shift_y: np.ndarray, max_shift: int) -> np.ndarray:
    """(2m+1,) summed colour gradient at each jump moved back by its predicted offset (shift_x, shift_y) and then by
    each residual offset along `axis` from -m to m: where the class's content lies once the camera is undone."""
    lags = np.arange(-max_shift, max_shift + 1)
    x = np.rint(jumps.x - shift_x).astype(np.int64)[:, None] - (lags if axis == 0 else 0)
    y = np.rint(jumps.y - shift_y).astype(np.int64)[:, None] - (lags if axis == 1 else 0)
    _, h, w = jumps.grads.shape
    return jumps.grads[jumps.frame[:, None], np.clip(y, 0, h - 1), np.clip(x, 0, w - 1)].sum(axis=0)


class _Peak(NamedTuple):
    offset: float
    """Sub-pixel position of the profile's maximum."""
    contrast: float
    """The maximum over the profile's median, minus 1."""
    inside: bool
    """The maximum is not on the window's edge."""
    height: float
    """The maximum at the parabola's vertex: a score that changes smoothly as a camera parameter moves the peak
    between whole pixels."""


def _peak(profile: np.ndarray) -> _Peak:
    i = int(np.argmax(profile))
    m = (len(profile) - 1) // 2
    inside = 0 < i < len(profile) - 1
    contrast = float(profile[i] / max(float(np.median(profile)), 1e-12) - 1.0)
    if not inside:
        return _Peak(float(i - m), contrast, False, float(profile[i]))
    left, centre, right = profile[i - 1 : i + 2]
    vertex = _parabola_vertex(left, centre, right)
    return _Peak(i - m + vertex, contrast, True, float(centre + 0.25 * (right - left) * vertex))


def _best(values: np.ndarray, scores: np.ndarray) -> float:
    """The searched value with the best score, refined by a parabola through it and its neighbours."""
    i = int(np.argmax(scores))
    if 0 < i < len(values) - 1:
        return float(values[i] + _parabola_vertex(*scores[i - 1 : i + 2]) * (values[1] - values[0]))
    return float(values[i])


def estimate_depth_camera(
    frames: Iterable[tuple[np.ndarray, np.ndarray]], K: np.ndarray, max_shift: int = 8, jump: float = DEPTH_JUMP
) -> DepthCamera:
    """The depth camera of `frames` of (rgb (H, W, 3), depth (H, W) in metres, 0 = invalid) relative to the colour
    camera `K`, fitted from edges (module docstring).

    Each candidate (scale, parallax) is scored by the peak heights of the four classes' residual offset profiles:
    horizontal edges (the y classes) see no parallax and weigh on the scale alone, vertical ones (the x classes) on
    both. A coarse grid over both is refined along the scale, then along the parallax. Each axis's offset is the
    mean of its two classes' peaks, which cancels the sensor's bleeding, as in `depth_alignment`.
    """
    frames = [(np.asarray(rgb), np.asarray(depth, dtype=np.float32)) for rgb, depth in frames]
    if not frames:
        raise ValueError("no frames to estimate the depth camera from")
    K = np.asarray(K, dtype=np.float64)
    cx, cy = K[0, 2], K[1, 2]
    jumps = _collect(frames, jump)
    counts = [len(j.x) for j in jumps]
    if min(counts) < MIN_EDGE_PIXELS:
        few = ", ".join(f"{n} '{c}'" for n, c in zip(counts, EDGE_CLASSES, strict=True) if n < MIN_EDGE_PIXELS)
        return DepthCamera(reason=f"too few depth-jump pixels: {few} (need {MIN_EDGE_PIXELS} of each class)")

    # Depth pixel q shows colour pixel p = c + (q - c - offset - (parallax / z, 0)) / scale, so q lies
    # (1 - 1/scale) (q - c) + (parallax / scale) / z + offset / scale from p: profiles measure that last term.
    def y_profiles(scale: float) -> list[np.ndarray]:
        k = 1 - 1 / scale
        return [_profile(j, 1, k * (j.x - cx), k * (j.y - cy), max_shift) for j in jumps[2:]]

    def x_profiles(scale: float, parallax: float, lag_y: float) -> list[np.ndarray]:
        k = 1 - 1 / scale
        return [
            _profile(j, 0, k * (j.x - cx) + parallax / scale * j.inverse_depth, k * (j.y - cy) + lag_y, max_shift)
            for j in jumps[:2]
        ]

    def score(peaks: list[_Peak]) -> float:
        return float(sum(p.height for p in peaks))

    def offset(peaks: list[_Peak]) -> float:
        return float(np.mean([p.offset for p in peaks]))

    def y_peaks(scale: float) -> list[_Peak]:
        return [_peak(p) for p in y_profiles(scale)]

    def x_peaks(scale: float, parallax: float, lag_y: float) -> list[_Peak]:
        return [_peak(p) for p in x_profiles(scale, parallax, lag_y)]

    # Coarse: every scale and parallax on a grid twice as wide; y edges score the scale alone, x edges both.
    scales, parallaxes = SCALES[::2], PARALLAXES[::2]
    coarse_y = [y_peaks(s) for s in scales]
    x_scores = np.array(
        [[score(x_peaks(s, b, offset(ys))) for b in parallaxes] for s, ys in zip(scales, coarse_y, strict=True)]
    )
    y_scores = np.array([score(ys) for ys in coarse_y])
    i, j = np.unravel_index(np.argmax(y_scores[:, None] + x_scores), x_scores.shape)
    # Fine: the scale about its coarse best with the parallax held, then the parallax with the scale held.
    near = np.abs(SCALES - scales[i]) <= SCALES[2] - SCALES[0]
    fine_y = [y_peaks(s) for s in SCALES[near]]
    scale_scores = np.array(
        [score(ys) + score(x_peaks(s, parallaxes[j], offset(ys))) for s, ys in zip(SCALES[near], fine_y, strict=True)]
    )
    scale = _best(SCALES[near], scale_scores)
    final_y = y_peaks(scale)
    lag_y = offset(final_y)
    near = np.abs(PARALLAXES - parallaxes[j]) <= PARALLAXES[2] - PARALLAXES[0]
    parallax_scores = np.array([score(x_peaks(scale, b, lag_y)) for b in PARALLAXES[near]])
    parallax = _best(PARALLAXES[near], parallax_scores)
    final_x = x_peaks(scale, parallax, lag_y)
    lag_x = offset(final_x)
    identity_y = y_peaks(1.0)
    gain = (score(final_y) + score(final_x)) / (score(identity_y) + score(x_peaks(1.0, 0.0, offset(identity_y)))) - 1
    peaks = final_x + final_y
    problems = [
        f"'{EDGE_CLASSES[k]}' edges peak on the search window's edge" for k, p in enumerate(peaks) if not p.inside
    ] + [
        f"'{EDGE_CLASSES[k]}' edges peak flat (contrast {p.contrast:.2f} < {MIN_CONTRAST})"
        for k, p in enumerate(peaks)
        if p.contrast < MIN_CONTRAST
    ]
    for name, values, k in (("scale", scales, i), ("parallax", parallaxes, j)):
        if k in (0, len(values) - 1):
            problems.append(f"the best {name} is the searched range's end ({values[k]})")
    return DepthCamera(
        scale=scale,
        offset=(scale * lag_x, scale * lag_y),
        parallax=parallax,
        reliable=not problems,
        reason="; ".join(problems) or f"{sum(counts)} depth-jump pixels over {len(frames)} frames",
        bleed=((final_x[0].offset - final_x[1].offset) / 2, (final_y[0].offset - final_y[1].offset) / 2),
        gain=gain,
    )
