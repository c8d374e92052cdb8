"""TUM, Redwood/ICL and plain-folder readers, layout detection, and what bad input does to a conversion."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from data_converters.capture import CaptureFormatError
from data_converters.convert import convert_capture
from data_converters.layouts.plain import read_plain
from data_converters.layouts.redwood import read_redwood
from data_converters.layouts.tum import read_tum
from data_converters.resolve import detect_layout


def _tum_folder(fixtures: Path, root: Path) -> Path:
    """Three TUM frames built from the real TUM frame; depth 2 has no RGB within 20 ms."""
    (root / "rgb").mkdir(parents=True)
    (root / "depth").mkdir()
    rgb_t, depth_t = [1.0, 1.1, 1.2], [1.004, 1.097, 1.25]
    for t in rgb_t:
        shutil.copy(fixtures / "other_sensors" / "TUM_color.png", root / "rgb" / f"{t:.6f}.png")
    for t in depth_t:
        shutil.copy(fixtures / "other_sensors" / "TUM_depth.png", root / "depth" / f"{t:.6f}.png")
    header = "# color images\n# file: 'x.bag'\n# timestamp filename\n"
    (root / "rgb.txt").write_text(header + "".join(f"{t:.6f} rgb/{t:.6f}.png\n" for t in rgb_t))
    (root / "depth.txt").write_text(header + "".join(f"{t:.6f} depth/{t:.6f}.png\n" for t in depth_t))
    return root


def test_tum_units_association_and_interpolated_groundtruth(fixtures_dir: Path, tmp_path: Path) -> None:
    """Catches: depth read as millimetres (median would be 12 m, not 2.4 m), a depth frame paired with an RGB
    frame 50 ms away, and ground truth taken from the nearest sample or with the quaternion read w-first
    (the pose at t=1.1 must be the slerp half-way between the samples at 1.05 and 1.15)."""
    root = _tum_folder(fixtures_dir, tmp_path / "rgbd_dataset_freiburg1_desk")
    q1 = Rotation.from_euler("y", 40, degrees=True).as_quat()
    gt = [
        "# timestamp tx ty tz qx qy qz qw",
        "0.98 0 0 0 0 0 0 1",
        "1.05 0 0 0 0 0 0 1",
        "1.15 1 2 3 " + " ".join(map(str, q1)),
    ]
    (root / "groundtruth.txt").write_text("\n".join(gt) + "\n")
    assert detect_layout(root) == "tum"
    capture = read_tum(root)
    assert [f.name for f in capture.frames] == ["1.004000", "1.097000"]
    assert capture.skipped == {"depth/1.250000.png": "no RGB frame within 20 ms"}
    depth = capture.load_depth_m(capture.frames[0])
    assert 1.5 < np.median(depth[depth > 0]) < 3.5  # the TUM frame's median is 2.4 m
    assert capture.K[0, 0] == pytest.approx(517.3)  # freiburg1, from the folder name
    mid = capture.frames[1].c2w
    assert capture.frames[1].timestamp == pytest.approx(1.1)
    np.testing.assert_allclose(mid[:3, 3], [0.5, 1.0, 1.5], atol=1e-9)
    assert np.rad2deg(Rotation.from_matrix(mid[:3, :3]).magnitude()) == pytest.approx(20.0, abs=1e-6)


def test_tum_bad_lists(fixtures_dir: Path, tmp_path: Path) -> None:
    """Catches: a missing list treated as an empty sequence, a malformed line skipped silently, and a
    listed image that does not exist discovered only half-way through writing."""
    root = _tum_folder(fixtures_dir, tmp_path / "tum")
    (root / "depth.txt").unlink()
    with pytest.raises(CaptureFormatError, match=r"depth\.txt: missing"):
        read_tum(root)
    (root / "depth.txt").write_text("1.004 depth/1.004000.png extra\n")
    with pytest.raises(CaptureFormatError, match=r"depth\.txt, line 1: expected 'timestamp filename'"):
        read_tum(root)
    (root / "depth.txt").write_text("1.004 depth/gone.png\n")
    with pytest.raises(CaptureFormatError, match=r"lists .*gone\.png, which does not exist"):
        read_tum(root)


def test_redwood_icl_reader(fixtures_dir: Path) -> None:
    """Catches: Open3D's column-major intrinsic_matrix read row-major (cx would land in K[2, 0]), .log poses
    attached to the wrong frames, and depth millimetres not scaled to metres."""
    root = fixtures_dir / "icl_nuim_5"
    assert detect_layout(root) == "redwood"
    capture = read_redwood(root)
    np.testing.assert_allclose(capture.K, [[525, 0, 319.5], [0, 525, 239.5], [0, 0, 1]])
    assert [f.name for f in capture.frames] == ["00000", "00001", "00002", "00003", "00004"]
    assert capture.frames[1].c2w[1, 3] == pytest.approx(0.5963093994288613)
    depth = capture.load_depth_m(capture.frames[0])
    assert 0.5 < np.median(depth[depth > 0]) < 5.0


def _plain_from_icl(fixtures: Path, root: Path) -> Path:
    shutil.copytree(fixtures / "icl_nuim_5" / "color", root / "rgb")
    shutil.copytree(fixtures / "icl_nuim_5" / "depth", root / "depth")
    (root / "intrinsics.txt").write_text("525 0 319.5\n0 525 239.5\n0 0 1\n")
    return root


def test_plain_folder_wrong_unit_and_bad_frames(fixtures_dir: Path, tmp_path: Path) -> None:
    """Catches: a wrong depth-unit flag converted silently (metres given for millimetre PNGs gives a 1.9 km
    room), a half-written scene left behind by a failed conversion, a single image of another size
    failing the whole sequence (it must be excluded with its reason), and mismatched counts accepted."""
    root = _plain_from_icl(fixtures_dir, tmp_path / "plain")
    assert detect_layout(root) == "plain"
    out = tmp_path / "out"
    with pytest.raises(CaptureFormatError, match=r"median valid depth is 1861 m.*the values fit millimetres"):
        convert_capture(read_plain(root, depth_unit=1.0), out, progress=False)
    assert not out.exists() or not any(out.iterdir())
    small = cv2.imread(str(root / "rgb" / "00002.jpg"))
    cv2.imwrite(str(root / "rgb" / "00002.jpg"), cv2.resize(small, (320, 240)))
    capture = read_plain(root)
    assert capture.has_poses is False
    scene = convert_capture(capture, out, progress=False)
    meta = json.loads((scene / "metadata.json").read_text())
    assert list(meta["dropped"]) == ["00002"] and "320x240" in meta["dropped"]["00002"]
    assert meta["frames_written"] == 4 and len(json.loads((scene / "transforms.json").read_text())["frames"]) == 4
    (root / "depth" / "00004.png").unlink()
    (root / "depth" / "00003.png").rename(root / "depth" / "other.png")
    with pytest.raises(CaptureFormatError, match=r"5 colour images in rgb/ but 4 depth images"):
        read_plain(root)


def test_lost_tracking_pose_is_excluded_not_used(fixtures_dir: Path, tmp_path: Path) -> None:
    """Catches: a 3DMatch '-inf' (tracking lost) pose written into transforms.json, or poisoning the rigid
    placement of a re-estimated fragment (every pose would turn nan)."""
    from data_converters.convert import ConvertOptions
    from data_converters.layouts.threedmatch import read_threedmatch

    src = fixtures_dir / "sun3d_study_100"
    root = tmp_path / "3dm"
    (root / "seq-01").mkdir(parents=True)
    shutil.copy(src / "camera-intrinsics.txt", root)
    for k in range(935, 938):
        for suffix in (".color.png", ".depth.png", ".pose.txt"):
            shutil.copy(src / "fragment-1-rgbd-frames" / f"frame-000{k}{suffix}", root / "seq-01")
    (root / "seq-01" / "frame-000936.pose.txt").write_text("\n".join(["-inf -inf -inf -inf"] * 4))
    capture = read_threedmatch(root)
    meta = json.loads((convert_capture(capture, tmp_path / "given", progress=False) / "metadata.json").read_text())
    assert meta["dropped"] == {"seq-01/frame-000936": "invalid given pose: pose has non-finite entries (tracking lost)"}
    scene = convert_capture(capture, tmp_path / "est", ConvertOptions(poses="estimate"), progress=False)
    poses = np.asarray([f["transform_matrix"] for f in json.loads((scene / "transforms.json").read_text())["frames"]])
    assert poses.shape == (3, 4, 4) and np.isfinite(poses).all()
    given_first = capture.frames[0].c2w[:3, 3]
    assert np.linalg.norm(poses[0][:3, 3] - given_first) < 0.05


def test_cli_reports_bad_input_in_one_line(fixtures_dir: Path, tmp_path: Path) -> None:
    """Catches: `diffnerf-convert auto` not wired to layout detection and the readers, and bad input ending
    in a traceback instead of one message naming the file."""
    import subprocess
    import sys

    root = _plain_from_icl(fixtures_dir, tmp_path / "plain")
    (root / "intrinsics.txt").write_text("525 0 319.5\n0 525 239.5\n")
    cmd = [sys.executable, "-m", "data_converters.cli", "auto", str(root), "--out", str(tmp_path / "out")]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().endswith("intrinsics.txt: expected a 3x3 matrix (9 numbers), found 6")
