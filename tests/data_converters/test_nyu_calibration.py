"""The NYU calibration constants against published values.

The outside check, that these extrinsics align the real frame's depth edges with its RGB edges better
than a flipped or missing baseline, is in test_nyu_raw_frame.py (it needs the real fixture)."""

from __future__ import annotations

import numpy as np

from data_converters.nyu import calibration as cal


def test_effective_extrinsics_match_reference_values() -> None:
    np.testing.assert_allclose(
        cal.R_EFF,
        [
            [0.99997799, -0.00503599, -0.00431966],
            [0.00505184, 0.99998052, 0.00366624],
            [0.00430112, -0.00368798, 0.99998395],
        ],
        atol=1e-8,
    )
    np.testing.assert_allclose(cal.T_EFF, [-0.0250319, 0.0002934, -0.0006624], atol=1e-7)
    assert np.isclose(np.linalg.det(cal.R_EFF), 1.0)
    np.testing.assert_allclose(cal.R_EFF @ cal.R_EFF.T, np.eye(3), atol=1e-6)
    assert 0.024 < np.linalg.norm(cal.T_EFF) < 0.026  # Kinect v1's 2.5 cm RGB-depth baseline


def test_cropped_intrinsics_shift_the_principal_point() -> None:
    K = cal.cropped_rgb_intrinsics()
    assert K[0, 2] == cal.K_RGB[0, 2] - 40 and K[1, 2] == cal.K_RGB[1, 2] - 44
    assert (cal.CROP_COLS.stop - cal.CROP_COLS.start, cal.CROP_ROWS.stop - cal.CROP_ROWS.start) == (561, 427)
