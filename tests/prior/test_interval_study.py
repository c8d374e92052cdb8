"""The interval-model study's pure parts: the depth range around a hole and the two-constant fit."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks.study_interval_models import MODELS, HolePixels, fit, hole_depth_range


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


def test_fit_finds_the_range_weight_that_serves_edge_and_interior_holes() -> None:
    """Source "edges": errors grow with the spread and the range around the hole (weight 0.5); "interior": spread
    only. The spread alone over-covers one and under-covers the other; the fitted weight brings both to 90%.
    Catches the constant never entering the model, the search keeping the worst constant, and coverage
    computed on another source's pixels."""
    rng = np.random.default_rng(2)
    n = 40_000
    half, span = np.ones(n), rng.uniform(0.0, 4.0, n)
    edges = HolePixels(np.abs(rng.normal(0, 1, n)) * np.hypot(1.0, 0.5 * span) / 1.6449, half, span, np.ones(n))
    interior = HolePixels(np.abs(rng.normal(0, 1, n)) / 1.6449, half, np.zeros(n), np.ones(n))
    sources = {"edges": edges, "interior": interior}
    _, _, plain = fit(sources, list(sources), MODELS["spread alone"], (0.0,))
    assert plain["edges"] < 0.85 and plain["interior"] > 0.95
    model = MODELS["spread + w x depth range around the hole"]
    scale, weight, coverage = fit(sources, list(sources), model, (0.25, 1.0, 0.5, 2.0))
    assert weight == 0.5 and scale == pytest.approx(1.0, abs=0.03)
    assert coverage == pytest.approx({"edges": 0.9, "interior": 0.9}, abs=0.01)
