"""The path-scale check (conversion) and study: the sensor depth must find a known stretch of a trajectory."""

from __future__ import annotations

import json
import logging
from dataclasses import replace
from pathlib import Path

import numpy as np

from benchmarks.bench_capture_conversion import poses_by_source
from benchmarks.study_trajectory_scale import agreement
from data_converters.capture import Capture
from data_converters.convert import ConvertOptions, convert_capture
from data_converters.layouts.threedmatch import read_threedmatch
from data_converters.trajectory_scale import best_scale, check_trajectory_scale, scaled
from diffnerf_ns.metrics import path_length_ratio


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


def fragment_2(fixtures_dir: Path) -> tuple[Capture, np.ndarray]:
    """SUN3D fragment 2 (its given poses agree with its depth near scale 1) and those poses."""
    capture = read_threedmatch(fixtures_dir / "sun3d_study_100")
    capture = replace(capture, frames=[f for f in capture.frames if f.group == "fragment-2-rgbd-frames"])
    return capture, np.stack([f.c2w for f in capture.frames])


def test_check_finds_a_path_planted_short_and_leaves_the_given_one(fixtures_dir: Path) -> None:
    """Catches: the correction reported inverted (0.8 instead of 1 / 0.8), a fine scan that ignores the coarse
    best, a parabola vertex on the wrong side of an uneven grid, and a check that calls everything firm."""
    capture, given = fragment_2(fixtures_dir)
    depth = lambda i: capture.load_depth_m(capture.frames[i])  # noqa: E731
    short = check_trajectory_scale(capture.K, depth, scaled(given, 0.8))
    assert short.firm and abs(short.scale - 1 / 0.8) < 0.03, short
    assert short.disagreement_m > 2 * short.best_disagreement_m
    right = check_trajectory_scale(capture.K, depth, given)
    assert right.firm and abs(right.scale - 1) < 0.03, right
    standing = given.copy()
    standing[:, :3, 3] = given[0, :3, 3]  # the camera only turns: no path, nothing to scale
    assert not check_trajectory_scale(capture.K, depth, standing).firm


def test_conversion_warns_and_applies_the_path_scale(fixtures_dir: Path, tmp_path: Path, caplog) -> None:
    """A capture whose given path is planted 20% short: 'measure' keeps the poses and warns, 'apply' writes the
    path the depth agrees with. Catches: the check not run on the written frames, 'apply' not applied or
    applied inverted, and 'measure' silently changing poses."""
    capture, given = fragment_2(fixtures_dir)
    short = scaled(given, 0.8)
    capture = replace(capture, frames=[replace(f, c2w=c2w) for f, c2w in zip(capture.frames, short, strict=True)])
    options = ConvertOptions(stride=2, depth_alignment="off")
    with caplog.at_level(logging.WARNING):
        measured = convert_capture(capture, tmp_path / "measure", options, progress=False)
    assert "off in scale" in caplog.text
    record = json.loads((measured / "metadata.json").read_text())["trajectory_scale"]["fragment-2-rgbd-frames"]
    assert record["firm"] and record["decision"] == "measured only"
    np.testing.assert_allclose(np.stack(list(poses_by_source(measured).values())), short[::2], atol=1e-6)
    applied = convert_capture(capture, tmp_path / "apply", replace(options, trajectory_scale="apply"), progress=False)
    written = np.stack(list(poses_by_source(applied).values()))
    assert abs(path_length_ratio(written, given[::2]) - 1) < 0.03
