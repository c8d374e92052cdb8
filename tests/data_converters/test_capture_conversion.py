"""Any-layout conversion on real captures: SUN3D with given and re-estimated poses, ICL-NUIM via Redwood."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from benchmarks.bench_capture_conversion import depth_disagreement, poses_by_source
from data_converters.capture import Capture
from data_converters.convert import ConvertOptions, convert_capture
from data_converters.layouts.redwood import read_redwood
from data_converters.layouts.threedmatch import read_threedmatch
from diffnerf_ns.metrics import absolute_trajectory_error, relative_rotation_errors


@pytest.fixture(scope="module")
def sun3d(fixtures_dir: Path) -> Capture:
    return read_threedmatch(fixtures_dir / "sun3d_study_100")


def test_sun3d_given_poses_written_as_given(sun3d: Capture, tmp_path: Path) -> None:
    """Catches: given poses altered on the way (OpenCV->OpenGL applied twice or not at all), a fragment
    dropped, and the cache not reused (the second call must not rewrite anything)."""
    options = ConvertOptions(stride=10)
    scene = convert_capture(sun3d, tmp_path / "given", options, progress=False)
    poses = poses_by_source(scene)
    assert len(poses) == 10 and {n.split("/")[0] for n in poses} == set(sun3d.groups)
    for f in sun3d.frames[::10]:
        np.testing.assert_allclose(poses[f.name], f.c2w, atol=1e-6)
    mtime = (scene / "transforms.json").stat().st_mtime_ns
    convert_capture(sun3d, tmp_path / "given", options, progress=False)
    assert (scene / "transforms.json").stat().st_mtime_ns == mtime


@pytest.mark.slow
def test_sun3d_reestimated_poses(sun3d: Capture, tmp_path: Path) -> None:
    """Catches: odometry with the wrong intrinsics or depth unit (drifts by decimetres), poses chained in the
    wrong order (inverse transforms), fragments tracked across the time gap, fragments left in their own
    frame instead of the given world, and a frame-to-keyframe tracker (fragment 1 ATE 6.7 cm).

    Issue 11's bounds, per fragment: ATE < 5 cm and relative rotation error < 1 degree as a MEAN over
    consecutive frames, plus a 1.5 degree bound on the max. Not max < 1: the SUN3D poses are approximate
    and interpolated (their frame-to-frame motion is constant over blocks of 5 frames); at fragment 2's
    step 45->46 they rotate about 1 degree away from what both SIFT-feature PnP and full-resolution
    direct odometry measure, so the estimate's max error there (1.2 degrees) is mostly the reference's."""
    scene = convert_capture(sun3d, tmp_path / "est", ConvertOptions(poses="estimate"), progress=False)
    est = poses_by_source(scene)
    assert len(est) == 100
    for group in sun3d.groups:
        idx = [i for i, f in enumerate(sun3d.frames) if f.group == group]
        gt = np.stack([sun3d.frames[i].c2w for i in idx])
        mine = np.stack([est[sun3d.frames[i].name] for i in idx])
        ate = absolute_trajectory_error(mine, gt)
        rre = relative_rotation_errors(mine, gt)
        assert ate < 0.05 and rre.mean() < 1.0 and rre.max() < 1.5, (group, ate, rre.mean(), rre.max())
        # Unaligned: each fragment is placed in the given world, not left at its own first camera.
        assert np.median(np.linalg.norm(mine[:, :3, 3] - gt[:, :3, 3], axis=1)) < 0.1
        first, last = idx[0], idx[-1]
        mine_all = [est.get(f.name, f.c2w) for f in sun3d.frames]
        given_all = [f.c2w for f in sun3d.frames]
        assert depth_disagreement(sun3d, first, last, mine_all[first], mine_all[last]) < 1.2 * depth_disagreement(
            sun3d, first, last, given_all[first], given_all[last]
        )


def test_icl_nuim_estimated_poses(fixtures_dir: Path, tmp_path: Path) -> None:
    """Catches: Redwood intrinsics read row-major, millimetres not scaled, or odometry chained wrongly
    (ATE against ICL-NUIM's exact rendered poses must stay under 2 cm)."""
    capture = read_redwood(fixtures_dir / "icl_nuim_5")
    scene = convert_capture(capture, tmp_path / "icl", ConvertOptions(poses="estimate"), progress=False)
    est = poses_by_source(scene)
    gt = np.stack([f.c2w for f in capture.frames])
    mine = np.stack([est[f.name] for f in capture.frames])
    assert absolute_trajectory_error(mine, gt) < 0.02
    assert relative_rotation_errors(mine, gt).max() < 1.0
