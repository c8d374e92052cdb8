"""3DMatch / SUN3D reader on the real SUN3D fixture and on small hand-made folders."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from data_converters.capture import CaptureFormatError
from data_converters.layouts.threedmatch import read_threedmatch


def test_sun3d_fragments_units_and_poses(fixtures_dir: Path) -> None:
    """Catches: fragments merged or mis-grouped, names colliding across fragments, depth not in metres
    (raw mm would give a median of ~3600), and poses read transposed (last row would not be 0 0 0 1)."""
    capture = read_threedmatch(fixtures_dir / "sun3d_study_100")
    assert capture.groups == ["fragment-1-rgbd-frames", "fragment-2-rgbd-frames"]
    assert [sum(f.group == g for f in capture.frames) for g in capture.groups] == [50, 50]
    assert len({f.name for f in capture.frames}) == 100
    assert capture.frames[0].name == "fragment-1-rgbd-frames/frame-000935"
    assert (capture.width, capture.height) == (640, 480)
    assert capture.K[0, 0] == pytest.approx(570.342205) and capture.K[1, 2] == pytest.approx(240.0)
    poses = np.stack([f.c2w for f in capture.frames])
    assert np.allclose(poses[:, 3], [0, 0, 0, 1])
    assert np.allclose(poses[:, :3, :3] @ poses[:, :3, :3].transpose(0, 2, 1), np.eye(3), atol=1e-4)
    depth = capture.load_depth_m(capture.frames[0])
    assert depth.dtype == np.float32 and 2.5 < np.median(depth[depth > 0]) < 5.0
    assert capture.load_rgb(capture.frames[0]).shape == (480, 640, 3)


def _copy_frames(src: Path, dst: Path, n: int) -> None:
    dst.mkdir(parents=True)
    for colour in sorted(src.glob("frame-*.color.png"))[:n]:
        for suffix in (".color.png", ".depth.png", ".pose.txt"):
            shutil.copy(colour.with_name(colour.name.replace(".color.png", suffix)), dst)


def test_seven_scenes_invalid_value_and_bad_files(fixtures_dir: Path, tmp_path: Path) -> None:
    """Catches: 65535 (7-Scenes 'no depth') read as 65.5 m, a 3x4 pose accepted, a missing depth image
    silently dropped (counts must match), and a missing intrinsics file giving a made-up camera."""
    import cv2

    src = fixtures_dir / "sun3d_study_100" / "fragment-1-rgbd-frames"
    root = tmp_path / "7scenes"
    _copy_frames(src, root / "seq-01", 3)
    with pytest.raises(CaptureFormatError, match="camera-intrinsics.txt"):
        read_threedmatch(root)
    shutil.copy(fixtures_dir / "sun3d_study_100" / "camera-intrinsics.txt", root)
    first = root / "seq-01" / "frame-000935.depth.png"
    depth = cv2.imread(str(first), cv2.IMREAD_UNCHANGED)
    depth[:10] = 65535
    cv2.imwrite(str(first), depth)
    capture = read_threedmatch(root)
    assert capture.groups == ["seq-01"] and capture.frames[0].name == "seq-01/frame-000935"
    assert (capture.load_depth_m(capture.frames[0])[:10] == 0).all()
    pose = root / "seq-01" / "frame-000936.pose.txt"
    pose.write_text("\n".join(pose.read_text().splitlines()[:3]))
    with pytest.raises(CaptureFormatError, match=r"frame-000936\.pose\.txt.*4x4"):
        read_threedmatch(root)
    shutil.copy(src / "frame-000936.pose.txt", pose)
    (root / "seq-01" / "frame-000937.depth.png").unlink()
    with pytest.raises(CaptureFormatError, match=r"3 colour images but 2 depth.*frame-000937\.depth\.png"):
        read_threedmatch(root)
