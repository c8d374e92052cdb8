"""Does a trajectory agree in scale with the sensor depth? A check that needs no reference poses.

Colour and depth disagree about a scene's size when the poses are off in scale: odometry whose depth terms
under-estimate motion (a 7-Scenes segment: path 23% short) or a reconstruction's approximate poses. A NeRF
supervised strongly by depth then keeps the sensor's geometry and loses colour, because its views no longer
meet on it: on SUN3D fragment 2 with the path planted 23% short, `diffnerf-no-prior` lost 2.3 dB where
depth-nerfacto, which follows colour and shrinks the scene, lost none (`benchmarks/results/planted_path_scale.md`).

The check scales each camera's offset from the first camera by s and scores how well each frame's depth,
reprojected into a later frame, agrees with that frame's own depth. Correct poses agree best near s = 1;
poses whose path is x too long agree best near 1 / x.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache

import numpy as np

COARSE_SCALES = tuple(np.geomspace(0.5, 2.0, 21))
"""First pass: factors 0.5-2 in steps of 7%."""
FIRMNESS_FACTOR = 1.2
"""Firmness compares the disagreement at the best scale with that at best / 1.2 and best x 1.2."""
MIN_CONTRAST = 0.05
"""Below this relative rise of the disagreement 20% either side of the best scale, the depth does not decide
(too little camera motion against the depth's noise)."""
PAIR_GAPS = (5, 15, 30)
"""Frame gaps of the scored pairs (short ones for overlap, long ones for baseline); pairs start every 5th frame."""
MAX_PAIRS_PER_GAP = 12
"""Longer sequences spread this many starts evenly instead (the check stays a second or two per sequence)."""


def scaled(c2w: np.ndarray, s: float) -> np.ndarray:
    """Camera-to-world poses (N, 4, 4) with every camera's offset from the first camera scaled by s (rotations
    kept)."""
    out = np.array(c2w, dtype=np.float64, copy=True)
    out[:, :3, 3] = out[0, :3, 3] + s * (out[:, :3, 3] - out[0, :3, 3])
    return out


def depth_disagreement(
    K: np.ndarray, depth_a: np.ndarray, depth_b: np.ndarray, c2w_a: np.ndarray, c2w_b: np.ndarray, step: int = 2
) -> float:
    """Median |depth_b - depth_a reprojected into b| in metres over pixels both measure (every `step`-th pixel
    of a), or NaN where none does. Depth is planar z (OpenCV axes)."""
    h, w = depth_b.shape
    v, u = np.nonzero(depth_a[::step, ::step] > 0)
    v, u = v * step, u * step
    z = depth_a[v, u]
    points = np.stack([(u - K[0, 2]) / K[0, 0] * z, (v - K[1, 2]) / K[1, 1] * z, z, np.ones_like(z)])
    q = np.linalg.inv(c2w_b) @ c2w_a @ points
    with np.errstate(divide="ignore", invalid="ignore"):
        ub = np.round(K[0, 0] * q[0] / q[2] + K[0, 2])
        vb = np.round(K[1, 1] * q[1] / q[2] + K[1, 2])
    ok = (q[2] > 0) & (ub >= 0) & (ub < w) & (vb >= 0) & (vb < h)
    seen, predicted = depth_b[vb[ok].astype(int), ub[ok].astype(int)], q[2][ok]
    measured = seen > 0
    return float(np.median(np.abs(seen[measured] - predicted[measured]))) if measured.any() else float("nan")


def scored_pairs(n: int, gaps: Sequence[int] = PAIR_GAPS) -> list[tuple[int, int]]:
    """Frame pairs (a, a + gap) of an n-frame sequence, starting every 5th frame (at most `MAX_PAIRS_PER_GAP`
    starts, spread evenly); gaps beyond the sequence are replaced by the longest that fits."""
    pairs = []
    for g in sorted({min(g, n - 1) for g in gaps if n > 1}):
        starts = range(0, n - g, 5)
        picks = np.unique(np.linspace(0, len(starts) - 1, min(len(starts), MAX_PAIRS_PER_GAP)).round().astype(int))
        pairs += [(starts[i], starts[i] + g) for i in picks]
    return pairs


def disagreement_curve(
    K: np.ndarray, depth: Callable[[int], np.ndarray], c2w: np.ndarray, scales: Sequence[float], step: int = 4
) -> dict[float, float]:
    """Mean over `scored_pairs` of the median depth disagreement (m) at each path scale; `depth(i)` is frame i's
    depth in metres."""
    pairs = scored_pairs(len(c2w))
    curve = {}
    for s in scales:
        poses = scaled(c2w, s)
        values = [depth_disagreement(K, depth(a), depth(b), poses[a], poses[b], step) for a, b in pairs]
        curve[float(s)] = float(np.nanmean(values)) if np.isfinite(values).any() else float("nan")
    return curve


def best_scale(curve: dict[float, float]) -> float:
    """The minimum of a parabola through the best sampled scale and its neighbours (the grid is coarse)."""
    s = sorted(curve)
    k = min(range(len(s)), key=lambda i: curve[s[i]])
    if k in (0, len(s) - 1):
        return s[k]
    (x0, x1, x2), (y0, y1, y2) = s[k - 1 : k + 2], (curve[s[k - 1]], curve[s[k]], curve[s[k + 1]])
    denominator = (x1 - x0) * (y1 - y2) - (x1 - x2) * (y1 - y0)
    if denominator == 0:
        return x1
    return float(x1 - 0.5 * ((x1 - x0) ** 2 * (y1 - y2) - (x1 - x2) ** 2 * (y1 - y0)) / denominator)


@dataclass(frozen=True)
class ScaleCheck:
    """Which path scale the depth agrees with best, and how firmly."""

    scale: float
    """Factor on the path that makes the depth agree best (1 = the poses are right in scale)."""
    disagreement_m: float
    """Depth disagreement at scale 1."""
    best_disagreement_m: float
    contrast: float
    """Relative rise of the disagreement 20% either side of the best scale (the smaller side)."""
    pairs: int
    firm: bool
    reason: str

    def as_dict(self) -> dict:
        return {
            "scale": round(self.scale, 4),
            "disagreement_cm": round(self.disagreement_m * 100, 2),
            "best_disagreement_cm": round(self.best_disagreement_m * 100, 2),
            "contrast": round(self.contrast, 3),
            "pairs": self.pairs,
            "firm": self.firm,
            "reason": self.reason,
        }


def check_trajectory_scale(K: np.ndarray, load_depth: Callable[[int], np.ndarray], c2w: np.ndarray) -> ScaleCheck:
    """Coarse scan of path scales 0.5-2, a fine scan around the best, then a parabola; firm where the depth
    disagreement rises by `MIN_CONTRAST` 20% either side and the best scale is inside the scan. `load_depth(i)`
    gives frame i's depth in metres, at the size `K` describes; only the scored frames are read, once each."""
    depths = cache(load_depth)
    pairs = len(scored_pairs(len(c2w)))
    if pairs == 0:
        return ScaleCheck(1.0, float("nan"), float("nan"), 0.0, 0, False, "fewer than 2 frames")
    coarse = disagreement_curve(K, depths, c2w, COARSE_SCALES)
    if not np.isfinite(list(coarse.values())).any():
        return ScaleCheck(1.0, float("nan"), float("nan"), 0.0, pairs, False, "no pair of frames sees the same surface")
    centre = min(coarse, key=lambda s: coarse[s] if np.isfinite(coarse[s]) else np.inf)
    ratio = COARSE_SCALES[1] / COARSE_SCALES[0]
    best = best_scale(disagreement_curve(K, depths, c2w, np.geomspace(centre / ratio, centre * ratio, 9)))
    at_one, best_value = (disagreement_curve(K, depths, c2w, [s])[s] for s in (1.0, best))
    sides = disagreement_curve(K, depths, c2w, [best / FIRMNESS_FACTOR, best * FIRMNESS_FACTOR])
    contrast = min(sides.values()) / best_value - 1
    inside = bool(COARSE_SCALES[0] * FIRMNESS_FACTOR <= best <= COARSE_SCALES[-1] / FIRMNESS_FACTOR)  # JSON: no numpy
    firm = inside and bool(contrast >= MIN_CONTRAST)
    if not inside:
        reason = f"best scale {best:.3f} at the edge of the scan ({COARSE_SCALES[0]:g}-{COARSE_SCALES[-1]:g})"
    elif not firm:
        reason = (
            f"the depth barely decides: disagreement rises {contrast:.1%} 20% either side of the best scale "
            f"(< {MIN_CONTRAST:.0%}; too little camera motion?)"
        )
    else:
        reason = f"disagreement rises {contrast:.0%} 20% either side of the best scale"
    return ScaleCheck(best, at_one, best_value, contrast, pairs, firm, reason)
