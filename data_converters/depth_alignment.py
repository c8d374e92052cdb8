"""Depth-to-colour misalignment: measured from edges, corrected by an image-plane shift.

Several RGB-D datasets record depth and colour with two cameras and ship them as if registered
(7-Scenes) or registered with a factory calibration that is a pixel or two off. Depth that sits beside
its colour teaches a NeRF the wrong depth on one side of every occluding edge, and the colour loss
then pays for it (issue #19 item 5).

An occluding edge (a depth jump) is almost always a colour edge too, while most colour edges
(texture) are not depth edges. So the misalignment is the image-plane shift that puts depth jumps onto
the strongest colour gradients of the same orientation: a jump between two horizontal neighbours is
scored with the colour's horizontal gradient, a jump between two vertical neighbours with the vertical
one. Structured-light depth also fattens the nearer surface by a pixel or two ("bleeding"), which
moves edges with the nearer side on the left and on the right apart in opposite directions; each axis's
offset is therefore the mean of its two edge classes' best shifts, and half their gap is the bleed
(`EDGE_CLASSES`). Scores are summed over several frames, searched over integer shifts and refined to
sub-pixel with a parabola. A scene with few depth edges (a wall, a floor), a flat score or frames that
disagree give "no reliable estimate" rather than noise.

Conventions: an offset (dx, dy) says the depth's content lies dx pixels right and dy pixels down of
where the colour shows it. `shift_depth(depth, dx, dy)` moves depth content by (dx, dy), so
`shift_depth(depth, -dx, -dy)` corrects an estimated offset.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import NamedTuple

import cv2
import numpy as np

DEPTH_JUMP = 0.03
"""Step in log depth between neighbouring pixels that counts as an occluding edge. Structured light quantises depth
in steps of about z^2 / 350 m (1.2% at 4 m, 1.7% at 6 m) and slanted surfaces change by well under that per pixel;
3% clears both, while occluding edges in rooms jump by 10% or more."""
COLOUR_BLUR_SIGMA = 1.0
"""Gaussian blur (pixels) of the grey image before its gradient: widens each colour edge so the score varies
smoothly with the shift (the sub-pixel fit needs that) and suppresses JPEG and sensor noise."""
EDGE_CLASSES = ("near left", "near right", "near above", "near below")
"""Depth jumps by which side is nearer: between columns (they measure dx) with the nearer surface on the left or on
the right, between rows (they measure dy) with it above or below. Bleeding moves the two classes of an axis apart by
the same amount in opposite directions, so their mean cancels it: a scene with more jumps of one class (SUN3D
fragment 2 has 2.6x more 'near right' than 'near left') does not read the bleed as a shift."""
MIN_EDGE_PIXELS = 50
"""Depth-jump pixels each of an axis's two edge classes needs in a frame for that frame's own estimate of the axis
(and over all frames for the joint one); fewer (a wall, a floor) carry no alignment signal."""
MIN_FRAMES = 3
"""Frames with their own estimate needed for a reliable joint one."""
MAX_UNCERTAINTY = 0.3
"""Largest standard error (pixels, per axis) of a reliable estimate: the frames' robust spread over sqrt(frames).
Frames disagree when colour and depth were not taken at the same instant (the offset then follows the camera's
motion) or when edges are few and weak."""
MIN_CONTRAST = 0.2
"""Smallest contrast (peak score over the median across the window, minus 1) of the weakest edge class. Depth of
one frame scored against the colour of another gives 0.03-0.14 on SUN3D; registered frames 0.2-1.3."""


@dataclass
class DepthOffset:
    """A depth-to-colour misalignment measured over several frames (see the module docstring's conventions)."""

    dx: float
    """Pixels the depth's content lies right of the colour's (sub-pixel)."""
    dy: float
    """Pixels the depth's content lies below the colour's (sub-pixel)."""
    reliable: tuple[bool, bool]
    """Per axis (x, y): enough edges of both classes, peaks inside the window with some contrast, frames agree."""
    reason: str
    """Why each axis is or is not reliable, in words."""
    uncertainty: tuple[float, float] = (float("inf"), float("inf"))
    """Standard error (pixels) of dx and dy: the robust spread of the frames' own estimates over sqrt(frames)."""
    bleed: tuple[float, float] = (0.0, 0.0)
    """How far (pixels) depth fattens the nearer surface across vertical and across horizontal edges: half the gap
    between the two edge classes of each axis. No shift removes it; the robust depth loss covers it."""
    contrast: tuple[float, float] = (0.0, 0.0)
    """Per axis, its weaker class's peak score over its median across the window, minus 1 (0 = no preferred shift)."""
    frames_seen: int = 0
    edge_pixels: int = 0
    """Depth-jump pixels scored, over all frames and classes."""
    per_frame: list[tuple[float, float]] = field(default_factory=list)
    """Each frame's own (dx, dy); nan on an axis where the frame has too few edges."""

    def correction(self, min_offset: float = 0.5) -> tuple[int, int]:
        """Whole-pixel shift that moves depth onto colour (`shift_depth(depth, *correction)`): minus the rounded
        offset on each reliable axis whose offset is at least `min_offset` pixels, 0 on the others."""
        return tuple(  # type: ignore[return-value]
            -int(np.round(v)) if ok and abs(v) >= min_offset else 0
            for v, ok in zip((self.dx, self.dy), self.reliable, strict=True)
        )

    def as_dict(self) -> dict:
        """JSON-ready record (rounded to 0.01 px; None for infinite or undefined values) for a scene's metadata."""

        def r(x: float) -> float | None:
            return round(float(x), 2) if np.isfinite(x) else None

        return {
            "dx": r(self.dx),
            "dy": r(self.dy),
            "reliable": list(self.reliable),
            "reason": self.reason,
            "uncertainty": [r(u) for u in self.uncertainty],
            "bleed": [r(b) for b in self.bleed],
            "contrast": [r(c) for c in self.contrast],
            "frames_seen": self.frames_seen,
            "edge_pixels": self.edge_pixels,
            "per_frame": [[r(a), r(b)] for a, b in self.per_frame],
        }


def depth_jumps(depth: np.ndarray, jump: float = DEPTH_JUMP) -> tuple[np.ndarray, np.ndarray]:
    """Signed log-depth steps where depth jumps: (H, W-1) from column x to x+1 and (H-1, W) from row y to y+1, 0
    where there is no jump.

    Only pairs of valid (> 0, finite) pixels count: the border of a hole is where the sensor saw nothing, not where a
    surface ends, and the shadow holes beside occluding edges would otherwise put the edge a hole's width away.
    """
    d = np.asarray(depth, dtype=np.float32)
    valid = np.isfinite(d) & (d > 0)
    log_d = np.log(np.where(valid, d, 1.0))
    step_x, step_y = np.diff(log_d, axis=1), np.diff(log_d, axis=0)
    step_x[~(valid[:, 1:] & valid[:, :-1]) | (np.abs(step_x) <= jump)] = 0.0
    step_y[~(valid[1:] & valid[:-1]) | (np.abs(step_y) <= jump)] = 0.0
    return step_x, step_y


def depth_discontinuities(depth: np.ndarray, jump: float = DEPTH_JUMP) -> np.ndarray:
    """(H, W) bool: the pixels on either side of every depth jump (`depth_jumps`)."""
    step_x, step_y = depth_jumps(depth, jump)
    edge = np.zeros(np.shape(depth), dtype=bool)
    edge[:, 1:] |= step_x != 0
    edge[:, :-1] |= step_x != 0
    edge[1:] |= step_y != 0
    edge[:-1] |= step_y != 0
    return edge


def distance_to_discontinuity(depth: np.ndarray, jump: float = DEPTH_JUMP, cap: float = 16.0) -> np.ndarray:
    """(H, W) float32 distance in pixels from each pixel to the nearest depth-jump pixel, capped at `cap`.

    The depth loss trusts depth less near occluding edges (`DiffNerfModelConfig.depth_edge_band`): there what is
    left of a misalignment, the sensor's bleeding and colour/depth taken at different instants put one surface's
    depth on the other surface's colour.
    """
    edge = depth_discontinuities(depth, jump)
    if not edge.any():
        return np.full(edge.shape, cap, dtype=np.float32)
    dist = cv2.distanceTransform((~edge).astype(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
    return np.minimum(dist, cap).astype(np.float32)


def colour_gradients(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """|forward differences| of the blurred grey image, (H, W-1) and (H-1, W): the same pixel pairs as
    `depth_jumps`, so aligned edges score best at exactly zero shift. Divided by the frame's mean gradient, so
    frames of different contrast weigh alike."""
    rgb = np.asarray(rgb)
    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY) if rgb.ndim == 3 else rgb
    grey = cv2.GaussianBlur(grey.astype(np.float32), (0, 0), COLOUR_BLUR_SIGMA)
    gx, gy = np.abs(np.diff(grey, axis=1)), np.abs(np.diff(grey, axis=0))
    scale = max(float(gx.mean() + gy.mean()) / 2.0, 1e-6)
    return gx / scale, gy / scale


def class_scores(
    rgb: np.ndarray, depth: np.ndarray, max_shift: int = 8, jump: float = DEPTH_JUMP
) -> tuple[np.ndarray, np.ndarray]:
    """Score maps (4, 2m+1, 2m+1) and jump counts (4,) of one frame, per edge class (`EDGE_CLASSES`).

    Map entry [m + sy, m + sx] sums the colour gradient at p - (sx, sy) over the class's depth jumps p: the
    hypothesis that depth content lies (sx, sy) from the colour's. Jumps within m pixels of the border are left
    out so every shift scores the same jumps.
    """
    if np.shape(rgb)[:2] != np.shape(depth):
        raise ValueError(f"colour {np.shape(rgb)} and depth {np.shape(depth)} differ in size")
    gx, gy = colour_gradients(rgb)
    step_x, step_y = depth_jumps(depth, jump)
    scores = np.zeros((len(EDGE_CLASSES), 2 * max_shift + 1, 2 * max_shift + 1))
    counts = np.zeros(len(EDGE_CLASSES), dtype=np.int64)
    # near left: depth grows to the right (log step > 0); near above: it grows downwards.
    for k, (mask, grad) in enumerate(((step_x > 0, gx), (step_x < 0, gx), (step_y > 0, gy), (step_y < 0, gy))):
        ys, xs = np.nonzero(mask)
        inside = inside_window(ys, xs, grad.shape, max_shift)
        counts[k] = int(inside.sum())
        scores[k] = lag_scores(grad, ys[inside], xs[inside], max_shift)
    return scores, counts


def inside_window(ys: np.ndarray, xs: np.ndarray, shape: tuple[int, ...], max_shift: int) -> np.ndarray:
    """Jumps at least `max_shift` pixels from the border of a map of `shape`: every shift scores them."""
    h, w = shape[:2]
    return (ys >= max_shift) & (ys < h - max_shift) & (xs >= max_shift) & (xs < w - max_shift)


def lag_scores(grad: np.ndarray, ys: np.ndarray, xs: np.ndarray, max_shift: int) -> np.ndarray:
    """(2m+1, 2m+1) map whose entry [m + sy, m + sx] sums `grad` at (ys - sy, xs - sx) over the given jumps (all
    `inside_window`)."""
    m = max_shift
    sy, sx = np.mgrid[-m : m + 1, -m : m + 1]
    w = grad.shape[1]
    at = ys * w + xs
    lags = (sy * w + sx).ravel()
    flat = grad.ravel()
    total = np.zeros(sy.size)
    for chunk in range(0, len(at), 4096):  # (jumps, shifts) blocks of at most 4096 x (2m+1)^2
        total += flat[at[chunk : chunk + 4096, None] - lags].sum(axis=0, dtype=np.float64)
    return total.reshape(sy.shape)


def _parabola_vertex(left: float, centre: float, right: float) -> float:
    """Offset in [-0.5, 0.5] of the maximum of the parabola through three equally spaced samples."""
    denom = left - 2.0 * centre + right
    if denom >= 0:  # not a maximum (flat or convex): keep the integer peak
        return 0.0
    return float(np.clip(0.5 * (left - right) / denom, -0.5, 0.5))


class AxisEstimate(NamedTuple):
    """What the two edge classes of one axis say, in one frame or over all frames."""

    offset: float
    bleed: float
    contrast: float
    enough_edges: bool
    problems: list[str]


def axis_estimate(scores: np.ndarray, counts: np.ndarray, axis: int) -> AxisEstimate:
    """Offset along `axis` (0 = x, 1 = y) from its two edge classes: the mean of their best shifts (sub-pixel), the
    bleed half their gap. A class's map is reduced to a profile along the axis by taking the best shift across it:
    vertical edges say little about dy, and a dy error must not pull their dx estimate."""
    name = "xy"[axis]
    peaks, contrasts, problems = [], [], []
    for k in (2 * axis, 2 * axis + 1):
        profile = scores[k].max(axis=axis)  # [iy, ix]: best over rows for the x profile, over columns for y
        i = int(np.argmax(profile))
        m = (len(profile) - 1) // 2
        if 0 < i < len(profile) - 1:
            peaks.append(i - m + _parabola_vertex(profile[i - 1], profile[i], profile[i + 1]))
        else:
            peaks.append(float(i - m))
            problems.append(f"{name}: '{EDGE_CLASSES[k]}' edges score best on the window's edge ({i - m:+d} px)")
        contrasts.append(float(profile[i] / max(float(np.median(profile)), 1e-12) - 1.0))
    few = [f"{counts[k]} '{EDGE_CLASSES[k]}'" for k in (2 * axis, 2 * axis + 1) if counts[k] < MIN_EDGE_PIXELS]
    if few:
        problems.insert(0, f"{name}: too few depth-jump pixels, {' and '.join(few)} (need {MIN_EDGE_PIXELS})")
    return AxisEstimate((peaks[0] + peaks[1]) / 2, (peaks[0] - peaks[1]) / 2, min(contrasts), not few, problems)


def estimate_depth_offset(
    frames: Iterable[tuple[np.ndarray, np.ndarray]], max_shift: int = 8, jump: float = DEPTH_JUMP
) -> DepthOffset:
    """The image-plane offset of depth relative to colour, jointly over `frames` of (rgb (H, W, 3), depth (H, W)).

    Depth is in any unit with 0 (or nan) = invalid. Offsets up to `max_shift` pixels each way are searched; a
    class peaking on the window's edge makes its axis unreliable (the offset may be larger). Each axis is judged on
    its own: a corridor of vertical edges can give dx and no dy. Depth-dependent parallax (a baseline error) and
    colour/depth taken at different instants are not modelled: the estimate is their average over the frames, the
    part one shift can remove, and their spread shows in `uncertainty`.
    """
    if max_shift < 1:
        raise ValueError(f"max_shift {max_shift}: must be at least 1 pixel")
    n = 2 * max_shift + 1
    total, counts = np.zeros((len(EDGE_CLASSES), n, n)), np.zeros(len(EDGE_CLASSES), dtype=np.int64)
    own: list[list[float]] = [[], []]
    seen = 0
    for rgb, depth in frames:
        seen += 1
        scores, frame_counts = class_scores(rgb, depth, max_shift, jump)
        total += scores
        counts += frame_counts
        for axis in (0, 1):
            frame_axis = axis_estimate(scores, frame_counts, axis)
            own[axis].append(frame_axis.offset if frame_axis.enough_edges else np.nan)
    if seen == 0:
        raise ValueError("no frames to estimate the depth offset from")
    axes, uncertainty, reliable, reasons = [], [], [], []
    for axis in (0, 1):
        joint = axis_estimate(total, counts, axis)
        values = np.asarray(own[axis])
        values = values[np.isfinite(values)]
        spread = 1.4826 * float(np.median(np.abs(values - np.median(values)))) if len(values) >= 2 else np.inf
        error = spread / np.sqrt(len(values)) if len(values) >= 2 else float("inf")
        problems = list(joint.problems)
        if joint.enough_edges:
            name = "xy"[axis]
            if len(values) < MIN_FRAMES:
                problems.append(f"{name}: {len(values)} of {seen} frame(s) have enough edges (need {MIN_FRAMES})")
            elif error > MAX_UNCERTAINTY:
                problems.append(
                    f"{name}: frames disagree (standard error {error:.2f} px over {len(values)} frames, "
                    f"need <= {MAX_UNCERTAINTY})"
                )
            if joint.contrast < MIN_CONTRAST:
                problems.append(f"{name}: the score peak is flat (contrast {joint.contrast:.2f} < {MIN_CONTRAST})")
        axes.append(joint)
        uncertainty.append(float(error))
        reliable.append(not problems)
        reasons.append(
            "; ".join(problems)
            or f"{'xy'[axis]}: {len(values)} frames, standard error {error:.2f} px, contrast {joint.contrast:.2f}"
        )
    per_frame = [(float(a), float(b)) for a, b in zip(own[0], own[1], strict=True)]
    return DepthOffset(
        dx=axes[0].offset,
        dy=axes[1].offset,
        reliable=(reliable[0], reliable[1]),
        reason="; ".join(reasons),
        uncertainty=(uncertainty[0], uncertainty[1]),
        bleed=(axes[0].bleed, axes[1].bleed),
        contrast=(axes[0].contrast, axes[1].contrast),
        frames_seen=seen,
        edge_pixels=int(counts.sum()),
        per_frame=per_frame,
    )


def shift_depth(depth: np.ndarray, dx: float, dy: float) -> np.ndarray:
    """`depth` with its content moved `dx` pixels right and `dy` down (each rounded to whole pixels).

    Whole-pixel moves are nearest-neighbour resampling: no depth is ever blended across an occluding edge (which
    would invent surfaces between the nearer and the farther one), and holes stay holes. Pixels uncovered at the
    border become 0 (invalid).
    """
    sx, sy = int(np.round(dx)), int(np.round(dy))
    out = np.zeros_like(depth)
    h, w = depth.shape[:2]
    if abs(sx) >= w or abs(sy) >= h:
        return out
    out[max(sy, 0) : h + min(sy, 0), max(sx, 0) : w + min(sx, 0)] = depth[
        max(-sy, 0) : h + min(-sy, 0), max(-sx, 0) : w + min(-sx, 0)
    ]
    return out
