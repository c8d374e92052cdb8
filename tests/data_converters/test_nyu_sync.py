"""Timestamp synchronisation: depth primary, nearest RGB, far pairs dropped and counted."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from data_converters.nyu.raw_reader import RawFile, RawScene, parse_filename
from data_converters.nyu.sync import synchronise


def _files(kind: str, times: list[float]) -> list[RawFile]:
    return [RawFile(Path(f"{kind}-{t:.6f}-0"), kind, t, 0) for t in times]


def test_parse_filename() -> None:
    f = parse_filename(Path("d-1315166703.129542-2466101449.pgm"))
    assert f is not None and f.kind == "d" and f.unix_time == 1315166703.129542 and f.kinect_time == 2466101449
    assert parse_filename(Path("d-1315166703.129542-2466101449.ppm")) is None  # wrong extension for depth
    assert parse_filename(Path("INDEX.txt")) is None


def test_nearest_rgb_threshold_and_stats() -> None:
    depth = [0.0, 0.033, 0.066, 0.5, 0.533]
    rgb = [0.004, 0.030, 0.070, 0.540]
    scene = RawScene(Path("."), rgb=_files("r", rgb), depth=_files("d", depth), accel=_files("a", depth))
    result = synchronise(scene, max_dt=0.02)
    kept = [f.depth.unix_time for f in result.frames]
    assert kept == [0.0, 0.033, 0.066, 0.533]
    assert [f.rgb.unix_time for f in result.frames] == [0.004, 0.030, 0.070, 0.540]
    assert [f.depth.unix_time for f in result.dropped] == [0.5]
    np.testing.assert_allclose([f.dt for f in result.frames], [0.004, 0.003, 0.004, 0.007], atol=1e-9)
    stats = result.stats()
    assert stats["kept"] == 4 and stats["dropped_rgb_too_far"] == 1 and stats["depth_frames"] == 5
    assert all(f.accel is not None and f.accel.unix_time == f.depth.unix_time for f in result.frames)
