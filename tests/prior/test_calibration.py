"""Confidence that means what it says: the interval scale, its fit, and confidence falling with spread."""

from __future__ import annotations

import numpy as np
import pytest

from diffnerf_ns.prior import calibration
from diffnerf_ns.prior.calibration import interval_scale
from diffnerf_ns.prior.model import RGBDPrior
from diffnerf_ns.prior.refine import (
    RefineConfig,
    Refinement,
    confidence_from_sigma,
    far_side_depth,
    hole_reach,
    hole_sigma,
    interval_quantile,
    refine_depth,
)
from diffnerf_ns.prior.sources import synthetic_room_frames


def draws_with_half_width(depth: np.ndarray, half: np.ndarray, config: RefineConfig) -> np.ndarray:
    """(samples, H, W) draws around `depth` whose spread states exactly `half` as the interval's half-width."""
    n = config.samples
    pattern = np.resize([-1.0, 1.0], n)
    pattern /= pattern.std(ddof=1)
    sigma = half / (interval_quantile(config.interval, n) * np.sqrt(1 + 1 / n))
    return depth[None] + pattern[:, None, None] * sigma[None]


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


SMALL = RefineConfig(steps=2, samples=2, overlap=4)


def _refined_before_and_after(**calibration: float) -> tuple[np.ndarray, Refinement, Refinement]:
    """A synthetic frame with a 10 x 20 px hole, refined by an untrained prior before and after `calibration` is
    stored in its config: (raw depth, plain, calibrated)."""
    frame = next(iter(synthetic_room_frames(1, 48, 36, seed=7)))
    raw = frame.depth.copy()
    raw[10:20, 10:30] = 0.0
    prior = RGBDPrior.create(16, (16, 32), 1, False)
    plain = refine_depth(prior, frame.rgb, raw, SMALL)
    prior.register_to_config(**calibration)
    return raw, plain, refine_depth(prior, frame.rgb, raw, SMALL)


def test_refinement_applies_the_priors_interval_scale_in_holes_only() -> None:
    """A prior saved with interval_scale 2 states intervals twice as wide in holes, and observed pixels keep
    the sensor's. Catches a stored scale that is never read, or one that also widens measured pixels."""
    raw, plain, wide = _refined_before_and_after(interval_scale=2.0)
    holes = raw <= 0
    widths = (wide.upper - wide.lower)[holes], 2 * (plain.upper - plain.lower)[holes]
    np.testing.assert_allclose(*widths, rtol=1e-4, atol=1e-6)  # bounds are float32 metres: ~2e-7 rounding each
    np.testing.assert_array_equal(wide.upper[~holes], plain.upper[~holes])


def test_weighted_interval_scale_gives_each_source_equal_say() -> None:
    """Two sources, one with 10x the pixels: with per-source weights 1/n the scale puts the mean of the two
    coverages at 90%. Catches weights that are ignored (the big source alone sets k) or applied upside down
    (weights n instead of 1/n)."""
    rng = np.random.default_rng(1)
    narrow, wide = np.abs(rng.normal(0, 1, 100_000)), np.abs(rng.normal(0, 3, 10_000))
    ratios = np.concatenate([narrow, wide])
    weights = np.concatenate([np.full(narrow.size, 1 / narrow.size), np.full(wide.size, 1 / wide.size)])
    k = interval_scale(ratios, np.ones_like(ratios), 0.9, weights)
    mean_coverage = ((narrow <= k).mean() + (wide <= k).mean()) / 2
    assert mean_coverage == pytest.approx(0.9, abs=0.003)
    assert k > 1.5 * interval_scale(ratios, np.ones_like(ratios), 0.9)  # unweighted, the big source sets k
    with pytest.raises(ValueError, match="weight"):
        interval_scale(ratios, np.ones_like(ratios), 0.9, -weights)


def test_fit_uses_only_the_named_sources_and_reports_all(monkeypatch: pytest.MonkeyPatch) -> None:
    """With errors exactly k x the stated half-width per source (synthetic 2x, real 0.5x), fitting on the
    synthetic source gives 1.8 and reports the real one fully covered; fitting on both (the real one with 3x the
    pixels) puts their mean coverage at 90%. Catches `fit_on` being ignored, a source's coverage computed on the
    other's pixels, and sources weighted by their pixel count."""
    shape = (8, 8)

    def fake_refine(prior, rgb, raw, config):
        assert config.interval_scale == 1.0 and config.interval_reach_weight == 0.0  # fitting needs the raw spread
        k = float(rgb.mean())
        half = np.full(shape, 0.1)
        errors = k * half * np.linspace(0.01, 1.0, raw.size).reshape(shape)  # ratios spread over (0, k]
        depth = np.ones(shape) + errors
        return Refinement(depth, depth - half, depth + half, half, half, draws_with_half_width(depth, half, config))

    monkeypatch.setattr(calibration, "refine_depth", fake_refine)
    raw, truth = np.zeros(shape), np.ones(shape)
    sources = {"synthetic": [(np.full(shape, 2.0), raw, truth)], "real": [(np.full(shape, 0.5), raw, truth)] * 3}
    fit = calibration.fit_intervals(None, sources, RefineConfig(), fit_on=["synthetic"])
    assert fit.scale == pytest.approx(1.8, abs=0.05)  # the 90% quantile of ratios uniform on (0, 2]
    assert fit.after == pytest.approx({"synthetic": 0.9, "real": 1.0}, abs=0.03)
    assert fit.before["synthetic"] == pytest.approx(0.5, abs=0.03) and fit.pixels == {"synthetic": 64, "real": 192}
    both = calibration.fit_intervals(None, sources, RefineConfig())  # each source weighs the same
    assert both.scale == pytest.approx(1.6, abs=0.05) and np.mean(list(both.after.values())) == pytest.approx(
        0.9, abs=0.02
    )
    with pytest.raises(ValueError, match="fit_on"):
        calibration.fit_intervals(None, sources, RefineConfig(), fit_on=["nyu"])
    with pytest.raises(ValueError, match="two sources"):  # one source cannot separate scale and reach weight
        calibration.fit_intervals(None, sources, RefineConfig(), ["synthetic"], reach_weights=(0.0, 0.01))


def test_hole_sigma_adds_depth_times_reach_in_quadrature() -> None:
    """Two draws 0.2 m apart at 2 m, 10 px into a hole, weight 0.01: sigma = hypot(spread, 0.01 x 2 x 10), and the
    spread alone at weight 0. Catches the reach term added linearly, without the depth factor, or replacing the
    spread; `hole_reach` must be 0 at measured pixels and count pixels to the nearest one."""
    samples = np.array([[1.9], [2.1]])
    spread = np.std(samples, ddof=1) * np.sqrt(1.5)
    assert hole_sigma(samples, np.array([2.0]), np.array([0.0]), 0.01)[0] == pytest.approx(spread)
    assert hole_sigma(samples, np.array([2.0]), np.array([10.0]), 0.01)[0] == pytest.approx(np.hypot(spread, 0.2))
    raw = np.ones((5, 9))
    raw[:, 2:] = 0.0
    np.testing.assert_array_equal(hole_reach(raw)[2], [0, 0, 1, 2, 3, 4, 5, 6, 7])


def test_refinement_applies_the_priors_reach_weight_in_holes_only() -> None:
    """A prior saved with interval_reach_weight w widens each hole pixel's half-width to
    hypot(plain, z x w x depth x distance to the nearest measurement); observed pixels keep the sensor's. Catches a
    stored weight that is never read, a distance measured on the wrong mask, or a width that ignores depth."""
    raw, plain, wide = _refined_before_and_after(interval_reach_weight=0.01)
    holes = raw <= 0
    z = interval_quantile(SMALL.interval, SMALL.samples)
    expected = np.hypot((plain.upper - plain.lower) / 2, z * 0.01 * plain.depth * hole_reach(raw))
    np.testing.assert_allclose(((wide.upper - wide.lower) / 2)[holes], expected[holes], rtol=1e-4, atol=1e-6)
    assert ((wide.upper - wide.lower) / 2)[15, 20] > 3 * ((plain.upper - plain.lower) / 2)[15, 20]  # 5 px deep
    np.testing.assert_array_equal(wide.upper[~holes], plain.upper[~holes])


def test_fit_finds_the_reach_weight_that_serves_both_sources(monkeypatch: pytest.MonkeyPatch) -> None:
    """Errors grow with depth x distance into the hole (weight 0.004) on top of the spread. One source has narrow
    holes, the other wide ones, so the spread alone covers them unequally; fitting on both must pick 0.004 and put
    each at 90%. Catches candidates that are never tried, a weight applied on half-widths in one place and sigmas
    in another, or the best candidate taken as the worst."""
    true_weight = 0.004
    rng = np.random.default_rng(3)

    def fake_refine(prior, rgb, raw, config):
        depth = np.full(raw.shape, 3.0)
        sigma = np.hypot(0.01, true_weight * depth * hole_reach(raw))
        z = interval_quantile(config.interval, config.samples)
        errors = np.abs(rng.normal(0.0, 1.0, raw.shape)) * sigma * z / 1.6449  # 90% within z x sigma
        samples = draws_with_half_width(depth + errors, np.full(raw.shape, 0.01 * z), config)
        return Refinement(depth + errors, depth, depth, sigma, sigma, samples)

    monkeypatch.setattr(calibration, "refine_depth", fake_refine)
    narrow, wide = np.ones((60, 60)), np.ones((60, 60))
    narrow[:, ::4] = 0.0  # one-pixel-wide holes
    wide[10:50, 10:50] = 0.0  # up to 20 px deep
    truth = np.full((60, 60), 3.0)
    rgb = np.zeros((60, 60, 3))
    sources = {"narrow": [(rgb, narrow, truth)] * 4, "wide": [(rgb, wide, truth)]}
    spread_only = calibration.fit_intervals(None, sources, RefineConfig())
    assert spread_only.after["wide"] - spread_only.after["narrow"] < -0.05  # the spread alone cannot serve both
    fit = calibration.fit_intervals(None, sources, RefineConfig(), reach_weights=(0.0, 0.001, 0.004, 0.016))
    assert fit.reach_weight == 0.004 and fit.scale == pytest.approx(1.0, abs=0.05)
    assert fit.after == pytest.approx({"narrow": 0.9, "wide": 0.9}, abs=0.02)


def test_far_side_depth_is_the_deepest_measurement_in_the_box() -> None:
    """A 1 m wall with a 3 m one from column 6, a hole at columns 3-5: window 5 gives 3 m only within 2 px of the
    far wall, 1 m beyond, 0 where the box holds no measurement, and window 0 gives 0 everywhere. Catches the
    nearest depth taken instead of the deepest, a missing pixel's 0 counted as a depth, and an ignored window."""
    raw = np.ones((5, 12))
    raw[:, 6:] = 3.0
    raw[:, 3:6] = 0.0
    far = far_side_depth(raw, 5)
    np.testing.assert_array_equal(far[2, :8], [1.0, 1.0, 1.0, 1.0, 3.0, 3.0, 3.0, 3.0])
    assert far_side_depth(np.zeros((5, 5)), 3).max() == 0.0
    assert far_side_depth(raw, 0).max() == 0.0


def test_refinement_reaches_the_far_side_in_holes_only() -> None:
    """A prior saved with interval_far_window 9 raises each hole pixel's upper bound to at least the deepest depth
    measured in its 9 x 9 box, keeps the lower bound, trusts such a pixel less, and leaves measured pixels alone.
    Catches a stored window that is never read, a bound that moves the near end, or a confidence that ignores the
    wider interval."""
    raw, plain, far = _refined_before_and_after(interval_far_window=9)
    holes = raw <= 0
    reach = far_side_depth(raw, 9)
    np.testing.assert_allclose(far.upper[holes], np.maximum(plain.upper, reach)[holes], rtol=1e-6)
    np.testing.assert_array_equal(far.lower, plain.lower)
    raised = holes & (reach > plain.upper)
    assert raised.sum() > 10  # the test frame has a far surface beside the hole
    assert (far.confidence[raised] < plain.confidence[raised]).all()
    np.testing.assert_array_equal(far.upper[~holes], plain.upper[~holes])
    np.testing.assert_array_equal(far.confidence[~holes], plain.confidence[~holes])


def test_fit_finds_the_far_window_when_fills_take_the_near_side(monkeypatch: pytest.MonkeyPatch) -> None:
    """One source's holes are shadows beside a far wall, filled with the near wall's depth (the Kinect failure the
    far window is for); the other's are plain. A symmetric interval covers both only by widening every hole; the
    fit must pick the far window that holds the shadow's truth and put both sources near 90%. Catches a window
    never tried, a coverage ratio that ignores the far end, and the far end taken on the near side."""
    rng = np.random.default_rng(5)

    def fake_refine(prior, rgb, raw, config):
        near = np.where(raw > 0, raw, 1.0)  # the fill: the near wall's depth everywhere in the hole
        half = np.full(raw.shape, 0.05)
        depth = near + rng.normal(0.0, 0.05 / 1.6449, raw.shape) * (raw <= 0)
        samples = draws_with_half_width(depth, half, config)
        return Refinement(depth, depth - half, depth + half, half, half, samples)

    monkeypatch.setattr(calibration, "refine_depth", fake_refine)
    shadow = np.ones((40, 40))
    shadow[:, 24:] = 3.0
    shadow[:, 20:24] = 0.0  # a 4 px shadow on the far wall's side of the edge
    shadow[5:25, 0:12] = 0.0  # and a plain hole in the near wall, beyond the far window's reach
    shadow_truth = np.where(np.arange(40) >= 20, 3.0, 1.0)[None].repeat(40, 0)
    plain = np.ones((40, 40))
    plain[10:30, 10:30] = 0.0
    rgb = np.zeros((40, 40, 3))
    sources = {"shadows": [(rgb, shadow, shadow_truth)] * 3, "plain": [(rgb, plain, np.ones((40, 40)))]}
    symmetric = calibration.fit_intervals(None, sources, RefineConfig())
    fit = calibration.fit_intervals(None, sources, RefineConfig(), far_windows=(0, 9))
    assert symmetric.far_window == 0 and symmetric.scale > 10  # widening every hole to 2 m is the only way
    assert fit.far_window == 9 and fit.scale == pytest.approx(0.9, abs=0.15)  # near the spread itself
    assert fit.after == pytest.approx({"shadows": 0.9, "plain": 0.9}, abs=0.04)


def test_fitted_coverage_is_the_refined_intervals_coverage() -> None:
    """The fit's model of an interval (`HoleDraws.ratios` against a scale) and the interval `refine_depth` states
    with that scale, reach weight and far window must hold the truth at the same hole pixels, or the fitted 90%
    is not the refined depth's 90%. Catches a quantile that differs between the two (Student t against normal),
    a scale applied twice, a far end that moves the near bound, and ratios zeroed on the wrong side of the fill."""
    frame = next(iter(synthetic_room_frames(1, 48, 36, seed=7)))
    raw = frame.depth.copy()
    raw[6:30, 14:22] = 0.0
    raw[20:34, 30:46] = 0.0
    holes = raw <= 0
    prior = RGBDPrior.create(16, (16, 32), 1, False)
    draws = calibration.hole_draws(prior, [(frame.rgb, raw, frame.depth)], SMALL, far_windows=(9,))
    z = interval_quantile(SMALL.interval, SMALL.samples)
    coverages = []
    for scale, reach_weight, window in ((0.5, 0.0, 0), (1.0, 0.004, 9), (0.25, 0.004, 9), (3.0, 0.01, 0)):
        predicted = float((draws.ratios(reach_weight, window, z) <= scale).mean())
        prior.register_to_config(interval_scale=scale, interval_reach_weight=reach_weight, interval_far_window=window)
        refined = refine_depth(prior, frame.rgb, raw, SMALL)
        held = (frame.depth >= refined.lower) & (frame.depth <= refined.upper)
        assert float(held[holes].mean()) == pytest.approx(predicted, abs=2 / holes.sum())
        coverages.append(predicted)
    assert min(coverages) < 0.6 and max(coverages) > 0.8  # the scales span the coverage, not one saturated end
