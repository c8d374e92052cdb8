"""The trajectory-scale study: the sensor depth must find a known stretch of a trajectory it agrees with."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from benchmarks.study_trajectory_scale import agreement, best_scale, scaled
from data_converters.layouts.threedmatch import read_threedmatch


def test_best_scale_is_the_parabola_vertex() -> None:
    """Catches: the interpolation step taken with the wrong sign, or the grid point returned unrefined."""
    curve = {s: (s - 0.93) ** 2 + 1.0 for s in (0.85, 0.9, 0.95, 1.0)}
    assert abs(best_scale(curve) - 0.93) < 1e-9


def test_stretched_trajectory_is_found(fixtures_dir: Path) -> None:
    """SUN3D fragment 2's given poses, which its depth agrees with near s = 1, stretched by 1.1: the depth
    must prefer s = 1 / 1.1. Catches: the scale applied inverted (s instead of 1 / s), rotations scaled with the
    translations, a
    scale taken about the world origin, and a disagreement that ignores the poses."""
    capture = read_threedmatch(fixtures_dir / "sun3d_study_100")
    idx = [i for i, f in enumerate(capture.frames) if f.group == "fragment-2-rgbd-frames"][:31]
    given = np.stack([capture.frames[i].c2w for i in idx])
    stretched = given.copy()
    stretched[:, :3, 3] = given[0, :3, 3] + 1.1 * (given[:, :3, 3] - given[0, :3, 3])
    np.testing.assert_allclose(scaled(stretched, 1 / 1.1), given, atol=1e-12)
    grid = (0.85, 0.875, 0.9, 0.925, 0.95, 0.975, 1.0)
    found = best_scale({s: agreement(capture, idx, scaled(stretched, s), gap=10) for s in grid})
    assert abs(found - 1 / 1.1) < 0.02, found
