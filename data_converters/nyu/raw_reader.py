"""Reading the files of an NYU Depth V2 raw scene folder, with errors that name the file.

Raw scenes hold `r-<unix>-<kinect>.ppm` (RGB), `d-<unix>-<kinect>.pgm` (depth, 11-bit raw
disparity, little-endian payload despite the PGM header) and `a-<unix>-<kinect>.dump`
(accelerometer). The official toolbox lists the directory rather than trusting INDEX.txt.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from data_converters.capture import CaptureFormatError
from data_converters.nyu.calibration import HEIGHT, WIDTH

_NAME_RE = re.compile(r"^([rda])-(\d+(?:\.\d+)?)-(\d+)\.(ppm|pgm|dump)$")
_EXT = {"r": "ppm", "d": "pgm", "a": "dump"}
ACCEL_COUNTS_PER_G = 819.0  # Kionix KXSD9 as used by libfreenect
GRAVITY = 9.80665
ACCEL_DUMP_SIZE = 12  # libfreenect raw tilt state: int16 x, y, z; int8 tilt; padding; int32 status


class NYUFormatError(CaptureFormatError):
    """An input file or folder is not what an NYU raw scene should contain."""


@dataclass(frozen=True)
class RawFile:
    """One file of a raw scene, with the two timestamps its name carries."""

    path: Path
    kind: str  # "r", "d" or "a"
    unix_time: float
    kinect_time: int


@dataclass
class RawScene:
    """All files of one raw scene folder, each list sorted by unix time."""

    folder: Path
    rgb: list[RawFile] = field(default_factory=list)
    depth: list[RawFile] = field(default_factory=list)
    accel: list[RawFile] = field(default_factory=list)


def parse_filename(path: Path) -> RawFile | None:
    """Parse `r-/d-/a-<unix time>-<kinect ts>.<ext>`; None for unrelated names."""
    m = _NAME_RE.match(Path(path).name)
    if m is None or _EXT[m.group(1)] != m.group(4):
        return None
    return RawFile(Path(path), m.group(1), float(m.group(2)), int(m.group(3)))


def list_raw_scene(folder: Path) -> RawScene:
    """List a raw scene folder; raise if it has no depth or no RGB frames (not an NYU scene)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise NYUFormatError(f"{folder}: not a folder")
    scene = RawScene(folder)
    for p in folder.iterdir():
        f = parse_filename(p)
        if f is not None:
            {"r": scene.rgb, "d": scene.depth, "a": scene.accel}[f.kind].append(f)
    if not scene.depth or not scene.rgb:
        raise NYUFormatError(
            f"{folder}: not an NYU raw scene (found {len(scene.depth)} d-*.pgm and {len(scene.rgb)} r-*.ppm files)"
        )
    for files in (scene.rgb, scene.depth, scene.accel):
        files.sort(key=lambda f: (f.unix_time, f.kinect_time))
    return scene


def _read_netpbm(path: Path, magic: bytes, channels: int, dtype: str) -> np.ndarray:
    """Parse a binary PNM header, check it is 640x480 and that the payload is complete."""
    path = Path(path)
    if not path.is_file():
        raise NYUFormatError(f"{path}: file is missing")
    data = path.read_bytes()
    tokens: list[bytes] = []
    pos = 0
    while len(tokens) < 4:
        while pos < len(data) and data[pos : pos + 1].isspace():
            pos += 1
        if data[pos : pos + 1] == b"#":
            pos = data.find(b"\n", pos) + 1 or len(data)
            continue
        start = pos
        while pos < len(data) and not data[pos : pos + 1].isspace():
            pos += 1
        if start == pos:
            raise NYUFormatError(f"{path}: truncated header ({len(data)} bytes)")
        tokens.append(data[start:pos])
    pos += 1  # the single whitespace byte that ends the header
    if tokens[0] != magic:
        raise NYUFormatError(f"{path}: expected a {magic.decode()} file, header starts with {tokens[0][:8]!r}")
    try:
        width, height, _maxval = (int(t) for t in tokens[1:])
    except ValueError as err:
        raise NYUFormatError(f"{path}: malformed header {b' '.join(tokens)!r}") from err
    if (width, height) != (WIDTH, HEIGHT):
        raise NYUFormatError(f"{path}: image is {width}x{height}, NYU Kinect frames are {WIDTH}x{HEIGHT}")
    expected = width * height * channels * np.dtype(dtype).itemsize
    payload = len(data) - pos
    if payload < expected:
        raise NYUFormatError(f"{path}: truncated, payload has {payload} bytes, expected {expected}")
    arr = np.frombuffer(data, dtype=dtype, count=width * height * channels, offset=pos)
    return arr.reshape(height, width, channels) if channels > 1 else arr.reshape(height, width)


def read_ppm(path: Path) -> np.ndarray:
    """RGB frame as (480, 640, 3) uint8."""
    return _read_netpbm(path, b"P6", 3, "u1").copy()


def read_pgm(path: Path) -> np.ndarray:
    """Raw depth frame as (480, 640) uint16; the payload is little-endian whatever the header says."""
    return _read_netpbm(path, b"P5", 1, "<u2").astype(np.uint16)


def read_accel_dump(path: Path) -> np.ndarray:
    """Accelerometer reading (x, y, z) in m/s^2 on the Kinect's axes (libfreenect raw tilt state)."""
    path = Path(path)
    if not path.is_file():
        raise NYUFormatError(f"{path}: file is missing")
    data = path.read_bytes()
    if len(data) < 6:
        raise NYUFormatError(f"{path}: truncated accelerometer dump ({len(data)} bytes, expected {ACCEL_DUMP_SIZE})")
    counts = np.frombuffer(data, dtype="<i2", count=3).astype(np.float64)
    return counts / ACCEL_COUNTS_PER_G * GRAVITY
