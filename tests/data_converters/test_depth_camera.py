"""Depth from its own camera (7-Scenes-style Kinect v1 IR depth read as registered): fit and registration (#19.5).

The plant (`benchmarks.bench_depth_camera.plant_depth_camera`) is real SUN3D fragment-2 depth, registered to
colour as shipped, moved into a Kinect-v1-like IR camera: focal 585/525 of the colour camera's, principal point
(3, -2) px off, 2.5 cm baseline along x.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from benchmarks.bench_depth_camera import far_off, kinect_ir, plant_depth_camera
from data_converters.convert import ConvertOptions, convert_capture
from data_converters.depth_camera import DepthCamera, estimate_depth_camera
from data_converters.layouts.threedmatch import read_threedmatch
from data_converters.nerfstudio_scene import load_scene

FRAGMENT = "fragment-2-rgbd-frames"


@pytest.fixture(scope="module")
def sun3d(fixtures_dir: Path) -> tuple[list[tuple[np.ndarray, np.ndarray]], np.ndarray]:
    """Every fourth frame of the real SUN3D fragment 2 (13 frames) as (rgb, depth in metres), and K."""
    capture = read_threedmatch(fixtures_dir / "sun3d_study_100")
    frames = [f for f in capture.frames if f.group == FRAGMENT][::4]
    return [(capture.load_rgb(f), capture.load_depth_m(f)) for f in frames], capture.K


def test_planted_kinect_camera_recovered_and_registered(sun3d) -> None:
    """The fitted camera is near the planted one and its registration puts depth back where colour sees it.

    Catches: the model inverted (the scale taken about colour pixels instead of depth pixels reads 1.088 for
    1.114; checked by mutation), a parallax of the wrong sign (-16 against +16), registration with the
    source and target cameras swapped (doubles the misalignment instead of removing it), and a no-op fit (scale 1).
    SUN3D's own depth is about 1 px off its colour, so the offset is checked loosely.
    """
    frames, K = sun3d
    truth = kinect_ir(K)
    planted = [(rgb, plant_depth_camera(depth, K, truth)) for rgb, depth in frames]
    camera = estimate_depth_camera(planted, K)
    assert abs(camera.scale - truth.scale) < 0.02, camera.as_dict()
    assert abs(camera.parallax - truth.parallax) < 3.0, camera.as_dict()
    assert abs(camera.offset[1] - truth.offset[1]) < 2.5, camera.as_dict()
    assert camera.gain > 0.2, camera.as_dict()  # one shift cannot explain the plant's edges
    before = np.mean([far_off(d, t) for (_, d), (_, t) in zip(planted, frames, strict=True)])
    after = np.mean([far_off(camera.register(d, K), t) for (_, d), (_, t) in zip(planted, frames, strict=True)])
    assert before > 0.5 and after < 0.12, (before, after)


def test_registered_capture_needs_no_camera(sun3d) -> None:
    """SUN3D ships depth registered: the fit finds scale 1 and gains little over one shift. Catches a search biased
    towards magnification (the border's jumps dominating) and a gain measured against the wrong baseline."""
    frames, K = sun3d
    camera = estimate_depth_camera(frames, K)
    assert abs(camera.scale - 1.0) < 0.01, camera.as_dict()
    assert camera.gain < 0.06, camera.as_dict()


def test_seven_scenes_reading_registers_depth_and_recovers_colour_intrinsics(
    fixtures_dir: Path, tmp_path: Path
) -> None:
    """A 7-Scenes-like capture: depth measured by the Kinect IR camera, and the only intrinsics given are that
    camera's (as 7-Scenes users take 585 px). Converted with depth_alignment='camera' and given_intrinsics='depth',
    the scene must train with the colour camera's intrinsics (SUN3D's 570.34 px, principal point (320, 240)) and
    depth registered with the fitted camera. Catches: the mode ignored (planted depth written as it is), the fit
    not recorded, the depth camera's intrinsics written for colour (635 px), the principal point corrected the wrong
    way, given_intrinsics='depth' accepted without a fit to derive them from, and 'auto' silent about a capture
    no one shift fits."""
    src = fixtures_dir / "sun3d_study_100"
    K = np.loadtxt(src / "camera-intrinsics.txt")
    truth = kinect_ir(K)
    root = tmp_path / "seven_scenes_like"
    (root / FRAGMENT).mkdir(parents=True)
    np.savetxt(root / "camera-intrinsics.txt", truth.depth_intrinsics(K)[0])
    for colour in sorted((src / FRAGMENT).glob("frame-*.color.png"))[::6]:
        stem = colour.name.replace(".color.png", "")
        shutil.copy(colour, root / FRAGMENT)
        shutil.copy(src / FRAGMENT / f"{stem}.pose.txt", root / FRAGMENT)
        depth = cv2.imread(str(src / FRAGMENT / f"{stem}.depth.png"), cv2.IMREAD_UNCHANGED) / 1000.0
        planted = np.round(plant_depth_camera(depth.astype(np.float32), K, truth) * 1000).astype(np.uint16)
        cv2.imwrite(str(root / FRAGMENT / f"{stem}.depth.png"), planted)
    capture = read_threedmatch(root)
    with pytest.raises(ValueError, match="needs depth_alignment='camera'"):
        convert_capture(capture, tmp_path / "bad", ConvertOptions(given_intrinsics="depth"), progress=False)
    auto = convert_capture(capture, tmp_path / "auto", ConvertOptions(alignment_frames=9), progress=False)
    decision = json.loads((auto / "metadata.json").read_text())["depth_alignment"]["decision"]
    assert decision.startswith("not applied") and "--options.depth-alignment camera" in decision, decision
    options = ConvertOptions(depth_alignment="camera", given_intrinsics="depth")
    scene = convert_capture(capture, tmp_path / "scene", options, progress=False)
    record = json.loads((scene / "metadata.json").read_text())["depth_alignment"]
    assert record["mode"] == "camera" and record["decision"].startswith("applied"), record
    assert abs(record["camera"]["scale"] - truth.scale) < 0.03, record
    meta = json.loads((scene / "transforms.json").read_text())
    assert abs(meta["fl_x"] - K[0, 0]) < 0.03 * K[0, 0] and abs(meta["fl_y"] - K[1, 1]) < 0.03 * K[1, 1], meta["fl_x"]
    # SUN3D's own depth is about 1 px off its colour, and the fit carries that into the principal point.
    assert abs(meta["cx"] - 0.5 - K[0, 2]) < 3 and abs(meta["cy"] - 0.5 - K[1, 2]) < 3, (meta["cx"], meta["cy"])
    fitted = DepthCamera(
        scale=record["camera"]["scale"],
        offset=tuple(record["camera"]["offset"]),
        parallax=record["camera"]["parallax_px_m"],
    )
    expected = fitted.register(capture.load_depth_m(capture.frames[0]), capture.K)
    written = load_scene(scene).depth(0)
    assert np.mean(np.abs(written - expected)[expected > 0] < 2e-3) > 0.99  # record rounding moves few pixels
    assert far_off(written, capture.load_depth_m(capture.frames[0])) > 0.3  # it did move: the plant is far off
