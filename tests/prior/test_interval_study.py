"""The interval-model study's pure parts: the depth range around a hole and the two-constant fit."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks.study_interval_models import MODELS, HolePixels, hole_depth_range, model_ratios
from diffnerf_ns.prior.calibration import HoleDraws, best_constant


def test_hole_depth_range_is_the_measured_span_around_each_hole() -> None:
    """A wall at 1 m beside one at 3 m: a hole across the edge spans 2 m, a hole inside the near wall spans its
    0.1 m slope, measured pixels 0. Catches a range taken over the whole frame (every hole 2 m), over the hole's
    own (zero) values, one hole's range leaking into another, or a range never computed (all 0)."""
    raw = np.ones((40, 60), np.float32)
    raw[:, 30:] = 3.0
    raw[:, :30] += np.linspace(0.0, 0.1, 30, dtype=np.float32)  # a gentle slope across the near wall
    raw[10:20, 25:35] = 0.0  # across the edge; its 2 px ring starts at column 23
    raw[25:35, 5:15] = 0.0  # inside the near wall; its ring spans columns 3-16
    span = hole_depth_range(raw)
    assert span[15, 30] == pytest.approx(3.0 - (1.0 + 0.1 * 23 / 29), abs=1e-5)
    assert span[30, 10] == pytest.approx(0.1 * 13 / 29, abs=1e-5)
    assert (span[raw > 0] == 0).all()
    np.testing.assert_array_equal(hole_depth_range(np.zeros((8, 8), np.float32)), 0.0)


def _pixels(errors: np.ndarray, span: np.ndarray) -> HolePixels:
    """Hole pixels at 1 m whose two draws state sigma 1 from their spread, with the given errors and ranges."""
    n = errors.size
    draws = np.stack([np.full(n, 1 - 1 / np.sqrt(3)), np.full(n, 1 + 1 / np.sqrt(3))])  # spread sigma exactly 1
    return HolePixels(HoleDraws(draws, 1 + errors, np.zeros(n), np.ones(n)), span, np.zeros(n, int))


def test_fit_finds_the_range_weight_that_serves_edge_and_interior_holes() -> None:
    """Source "edges": errors grow with the spread and the range around the hole (weight 0.5); "interior": spread
    only. The spread alone over-covers one and under-covers the other; the fitted weight brings both to 90%.
    Catches the constant never entering the model, the search keeping the worst constant, and coverage
    computed on another source's pixels."""
    rng = np.random.default_rng(2)
    n, z = 40_000, 2.0
    span = rng.uniform(0.0, 4.0, n)
    edges = _pixels(np.abs(rng.normal(0, 1, n)) * np.hypot(1.0, 0.5 * span) * z / 1.6449, span)
    interior = _pixels(np.abs(rng.normal(0, 1, n)) * z / 1.6449, np.zeros(n))
    sources = {"edges": edges, "interior": interior}
    assert edges.draws.sigma(0.0) == pytest.approx(np.ones(n))
    _, _, plain = best_constant(model_ratios(sources, MODELS["spread alone"], (0.0,), z), list(sources))
    assert plain["edges"] < 0.85 and plain["interior"] > 0.95
    model = MODELS["spread + w x depth range around the hole"]
    weight, scale, coverage = best_constant(model_ratios(sources, model, (0.25, 1.0, 0.5, 2.0), z), list(sources))
    assert weight == 0.5 and scale == pytest.approx(1.0, abs=0.03)
    assert coverage == pytest.approx({"edges": 0.9, "interior": 0.9}, abs=0.01)
