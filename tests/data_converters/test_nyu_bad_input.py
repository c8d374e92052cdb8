"""Bad input: each case raises one clear error naming the file, or excludes a single bad frame with a reason."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pytest

from data_converters.capture import CaptureFormatError
from data_converters.nyu.convert import convert_raw
from data_converters.nyu.raw_reader import (
    NYUFormatError,
    list_raw_scene,
    read_accel_dump,
    read_pgm,
    read_ppm,
)
from data_converters.nyu.raw_writer import write_pgm
from data_converters.resolve import ensure_nerfstudio_scene
from data_converters.synthetic.nyu_raw_writer import NYURawSpec, write_nyu_raw_scene


@pytest.fixture(scope="module")
def small_raw(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Six clean frames, nothing planted."""
    root = tmp_path_factory.mktemp("bad")
    return write_nyu_raw_scene(
        root / "office_0001", NYURawSpec(num_frames=6, stalls=(), invalid_depth_frames=())
    ).scene_dir


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def _first(folder: Path, pattern: str) -> Path:
    return sorted(folder.glob(pattern))[0]


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(NYUFormatError, match=r"r-1\.0-2\.ppm: file is missing"):
        read_ppm(tmp_path / "r-1.0-2.ppm")
    with pytest.raises(NYUFormatError, match=r"d-1\.0-2\.pgm: file is missing"):
        read_pgm(tmp_path / "d-1.0-2.pgm")


def test_truncated_files(tmp_path: Path) -> None:
    pgm = tmp_path / "d-1.0-2.pgm"
    write_pgm(pgm, np.full((480, 640), 900, np.uint16))
    pgm.write_bytes(pgm.read_bytes()[:-1000])
    with pytest.raises(NYUFormatError, match=r"d-1\.0-2\.pgm: truncated, payload has 613400 bytes, expected 614400"):
        read_pgm(pgm)
    ppm = tmp_path / "r-1.0-2.ppm"
    ppm.write_bytes(b"P6\n640")
    with pytest.raises(NYUFormatError, match=r"r-1\.0-2\.ppm: truncated header"):
        read_ppm(ppm)
    dump = tmp_path / "a-1.0-2.dump"
    dump.write_bytes(b"\x01\x02")
    with pytest.raises(NYUFormatError, match=r"a-1\.0-2\.dump: truncated accelerometer dump"):
        read_accel_dump(dump)


def test_pgm_with_wrong_size_or_type(tmp_path: Path) -> None:
    pgm = tmp_path / "d-1.0-2.pgm"
    write_pgm(pgm, np.full((240, 320), 900, np.uint16))
    with pytest.raises(NYUFormatError, match=r"d-1\.0-2\.pgm: image is 320x240, NYU Kinect frames are 640x480"):
        read_pgm(pgm)
    with pytest.raises(NYUFormatError, match=r"d-1\.0-2\.pgm: expected a P6 file"):
        read_ppm(pgm)


def test_folder_that_is_not_an_nyu_scene(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("hello")
    (tmp_path / "image.png").write_bytes(b"")
    with pytest.raises(NYUFormatError, match=r"not an NYU raw scene \(found 0 d-\*\.pgm and 0 r-\*\.ppm files\)"):
        list_raw_scene(tmp_path)
    with pytest.raises(CaptureFormatError, match="no known RGB-D layout; expected one of: NYU raw"):
        ensure_nerfstudio_scene(tmp_path)
    with pytest.raises(CaptureFormatError, match=r"nowhere: does not exist"):
        ensure_nerfstudio_scene(tmp_path / "nowhere")


def test_single_bad_frame_is_excluded_with_its_reason(
    small_raw: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    scene = _copy(small_raw, tmp_path / "office_0001")
    bad = sorted(scene.glob("d-*.pgm"))[3]
    bad.write_bytes(bad.read_bytes()[:5000])
    with caplog.at_level(logging.WARNING):
        out = convert_raw(scene, tmp_path / "out", progress=False)
    assert str(bad) in caplog.text
    meta = json.loads((out / "metadata.json").read_text())
    assert meta["dropped"] == {bad.name: f"unreadable: {bad}: truncated, payload has 4983 bytes, expected 614400"}
    assert meta["dropped_counts"]["unreadable"] == 1 and meta["frames_posed"] == 5


def test_all_invalid_depth_fails_cleanly(small_raw: Path, tmp_path: Path) -> None:
    scene = _copy(small_raw, tmp_path / "office_0001")
    for pgm in scene.glob("d-*.pgm"):
        write_pgm(pgm, np.full((480, 640), 2047, np.uint16))
    out = tmp_path / "out"
    with pytest.raises(
        NYUFormatError, match=r"office_0001: none of 6 frames is usable, e.g. no valid depth: every pixel"
    ):
        convert_raw(scene, out, progress=False)
    assert not (out / "transforms.json").exists()  # nothing that looks complete is left behind
