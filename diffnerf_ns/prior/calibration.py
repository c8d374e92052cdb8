"""Calibrating refinement's stated intervals: one factor on the samples' spread, fitted where nothing is scored.

Four samples from an under-trained prior spread too little (its 90% interval held the truth at ~81% of hole
pixels on the H200 prior's first benchmark). The fix is one constant per prior, `interval_scale`, chosen so
that the interval holds at its nominal rate on frames from the training distribution that the prior did not
train on (`diffnerf_ns.data_split.CALIBRATION_CORPUS_SEED`), never on benchmark frames; the benchmark then
reports the coverage it gets. Other validation sources (the real frames of `data_split.VALIDATION_FRAMES`) can be
scored beside the fit, to see before any benchmark whether one constant serves them too; where several sources
are fitted, each weighs the same however many pixels it has.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass

import numpy as np

from diffnerf_ns.prior.model import RGBDPrior
from diffnerf_ns.prior.refine import RefineConfig, refine_depth


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


@dataclass(frozen=True)
class Calibration:
    """A fitted `interval_scale` and, per source, the hole pixels and the interval's coverage before and after."""

    scale: float
    fit_on: list[str]
    pixels: dict[str, int]
    before: dict[str, float]
    after: dict[str, float]


def fit_interval_scale(
    prior: RGBDPrior,
    sources: Mapping[str, Iterable[tuple[np.ndarray, np.ndarray, np.ndarray]]],
    config: RefineConfig,
    fit_on: Collection[str] | None = None,
) -> Calibration:
    """Score each source's frames of (rgb, raw, truth) at the pixels the refiner must fill (raw 0, truth valid:
    Kinect holes against exact depth, or hidden sensor pixels against the sensor) of an uncalibrated refinement,
    and fit the scale on the sources named in `fit_on` (default: all), each weighing the same."""
    fit_on = list(sources) if fit_on is None else list(fit_on)
    if not fit_on or set(fit_on) - set(sources):
        raise ValueError(f"fit_on must name some of the sources {list(sources)}, got {fit_on}")
    unscaled = RefineConfig(**{**vars(config), "interval_scale": 1.0})
    ratios: dict[str, np.ndarray] = {}
    for name, frames in sources.items():
        per_frame = []
        for rgb, raw, truth in frames:
            result = refine_depth(prior, rgb, raw, unscaled)
            holes = (raw <= 0) & (truth > 0)
            half = np.maximum((result.upper - result.lower) / 2, 1e-9)
            per_frame.append((np.abs(result.depth - truth) / half)[holes])
        ratios[name] = np.concatenate(per_frame)
        if ratios[name].size == 0:
            raise ValueError(f"calibration source {name!r} has no pixel to fill")
    scale = equal_weight_scale([ratios[name] for name in fit_on], config.interval)
    return Calibration(
        scale=scale,
        fit_on=fit_on,
        pixels={name: int(r.size) for name, r in ratios.items()},
        before={name: float((r <= 1.0).mean()) for name, r in ratios.items()},
        after={name: float((r <= scale).mean()) for name, r in ratios.items()},
    )
