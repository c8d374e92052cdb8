"""Calibrating refinement's stated intervals: three constants per prior, fitted where nothing is scored.

Four samples from an under-trained prior spread too little (its 90% interval held the truth at ~81% of hole
pixels on the H200 prior's first benchmark), and least deep inside wide holes. A hole pixel's sigma is
`interval_scale * hole_sigma(...)`: the samples' spread in quadrature with `interval_reach_weight` x depth x the
distance to the nearest measurement (`diffnerf_ns.prior.refine.hole_sigma`). The interval's far end also reaches
the deepest depth measured in the `interval_far_window` box around the pixel (`refine.far_side_depth`): a Kinect
shadow lies on the far side of an edge. The constants are fitted so that the interval holds at its nominal rate
on frames that no benchmark scores: rooms of the training distribution that the prior did not train on
(`diffnerf_ns.data_split.CALIBRATION_CORPUS_SEED`) and the real validation frames
(`data_split.VALIDATION_FRAMES`). Each source weighs the same however many pixels it has; the scale puts their
mean coverage at the nominal rate, and the reach weight and far window are the candidate pair whose worse source
comes closest to it (one source cannot separate them from the scale, so a single-source fit keeps the spread
alone). The benchmarks then report the coverage this gives on their own frames.
"""

from __future__ import annotations

from collections.abc import Collection, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from diffnerf_ns.prior.model import RGBDPrior
from diffnerf_ns.prior.refine import (
    RefineConfig,
    far_side_depth,
    hole_reach,
    hole_sigma,
    interval_quantile,
    refine_depth,
)


def interval_scale(
    abs_errors: np.ndarray, half_widths: np.ndarray, coverage: float = 0.9, weights: np.ndarray | None = None
) -> float:
    """The factor k for which |error| <= k * half_width at `coverage` of the (weighted) pixels: a quantile of
    the ratios, weighted so that a source with many pixels does not outvote one with few."""
    abs_errors, half_widths = np.asarray(abs_errors, np.float64), np.asarray(half_widths, np.float64)
    if abs_errors.shape != half_widths.shape or abs_errors.size == 0:
        raise ValueError(f"need matching non-empty errors and half-widths: {abs_errors.shape}, {half_widths.shape}")
    ratios = abs_errors / np.maximum(half_widths, 1e-9)
    if weights is None:
        return float(np.quantile(ratios, coverage))
    weights = np.asarray(weights, np.float64)
    if weights.shape != ratios.shape or (weights < 0).any() or weights.sum() <= 0:
        raise ValueError(f"need one non-negative weight per pixel, not all zero: {weights.shape}, {ratios.shape}")
    order = np.argsort(ratios)
    cumulative = np.cumsum(weights[order]) / weights.sum()
    return float(ratios[order][min(np.searchsorted(cumulative, coverage), ratios.size - 1)])


def equal_weight_scale(ratios: Iterable[np.ndarray], coverage: float = 0.9) -> float:
    """The factor on stated half-widths that covers `coverage` of the pooled |error| / half-width `ratios` (one
    array per source), each source weighing the same however many pixels it has."""
    ratios = list(ratios)
    pooled = np.concatenate(ratios)
    weights = np.concatenate([np.full(r.size, 1.0 / r.size) for r in ratios])
    return interval_scale(pooled, np.ones_like(pooled), coverage, weights)


def best_constant(
    ratios: Mapping[Hashable, Mapping[str, np.ndarray]], fit_on: Collection[str], coverage: float = 0.9
) -> tuple[Hashable, float, dict[str, float]]:
    """(constant, scale, per-source coverage) from each candidate constant's |error| / half-width ratios per
    source: per constant, the scale that puts the mean coverage of the `fit_on` sources at `coverage`; the
    constant whose worse fitted source then comes closest to it (the first listed on ties)."""
    best = None
    for constant, by_source in ratios.items():
        scale = equal_weight_scale([by_source[name] for name in fit_on], coverage)
        covered = {name: float((r <= scale).mean()) for name, r in by_source.items()}
        miss = max(abs(covered[name] - coverage) for name in fit_on)
        if best is None or miss < best[0] - 1e-9:
            best = (miss, constant, scale, covered)
    if best is None:
        raise ValueError("need at least one candidate constant")
    return best[1:]


@dataclass(frozen=True)
class HoleDraws:
    """One source's pixels to fill (raw 0, truth valid) under an uncalibrated refinement: each pixel's
    (samples, pixels) draws, filled depth, distance to the nearest measurement, truth, and per candidate far
    window the deepest depth measured in that box (`refine.far_side_depth`; window 0 needs none)."""

    samples: np.ndarray
    depth: np.ndarray
    reach: np.ndarray
    truth: np.ndarray
    far: Mapping[int, np.ndarray] = field(default_factory=dict)

    @property
    def errors(self) -> np.ndarray:
        """|filled depth - truth|."""
        return np.abs(self.depth - self.truth)

    def sigma(self, reach_weight: float) -> np.ndarray:
        """The uncalibrated hole sigma at these pixels for a reach weight."""
        return hole_sigma(self.samples, self.depth, self.reach, reach_weight)

    def ratios(self, reach_weight: float, far_window: int, z: float) -> np.ndarray:
        """Per pixel, the least interval scale that covers the truth: |error| / (z x sigma), or 0 where the truth
        lies between the fill and the far-side depth, which the interval's far end reaches at any scale."""
        ratio = self.errors / np.maximum(z * self.sigma(reach_weight), 1e-9)
        if far_window == 0:
            return ratio
        return np.where((self.truth >= self.depth) & (self.truth <= self.far[far_window]), 0.0, ratio)


def hole_draws(
    prior: RGBDPrior,
    frames: Iterable[tuple[np.ndarray, np.ndarray, np.ndarray]],
    config: RefineConfig,
    far_windows: Collection[int] = (),
) -> HoleDraws:
    """Refine frames of (rgb, raw, truth) and keep what calibration needs at the pixels the refiner must fill:
    Kinect holes against exact depth, or hidden sensor pixels against the sensor."""
    windows = sorted({w for w in far_windows if w > 0})
    parts = []
    for rgb, raw, truth in frames:
        result = refine_depth(prior, rgb, raw, config)
        holes = (raw <= 0) & (truth > 0)
        far = [far_side_depth(raw, w)[holes] for w in windows]
        parts.append((result.samples[:, holes], result.depth[holes], hole_reach(raw)[holes], truth[holes], *far))
    if not parts:
        raise ValueError("a calibration source needs at least one frame")
    columns = [np.concatenate(column, axis=-1).astype(np.float64) for column in zip(*parts, strict=True)]
    return HoleDraws(*columns[:4], far=dict(zip(windows, columns[4:], strict=True)))


@dataclass(frozen=True)
class Calibration:
    """The fitted `interval_scale`, `interval_reach_weight` and `interval_far_window` and, per source, the hole
    pixels and the interval's coverage before (scale 1, spread alone, symmetric) and after."""

    scale: float
    reach_weight: float
    far_window: int
    fit_on: list[str]
    pixels: dict[str, int]
    before: dict[str, float]
    after: dict[str, float]


def fit_intervals(
    prior: RGBDPrior,
    sources: Mapping[str, Iterable[tuple[np.ndarray, np.ndarray, np.ndarray]]],
    config: RefineConfig,
    fit_on: Collection[str] | None = None,
    reach_weights: Sequence[float] = (0.0,),
    far_windows: Sequence[int] = (0,),
) -> Calibration:
    """Score each source's frames of (rgb, raw, truth) at the pixels to fill of an uncalibrated refinement and fit
    the scale, the reach weight (from `reach_weights`) and the far window (from `far_windows`) on the sources named
    in `fit_on` (default: all)."""
    fit_on = list(sources) if fit_on is None else list(fit_on)
    if not fit_on or set(fit_on) - set(sources):
        raise ValueError(f"fit_on must name some of the sources {list(sources)}, got {fit_on}")
    if (len(reach_weights) > 1 or len(far_windows) > 1) and len(fit_on) < 2:
        raise ValueError(f"fitting a reach weight or far window as well as the scale needs two sources, got {fit_on}")
    uncalibrated = replace(config, interval_scale=1.0, interval_reach_weight=0.0, interval_far_window=0)
    draws = {name: hole_draws(prior, frames, uncalibrated, far_windows) for name, frames in sources.items()}
    for name, d in draws.items():
        if d.errors.size == 0:
            raise ValueError(f"calibration source {name!r} has no pixel to fill")
    z = interval_quantile(config.interval, config.samples)
    ratios = {
        (w, window): {name: d.ratios(w, window, z) for name, d in draws.items()}
        for window in far_windows
        for w in reach_weights
    }
    (weight, window), scale, after = best_constant(ratios, fit_on, config.interval)
    before = {name: float((d.errors <= z * d.sigma(0.0)).mean()) for name, d in draws.items()}
    return Calibration(
        scale=scale,
        reach_weight=float(weight),
        far_window=int(window),
        fit_on=fit_on,
        pixels={name: int(d.errors.size) for name, d in draws.items()},
        before=before,
        after=after,
    )
