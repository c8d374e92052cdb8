"""Fuzzing the binary and text parsers: any input gives a result or the project's CaptureFormatError.

A parser that lets an IndexError / OverflowError / UnicodeDecodeError escape, hangs, or returns a
value it did not validate (wrong shape, non-finite timestamp) fails these properties.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from data_converters.capture import CaptureFormatError
from data_converters.layouts.redwood import read_log_trajectory
from data_converters.layouts.tum import read_tum_groundtruth, read_tum_list
from data_converters.nyu.raw_reader import read_accel_dump, read_pgm, read_ppm

FUZZ = settings(max_examples=40, deadline=2000, database=None, suppress_health_check=[HealthCheck.too_slow])


def _write(data: bytes | str) -> Path:
    path = Path(tempfile.mkdtemp(prefix="fuzz-")) / "input"
    path.write_bytes(data.encode("utf-8", "surrogatepass") if isinstance(data, str) else data)
    return path


header_tokens = st.sampled_from([b"P5", b"P6", b"P3", b"640", b"480", b"65535", b"255", b"-1", b"0", b"#c\n", b"x"])
netpbm = st.builds(
    lambda toks, seps, payload: b"".join(t + s for t, s in zip(toks, seps, strict=False)) + payload,
    st.lists(header_tokens, max_size=6),
    st.lists(st.sampled_from([b" ", b"\n", b"\t", b""]), min_size=6, max_size=6),
    st.one_of(st.binary(max_size=64), st.just(b"\0" * (640 * 480 * 2)), st.just(b"\0" * (640 * 480 * 3 - 1))),
)


@settings(FUZZ, max_examples=25)
@given(data=st.one_of(netpbm, st.binary(max_size=256)))
def test_netpbm_readers_raise_only_format_errors(data: bytes) -> None:
    """Catches: an IndexError / ValueError on a truncated or odd header, or a short payload reshaped anyway."""
    path = _write(data)
    for reader, shape in ((read_pgm, (480, 640)), (read_ppm, (480, 640, 3))):
        try:
            image = reader(path)
        except CaptureFormatError as err:
            assert str(path) in str(err)
        else:
            assert image.shape == shape


@FUZZ
@given(data=st.binary(max_size=32))
def test_accel_dump_reader(data: bytes) -> None:
    """Catches: a short dump read past its end instead of reported."""
    path = _write(data)
    try:
        accel = read_accel_dump(path)
    except CaptureFormatError as err:
        assert str(path) in str(err)
    else:
        assert accel.shape == (3,) and np.isfinite(accel).all()


tum_line = st.one_of(
    st.builds(
        lambda t, n: f"{t} {n}", st.floats(allow_nan=True, allow_infinity=True), st.sampled_from(["rgb/a.png", "x"])
    ),
    st.sampled_from(["# comment", "", "1.0", "1.0 a b", "nan a.png", "1e400 a.png", "0x10 a.png", "1_0 a.png"]),
    st.text(max_size=20),
)


@FUZZ
@given(lines=st.lists(tum_line, max_size=8))
def test_tum_list_reader(lines: list[str]) -> None:
    """Catches: a nan/inf timestamp accepted (association would silently pair nothing), a line with extra
    fields truncated, undecodable bytes escaping as UnicodeDecodeError."""
    path = _write("\n".join(lines))
    try:
        entries = read_tum_list(path)
    except CaptureFormatError as err:
        assert str(path) in str(err)
    else:
        assert entries and all(np.isfinite(t) and isinstance(name, str) for t, name in entries)
        assert [t for t, _ in entries] == sorted(t for t, _ in entries)


@FUZZ
@given(rows=st.lists(st.lists(st.floats(allow_nan=True, allow_infinity=True, width=32), max_size=9), max_size=5))
def test_tum_groundtruth_reader(rows: list[list[float]]) -> None:
    """Catches: a zero quaternion turned into nan rotations, non-finite poses accepted, repeated timestamps."""
    path = _write("\n".join(" ".join(map(str, r)) for r in rows))
    try:
        stamps, poses = read_tum_groundtruth(path)
    except CaptureFormatError as err:
        assert str(path) in str(err)
    else:
        assert np.isfinite(poses).all() and poses.shape == (len(stamps), 4, 4)
        assert np.all(np.diff(stamps) > 0)


log_line = st.one_of(
    st.sampled_from(["0 0 1", "1 1 2", "inf 0 1", "-1 0 1", "0.5 0 1", "1 0 0 0", "0 1 0 0", "1 2 3 4", "", "x"]),
    st.builds(lambda v: " ".join(map(str, v)), st.lists(st.floats(width=32), max_size=5)),
    st.text(max_size=12),
)


@FUZZ
@given(lines=st.lists(log_line, max_size=16), binary=st.binary(max_size=8))
def test_log_trajectory_reader(lines: list[str], binary: bytes) -> None:
    """Catches: an inf or fractional frame id turned into an int (OverflowError or a wrong frame), a pose of
    the wrong shape returned, binary junk escaping as UnicodeDecodeError."""
    path = _write("\n".join(lines).encode("utf-8", "surrogatepass") + binary)
    try:
        poses = read_log_trajectory(path)
    except CaptureFormatError as err:
        assert str(path) in str(err)
    else:
        assert all(isinstance(k, int) and k >= 0 and p.shape == (4, 4) for k, p in poses.items())


def test_valid_log_round_trip(tmp_path: Path) -> None:
    """Catches: a parser so strict it rejects the real format (the fuzz properties alone would pass it)."""
    pose = np.arange(16.0).reshape(4, 4)
    path = tmp_path / "t.log"
    path.write_text(
        "".join(f"{i} {i} {i + 1}\n" + "\n".join(" ".join(map(str, r)) for r in pose) + "\n" for i in range(3))
    )
    poses = read_log_trajectory(path)
    assert sorted(poses) == [0, 1, 2] and np.array_equal(poses[2], pose)
