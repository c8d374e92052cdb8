"""Confidence that means what it says: the interval scale, its fit, and confidence falling with spread."""

from __future__ import annotations

import numpy as np
import pytest

from diffnerf_ns.prior.calibration import interval_scale
from diffnerf_ns.prior.model import RGBDPrior
from diffnerf_ns.prior.refine import RefineConfig, confidence_from_sigma, refine_depth
from diffnerf_ns.prior.sources import synthetic_room_frames


def test_interval_scale_is_the_factor_that_restores_coverage() -> None:
    """Errors twice as wide as the stated interval need k = 2. Catches the ratio taken upside down
    (half / error gives ~0.5) or the wrong quantile (the median gives ~0.6 * 2)."""
    rng = np.random.default_rng(0)
    half = np.full(200_000, 1.6449)  # the 90% half-width of a unit normal
    errors = np.abs(rng.normal(0.0, 2.0, half.size))
    k = interval_scale(errors, half, 0.9)
    assert k == pytest.approx(2.0, rel=0.02)
    assert (errors <= k * half).mean() == pytest.approx(0.9, abs=0.005)
    with pytest.raises(ValueError, match="matching"):
        interval_scale(errors, half[:5])


def test_confidence_falls_as_spread_grows() -> None:
    """Catches an inverted confidence (the depth loss would then trust its worst fills most): 1 at zero
    spread, 0.5 at the relative tolerance, strictly falling in between."""
    depth = np.full(50, 2.0)
    sigma = np.linspace(0.0, 0.5, 50)
    conf = confidence_from_sigma(sigma, depth, 0.03)
    assert conf[0] == 1.0 and (np.diff(conf) < 0).all()
    assert confidence_from_sigma(np.array([0.06]), np.array([2.0]), 0.03)[0] == pytest.approx(0.5)


def test_refinement_applies_the_priors_interval_scale_in_holes_only() -> None:
    """A prior saved with interval_scale 2 states intervals twice as wide in holes, and observed pixels keep
    the sensor's. Catches a stored scale that is never read, or one that also widens measured pixels."""
    frame = next(iter(synthetic_room_frames(1, 48, 36, seed=7)))
    raw = frame.depth.copy()
    raw[10:20, 10:30] = 0.0
    config = RefineConfig(steps=2, samples=2, overlap=4)
    prior = RGBDPrior.create(16, (16, 32), 1, False)
    plain = refine_depth(prior, frame.rgb, raw, config)
    prior.register_to_config(interval_scale=2.0)
    wide = refine_depth(prior, frame.rgb, raw, config)
    holes = raw <= 0
    widths = (wide.upper - wide.lower)[holes], 2 * (plain.upper - plain.lower)[holes]
    np.testing.assert_allclose(*widths, rtol=1e-4, atol=1e-6)  # bounds are float32 metres: ~2e-7 rounding each
    np.testing.assert_array_equal(wide.upper[~holes], plain.upper[~holes])
