"""Depth-to-colour misalignment (issue #19.5): the edge estimator, the shift, what conversion records and applies."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from data_converters.capture import Capture
from data_converters.convert import ConvertOptions, convert_capture
from data_converters.depth_alignment import (
    distance_to_discontinuity,
    estimate_depth_offset,
    shift_depth,
)
from data_converters.layouts.redwood import read_redwood
from data_converters.layouts.threedmatch import read_threedmatch
from data_converters.nerfstudio_scene import load_scene

FRAGMENT = "fragment-2-rgbd-frames"
SUN3D_OWN_OFFSET_BOUND = 1.5
"""SUN3D as shipped measures (0.1, 1.2) px (benchmarks/results/depth_alignment.md): its factory registration is
about a pixel low, which no planted shift removes, so absolute estimates are held to 1.5 px."""


def _room(seed: int, shift: tuple[int, int] = (0, 0), bleed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A textured 160x120 'room': a far wall (3 m) with two nearer boxes (1.5 m, 2 m) whose colour edges coincide with
    their depth edges; depth then moved by `shift` and its nearer surfaces fattened by `bleed` pixels."""
    rng = np.random.default_rng(seed)
    h, w = 120, 160
    grey = cv2.GaussianBlur(rng.uniform(60, 120, (h, w)).astype(np.float32), (0, 0), 2.0)
    depth = np.full((h, w), 3.0, np.float32)
    for z, (x0, y0, x1, y1), tone in ((1.5, (30, 25, 80, 90), 70), (2.0, (95, 40, 140, 100), -50)):
        x0, y0 = x0 + int(rng.integers(-4, 5)), y0 + int(rng.integers(-4, 5))
        grey[y0:y1, x0:x1] += tone
        depth[y0:y1, x0:x1] = z
        if bleed:
            fat = np.zeros_like(depth, dtype=bool)
            fat[max(y0 - bleed, 0) : y1 + bleed, max(x0 - bleed, 0) : x1 + bleed] = True
            depth[fat] = np.minimum(depth[fat], z)
    depth[rng.random((h, w)) < 0.05] = 0  # sensor dropouts
    rgb = np.repeat(np.clip(grey, 0, 255).astype(np.uint8)[..., None], 3, axis=2)
    return rgb, shift_depth(depth, *shift)


def test_shift_depth_moves_content_and_keeps_holes() -> None:
    """Catches: content moved the wrong way (a sign error undoes nothing or doubles the offset), depth blended
    across an edge (an invented surface between 1 m and 5 m), and holes filled or uncovered borders given depth."""
    depth = np.zeros((6, 8), np.float32)
    depth[2, 3] = 1.0
    depth[2, 4] = 5.0
    depth[3, 3] = 0.0  # a hole inside the object
    depth[3, 4] = 2.0
    moved = shift_depth(depth, 2, -1)
    assert moved[1, 5] == 1.0 and moved[1, 6] == 5.0 and moved[2, 6] == 2.0
    assert moved[2, 5] == 0.0  # the hole moved with its surroundings and is still a hole
    assert set(np.unique(moved)) <= set(np.unique(depth))  # nearest neighbour: no new depth values
    assert (moved[-1] == 0).all() and (moved[:, :2] == 0).all()  # uncovered rows/columns are invalid
    assert np.array_equal(shift_depth(moved, -2, 1)[:5, :6], depth[:5, :6])  # an exact inverse where both are covered
    assert np.array_equal(shift_depth(depth, 0.4, -0.4), depth)  # under half a pixel rounds to no move


def test_synthetic_planted_shift_bleed_and_flat_scene() -> None:
    """On rooms whose true offset is known: a planted (2, -1) shift comes back within 0.25 px on both axes and
    reliable; fattened nearer surfaces (structured light's bleeding) are reported as bleed, not as a shift; a flat
    wall gives no reliable estimate. Catches a sign convention flip, a half-pixel bias between depth jumps and
    colour gradients, bleeding read as an offset, and noise reported as a measurement."""
    planted = estimate_depth_offset(_room(seed, (2, -1)) for seed in range(6))
    assert planted.reliable == (True, True), planted.reason
    assert abs(planted.dx - 2) < 0.25 and abs(planted.dy + 1) < 0.25, (planted.dx, planted.dy)
    assert planted.correction() == (-2, 1)
    fattened = estimate_depth_offset(_room(seed, bleed=2) for seed in range(6))
    assert abs(fattened.dx) < 0.3 and abs(fattened.dy) < 0.3, (fattened.dx, fattened.dy)
    assert 1.5 < fattened.bleed[0] < 2.5 and 1.5 < fattened.bleed[1] < 2.5, fattened.bleed
    rng = np.random.default_rng(0)
    wall = [
        (rng.integers(0, 255, (120, 160, 3), dtype=np.uint8), np.full((120, 160), 2.0 + 0.001 * k, np.float32))
        for k in range(5)
    ]
    flat = estimate_depth_offset(wall)
    assert flat.reliable == (False, False) and "too few depth-jump pixels" in flat.reason
    assert flat.correction() == (0, 0)


@pytest.fixture(scope="module")
def sun3d_frames(fixtures_dir: Path) -> list[tuple[np.ndarray, np.ndarray]]:
    """Every second frame of the real SUN3D fragment 2 (25 frames), as (rgb, depth in metres)."""
    capture = read_threedmatch(fixtures_dir / "sun3d_study_100")
    frames = [f for f in capture.frames if f.group == FRAGMENT][::2]
    return [(capture.load_rgb(f), capture.load_depth_m(f)) for f in frames]


def test_sun3d_planted_shift_recovered(sun3d_frames: list[tuple[np.ndarray, np.ndarray]]) -> None:
    """Issue #19.5's target on real frames: a planted (3, -2) px depth shift is recovered within 1 px. Catches a
    sign error (the estimate would read (-3, 2) more than as shipped), a no-op estimator (no change) and a scale
    error (the change would not be 3 and -2); the absolute estimate carries SUN3D's own ~1 px registration error."""
    shipped = estimate_depth_offset(sun3d_frames)
    planted = estimate_depth_offset((rgb, shift_depth(depth, 3, -2)) for rgb, depth in sun3d_frames)
    assert planted.reliable == (True, True), planted.reason
    assert abs(planted.dx - shipped.dx - 3) < 1 and abs(planted.dy - shipped.dy + 2) < 1
    assert abs(planted.dx - 3) < SUN3D_OWN_OFFSET_BOUND and abs(planted.dy + 2) < SUN3D_OWN_OFFSET_BOUND
    assert abs(shipped.dx) < SUN3D_OWN_OFFSET_BOUND and abs(shipped.dy) < SUN3D_OWN_OFFSET_BOUND
    assert planted.correction()[0] == -3  # x: SUN3D's own offset is 0.1 px, so the plant alone is undone


def test_registered_capture_measures_under_a_pixel(fixtures_dir: Path) -> None:
    """Zero planted shift on a capture registered by construction (ICL-NUIM renders depth and colour from one
    camera): |offset| < 1 px on both axes, so 'auto' leaves it alone. Catches an estimator biased by its own
    pixel conventions (half-pixel steps add up to a whole one) or by texture near edges."""
    capture = read_redwood(fixtures_dir / "icl_nuim_5")
    offset = estimate_depth_offset((capture.load_rgb(f), capture.load_depth_m(f)) for f in capture.frames)
    assert abs(offset.dx) < 1 and abs(offset.dy) < 1, (offset.dx, offset.dy)
    assert offset.correction() in ((0, 0), (-1, 0), (0, -1), (1, 0), (0, 1))


def _planted_sun3d(fixtures_dir: Path, root: Path, shift: tuple[int, int], step: int) -> Capture:
    """A 3DMatch folder of every `step`-th frame of SUN3D fragment 2 with depth moved by `shift` pixels."""
    src = fixtures_dir / "sun3d_study_100"
    dst = root / FRAGMENT
    dst.mkdir(parents=True)
    shutil.copy(src / "camera-intrinsics.txt", root)
    for colour in sorted((src / FRAGMENT).glob("frame-*.color.png"))[::step]:
        stem = colour.name.replace(".color.png", "")
        shutil.copy(colour, dst)
        shutil.copy(src / FRAGMENT / f"{stem}.pose.txt", dst)
        depth = cv2.imread(str(src / FRAGMENT / f"{stem}.depth.png"), cv2.IMREAD_UNCHANGED)
        cv2.imwrite(str(dst / f"{stem}.depth.png"), shift_depth(depth, *shift))
    return read_threedmatch(root)


def test_conversion_records_and_applies_the_offset(fixtures_dir: Path, tmp_path: Path) -> None:
    """Catches: the measurement missing from metadata.json, the correction applied the wrong way (written depth
    must be the planted depth moved back by `applied_shift`), 'auto' not applying it on a layout without
    registration, and 'off' still moving depth."""
    capture = _planted_sun3d(fixtures_dir, tmp_path / "planted", (3, -2), step=2)
    scene = convert_capture(capture, tmp_path / "scene", progress=False)
    record = json.loads((scene / "metadata.json").read_text())["depth_alignment"]
    assert record["mode"] == "auto" and record["registration"].startswith("none given")
    assert {"dx", "dy", "reliable", "reason", "uncertainty", "bleed", "per_frame"} <= set(record)
    assert abs(record["dx"] - 3) < SUN3D_OWN_OFFSET_BOUND and abs(record["dy"] + 2) < SUN3D_OWN_OFFSET_BOUND
    assert record["decision"].startswith("applied") and record["reliable"] == [True, True], record
    # Each axis moved back by its rounded offset: the plant plus SUN3D's own (about 1 px low).
    assert record["applied_shift"] == [-round(record["dx"]), -round(record["dy"])]
    assert record["applied_shift"][0] == -3 and record["applied_shift"][1] in (1, 2)
    written = load_scene(scene).depth(0)
    planted = capture.load_depth_m(capture.frames[0])
    expected = shift_depth(planted, *record["applied_shift"])
    assert np.abs(written - expected).max() < 1e-3  # depth PNGs are whole millimetres
    off = convert_capture(capture, tmp_path / "off", ConvertOptions(depth_alignment="off"), progress=False)
    off_record = json.loads((off / "metadata.json").read_text())["depth_alignment"]
    assert off_record["applied_shift"] == [0, 0] and "dx" not in off_record
    assert np.abs(load_scene(off).depth(0) - planted).max() < 1e-3


def test_registered_layout_is_measured_not_moved(fixtures_dir: Path, tmp_path: Path) -> None:
    """Catches 'auto' shifting depth of a layout that registers it itself (Redwood/ICL-NUIM: rendered from the
    colour camera) and the measurement not being recorded there."""
    capture = read_redwood(fixtures_dir / "icl_nuim_5")
    scene = convert_capture(capture, tmp_path / "icl", progress=False)
    record = json.loads((scene / "metadata.json").read_text())["depth_alignment"]
    assert record["mode"] == "auto" and "Open3D" in record["registration"]
    assert record["applied_shift"] == [0, 0] and record["decision"].startswith("not applied")
    assert record["dx"] is not None and abs(record["dx"]) < 1
    assert np.abs(load_scene(scene).depth(0) - capture.load_depth_m(capture.frames[0])).max() < 1e-3


def test_edge_distance_zero_at_jumps_far_on_planes() -> None:
    """Catches the depth-loss weight map marking planes (a slanted floor's steady depth change) or hole borders as
    edges, or missing a real occluding edge."""
    depth = np.tile(np.linspace(2.0, 2.5, 64, dtype=np.float32), (48, 1))  # slanted plane: 0.35% per pixel
    depth[:, 40:] = 4.0  # occluding edge between columns 39 and 40
    depth[5:10, 5:10] = 0.0  # a hole
    distance = distance_to_discontinuity(depth, cap=16)
    assert (distance[:, 39:41] == 0).all()
    assert distance[:, 20].min() == 16
    assert distance[7, 11] > 10  # beside the hole: not an edge
