"""ScanNet: a `.sens` file (SensorData, version 4) or the folder ScanNet's exporter writes from one.

A `.sens` holds a header (sensor name, colour and depth intrinsics and extrinsics as row-major 4x4
float32, compression types, sizes, depth shift, frame count) and per frame a camera-to-world pose
(OpenCV axes, `-inf` where tracking was lost), timestamps and the compressed colour and depth bytes.
It is indexed once (frame headers only, payloads skipped) and each frame is read on demand, so a
multi-GB file is never held in memory. The exporter folder has `color/N.jpg`, `depth/N.png` (uint16,
value / 1000 = metres), `pose/N.txt` and `intrinsic/{intrinsic,extrinsic}_{color,depth}.txt`.

ScanNet's colour (1296x968) and depth (640x480) come from different cameras, so every frame is
resampled into one training camera: the colour camera scaled down to the depth camera's pixel
density (about 640x478: training at 1296x968 would only upsample depth and cost 4x the rays), with
depth z-buffered into it through both intrinsics and the extrinsics. Each extrinsic maps its camera
into the capture's base frame (SensorData.h; both are the identity in ScanNet), and a frame's pose
places that base frame in the world. Frames whose pose is lost are left out with the reason.
"""

from __future__ import annotations

import logging
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import cv2
import numpy as np

from data_converters.capture import Capture, CaptureFormatError, CaptureFrame
from data_converters.depth_registration import reproject_depth, resized_intrinsics
from data_converters.layouts.text import check_intrinsics, image_size, read_matrix

LOG = logging.getLogger(__name__)
SENS_VERSION = 4
COLOUR_CODECS = {0: "raw", 1: "png", 2: "jpeg"}
DEPTH_CODECS = {0: "raw", 1: "zlib"}
"""Supported depth compression types; ScanNet's SensorData also defines 2 (occi), which it never ships."""
MAX_SIDE = 1 << 14
_FRAME_HEADER = struct.Struct("<16f4Q")
EXPORT_DIRS = ("color", "depth", "pose")
EXPORT_INTRINSICS = "intrinsic"


@dataclass(frozen=True)
class Camera:
    """One pinhole camera of the rig: OpenCV intrinsics and image size."""

    K: np.ndarray
    width: int
    height: int


@dataclass(frozen=True)
class SensRecord:
    """Where one frame's colour and depth bytes lie in a .sens file, and its pose as stored."""

    index: int
    c2w: np.ndarray
    colour: tuple[int, int]
    """(offset, size) in bytes."""
    depth: tuple[int, int]


@dataclass
class SensFile:
    """A .sens file's header and frame index; payloads are read on demand."""

    path: Path
    sensor: str
    colour: Camera
    depth: Camera
    colour_extrinsic: np.ndarray
    depth_extrinsic: np.ndarray
    colour_codec: str
    depth_codec: str
    depth_shift: float
    records: dict[str, SensRecord]

    def read(self, span: tuple[int, int], what: str) -> bytes:
        """The bytes at (offset, size); the file having shrunk since indexing is a format error."""
        offset, size = span
        with open(self.path, "rb") as f:
            f.seek(offset)
            data = f.read(size)
        if len(data) != size:
            raise CaptureFormatError(f"{self.path}: truncated: {what} needs {size} bytes at offset {offset}")
        return data


class _Reader:
    """Sequential little-endian reads that name the file, the field and the offset when the file ends early."""

    def __init__(self, f: BinaryIO, path: Path, file_size: int) -> None:
        self.f, self.path, self.size = f, path, file_size

    def take(self, fmt: str, what: str) -> tuple:
        n = struct.calcsize(fmt)
        offset = self.f.tell()
        data = self.f.read(n)
        if len(data) != n:
            raise CaptureFormatError(
                f"{self.path}: truncated: {what} needs {n} bytes at offset {offset}, the file has {self.size}"
            )
        return struct.unpack(fmt, data)

    def skip(self, n: int, what: str) -> tuple[int, int]:
        """(offset, n) of a payload, which must lie within the file."""
        offset = self.f.tell()
        if offset + n > self.size:
            raise CaptureFormatError(
                f"{self.path}: truncated: {what} is {n} bytes at offset {offset}, the file has {self.size}"
            )
        self.f.seek(n, 1)
        return offset, n


def _camera(matrix: np.ndarray, width: int, height: int, where: str) -> Camera:
    """A camera from a 4x4 ScanNet intrinsic; a principal point far off-centre means the size does not fit it."""
    K = check_intrinsics(np.asarray(matrix, dtype=np.float64)[:3, :3], Path(where))
    if not (0 < width <= MAX_SIDE and 0 < height <= MAX_SIDE):
        raise CaptureFormatError(f"{where}: image size {width}x{height} is not plausible")
    if not (0.3 * width < K[0, 2] < 0.7 * width and 0.3 * height < K[1, 2] < 0.7 * height):
        raise CaptureFormatError(
            f"{where}: principal point ({K[0, 2]:.1f}, {K[1, 2]:.1f}) is far from the centre of the "
            f"{width}x{height} images; these intrinsics are for another image size (images exported resized?)"
        )
    return Camera(K, width, height)


def _rigid(matrix: np.ndarray, where: str) -> np.ndarray:
    """A 4x4 rigid transform, or a format error naming where it came from."""
    T = np.asarray(matrix, dtype=np.float64)
    R = T[:3, :3]
    if (
        not np.isfinite(T).all()
        or not np.allclose(T[3], [0, 0, 0, 1], atol=1e-6)
        or np.abs(R @ R.T - np.eye(3)).max() > 1e-3
        or np.linalg.det(R) < 0
    ):
        raise CaptureFormatError(f"{where}: extrinsic is not a rigid transform: {T.tolist()}")
    return T


def _codec(value: int, codecs: dict[int, str], path: Path, stream: str) -> str:
    if value not in codecs:
        known = ", ".join(f"{k} {v}" for k, v in codecs.items())
        raise CaptureFormatError(f"{path}: unsupported {stream} compression type {value} (supported: {known})")
    return codecs[value]


def read_sens(path: Path) -> SensFile:
    """Parse a .sens header and index its frames (payloads skipped); every inconsistency names the file."""
    path = Path(path)
    if not path.is_file():
        raise CaptureFormatError(f"{path}: file is missing")
    size = path.stat().st_size
    with open(path, "rb") as f:
        r = _Reader(f, path, size)
        (version,) = r.take("<I", "version")
        if version != SENS_VERSION:
            raise CaptureFormatError(
                f"{path}: .sens version {version}; only version {SENS_VERSION} (ScanNet's SensorData) is supported"
            )
        (name_len,) = r.take("<Q", "sensor name length")
        if name_len > 4096:
            raise CaptureFormatError(f"{path}: sensor name length {name_len} is implausible (corrupt header)")
        sensor = r.take(f"<{name_len}s", "sensor name")[0].decode("utf-8", "replace")
        matrices = np.array(r.take("<64f", "calibration matrices"), dtype=np.float64).reshape(4, 4, 4)
        colour_type, depth_type = r.take("<2i", "compression types")
        colour_codec = _codec(colour_type, COLOUR_CODECS, path, "colour")
        depth_codec = _codec(depth_type, DEPTH_CODECS, path, "depth")
        cw, ch, dw, dh = r.take("<4I", "image sizes")
        (depth_shift,) = r.take("<f", "depth shift")
        (num_frames,) = r.take("<Q", "frame count")
        if not (np.isfinite(depth_shift) and depth_shift > 0):
            raise CaptureFormatError(f"{path}: depth shift {depth_shift} is not a positive number of units per metre")
        colour = _camera(matrices[0], cw, ch, f"{path} (colour intrinsics)")
        depth = _camera(matrices[2], dw, dh, f"{path} (depth intrinsics)")
        extrinsics = _rigid(matrices[1], f"{path} (colour)"), _rigid(matrices[3], f"{path} (depth)")
        remaining = size - f.tell()
        if num_frames * _FRAME_HEADER.size > remaining:
            raise CaptureFormatError(
                f"{path}: truncated: the header lists {num_frames} frames, but only {remaining} bytes follow "
                f"(each frame needs at least {_FRAME_HEADER.size})"
            )
        records = {}
        for i in range(num_frames):
            values = r.take(_FRAME_HEADER.format, f"frame {i} header")
            c2w = np.array(values[:16], dtype=np.float64).reshape(4, 4)
            colour_span = r.skip(values[18], f"frame {i} colour")
            records[str(i)] = SensRecord(i, c2w, colour_span, r.skip(values[19], f"frame {i} depth"))
    return SensFile(
        path=path,
        sensor=sensor,
        colour=colour,
        depth=depth,
        colour_extrinsic=extrinsics[0],
        depth_extrinsic=extrinsics[1],
        colour_codec=colour_codec,
        depth_codec=depth_codec,
        depth_shift=float(depth_shift),
        records=records,
    )


def _check_size(image: np.ndarray, camera: Camera, where: str) -> None:
    if image.shape[:2] != (camera.height, camera.width):
        raise CaptureFormatError(
            f"{where}: image is {image.shape[1]}x{image.shape[0]}, its camera is {camera.width}x{camera.height}"
        )


def decode_colour(data: bytes, codec: str, camera: Camera, where: str) -> np.ndarray:
    """(H, W, 3) uint8 RGB from raw RGB bytes or an encoded (png / jpeg) image of the camera's size."""
    if codec == "raw":
        if len(data) != camera.width * camera.height * 3:
            raise CaptureFormatError(f"{where}: raw colour is {len(data)} bytes, not {camera.width}x{camera.height}x3")
        return np.frombuffer(data, np.uint8).reshape(camera.height, camera.width, 3).copy()
    bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR) if data else None
    if bgr is None:
        raise CaptureFormatError(f"{where}: colour is not a readable image ({codec})")
    _check_size(bgr, camera, where)
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def decode_depth(data: bytes, codec: str, camera: Camera, where: str) -> np.ndarray:
    """(H, W) uint16 depth as stored, from raw / zlib-compressed little-endian uint16 or a 16-bit PNG."""
    n = camera.width * camera.height * 2
    if codec == "png":
        depth = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED) if data else None
        if depth is None or depth.ndim != 2 or depth.dtype != np.uint16:
            raise CaptureFormatError(f"{where}: not a single-channel 16-bit depth PNG")
        _check_size(depth, camera, where)
        return depth
    if codec == "zlib":
        try:
            inflater = zlib.decompressobj()
            data = inflater.decompress(data, n + 1)  # bounded: a corrupt stream cannot inflate without limit
        except zlib.error as err:
            raise CaptureFormatError(f"{where}: depth is not valid zlib data ({err})") from err
    if len(data) != n:
        raise CaptureFormatError(
            f"{where}: depth holds {len(data)} bytes, not {camera.width}x{camera.height} uint16 ({n} bytes)"
        )
    return np.frombuffer(data, "<u2").reshape(camera.height, camera.width).astype(np.uint16)


def training_camera(colour: Camera, depth: Camera) -> Camera:
    """The colour camera scaled so its focal length is at most the depth camera's (never upsampling depth)."""
    scale = min(1.0, depth.K[0, 0] / colour.K[0, 0], depth.K[1, 1] / colour.K[1, 1])
    size = (max(1, round(colour.width * scale)), max(1, round(colour.height * scale)))
    return Camera(resized_intrinsics(colour.K, (colour.width, colour.height), size), *size)


@dataclass(kw_only=True)
class ScanNetCapture(Capture):
    """A Capture whose colour and depth cameras differ; `K`, `width`, `height` are the training camera,
    and every frame is resampled into it when read."""

    colour: Camera
    depth: Camera
    depth_to_colour: np.ndarray
    """4x4: depth-camera points to colour-camera points."""
    sens: SensFile | None = None
    """The indexed .sens the frames come from; None for an exporter folder (frames are files)."""

    def _bytes(self, frame: CaptureFrame, stream: str) -> tuple[bytes, str]:
        """A frame's encoded colour or depth and a name for it in errors."""
        if self.sens is not None:
            record = self.sens.records[frame.name]
            where = f"{self.sens.path} (frame {record.index} {stream})"
            return self.sens.read(getattr(record, stream), where), where
        path = frame.rgb_path if stream == "colour" else frame.depth_path
        if not path.is_file():
            raise CaptureFormatError(f"{path}: file is missing")
        return path.read_bytes(), str(path)

    def load_rgb(self, frame: CaptureFrame) -> np.ndarray:
        """(H, W, 3) uint8 RGB of the training camera (colour resized by area averaging)."""
        data, where = self._bytes(frame, "colour")
        codec = self.sens.colour_codec if self.sens is not None else "image"
        rgb = decode_colour(data, codec, self.colour, where)
        return cv2.resize(rgb, (self.width, self.height), interpolation=cv2.INTER_AREA)

    def load_depth_raw(self, frame: CaptureFrame) -> np.ndarray:
        """Depth as stored, at the depth camera's own size (not the training camera's)."""
        data, where = self._bytes(frame, "depth")
        return decode_depth(data, self.sens.depth_codec if self.sens is not None else "png", self.depth, where)

    def load_depth_m(self, frame: CaptureFrame) -> np.ndarray:
        """(H, W) float32 metres in the training camera, 0 where no depth pixel lands."""
        depth_m = super().load_depth_m(frame)
        return reproject_depth(depth_m, self.depth.K, self.K, self.depth_to_colour, (self.width, self.height))


def _scannet_capture(
    root: Path,
    cameras: tuple[Camera, Camera],
    extrinsics: tuple[np.ndarray, np.ndarray],
    depth_scale: float,
    frames: list[CaptureFrame],
    sens: SensFile | None = None,
) -> ScanNetCapture:
    """The capture both sources share: lost frames left out with the reason, poses moved to the colour camera."""
    colour, depth = cameras
    colour_extrinsic, depth_extrinsic = extrinsics
    lost = [f for f in frames if not np.isfinite(f.c2w).all()]
    kept = [f for f in frames if np.isfinite(f.c2w).all()]
    if not kept:
        raise CaptureFormatError(f"{root}: all {len(frames)} frames have lost tracking (non-finite poses)")
    notes = []
    if lost:
        note = f"{len(lost)} of {len(frames)} frames have lost tracking (-inf pose), first: frame {lost[0].name}"
        LOG.warning("%s: %s; excluded", root, note)
        notes.append(note)
    for f in kept:
        f.c2w = f.c2w @ colour_extrinsic
    train = training_camera(colour, depth)
    notes.append(
        f"colour {colour.width}x{colour.height} and depth {depth.width}x{depth.height} resampled into a "
        f"{train.width}x{train.height} training camera (the colour camera at the depth camera's pixel density)"
    )
    return ScanNetCapture(
        layout="scannet",
        root=root,
        K=train.K,
        width=train.width,
        height=train.height,
        depth_scale=depth_scale,
        frames=kept,
        skipped={f.name: "lost tracking: ScanNet stores a -inf pose for this frame" for f in lost},
        notes=notes,
        colour=colour,
        depth=depth,
        depth_to_colour=np.linalg.inv(colour_extrinsic) @ depth_extrinsic,
        sens=sens,
    )


def read_sens_capture(path: Path) -> ScanNetCapture:
    """A ScanNet .sens file as a capture (frames read from the file on demand)."""
    sens = read_sens(path)
    if not sens.records:
        raise CaptureFormatError(f"{path}: holds no frames")
    frames = [
        CaptureFrame(name=n, rgb_path=sens.path, depth_path=sens.path, c2w=r.c2w) for n, r in sens.records.items()
    ]
    return _scannet_capture(
        sens.path,
        (sens.colour, sens.depth),
        (sens.colour_extrinsic, sens.depth_extrinsic),
        1.0 / sens.depth_shift,
        frames,
        sens,
    )


def is_scannet_export(root: Path) -> bool:
    root = Path(root)
    return (root / EXPORT_INTRINSICS / "intrinsic_color.txt").is_file() and all(
        (root / d).is_dir() for d in EXPORT_DIRS
    )


def _export_frames(root: Path) -> list[CaptureFrame]:
    """color/N.jpg with depth/N.png and pose/N.txt, in frame order; a missing partner names the file."""
    colour = sorted((p for p in (root / "color").iterdir() if p.stem.isdigit()), key=lambda p: int(p.stem))
    if not colour:
        raise CaptureFormatError(f"{root / 'color'}: no N.jpg colour images")
    frames = []
    for rgb in colour:
        depth, pose = root / "depth" / f"{rgb.stem}.png", root / "pose" / f"{rgb.stem}.txt"
        for p in (depth, pose):
            if not p.is_file():
                raise CaptureFormatError(
                    f"{p}: missing (the exporter writes one per colour image, {rgb.name} has none)"
                )
        frames.append(CaptureFrame(name=rgb.stem, rgb_path=rgb, depth_path=depth, c2w=read_matrix(pose, 4, 4)))
    return frames


def read_scannet_export(root: Path) -> ScanNetCapture:
    """The folder ScanNet's exporter writes; depth PNGs hold millimetres (the exporter's default depth shift)."""
    root = Path(root)
    frames = _export_frames(root)
    calib = root / EXPORT_INTRINSICS

    def extrinsic(name: str) -> np.ndarray:
        path = calib / f"extrinsic_{name}.txt"
        return _rigid(read_matrix(path, 4, 4), str(path)) if path.is_file() else np.eye(4)

    def camera(name: str, sample: Path) -> Camera:
        path = calib / f"intrinsic_{name}.txt"
        return _camera(read_matrix(path, 4, 4), *image_size(sample), str(path))

    cameras = camera("color", frames[0].rgb_path), camera("depth", frames[0].depth_path)
    return _scannet_capture(root, cameras, (extrinsic("color"), extrinsic("depth")), 1e-3, frames)


def is_scannet(path: Path) -> bool:
    """A .sens file, an exporter folder, or a scan folder holding exactly one .sens."""
    path = Path(path)
    if path.is_file():
        return path.suffix.lower() == ".sens"
    return path.is_dir() and (is_scannet_export(path) or len(list(path.glob("*.sens"))) == 1)


def read_scannet(path: Path) -> ScanNetCapture:
    """A .sens file, an exporter folder (preferred when a scan folder holds both), or a scan folder's one .sens."""
    path = Path(path)
    if path.is_file():
        return read_sens_capture(path)
    if is_scannet_export(path):
        return read_scannet_export(path)
    sens = sorted(path.glob("*.sens")) if path.is_dir() else []
    if len(sens) != 1:
        raise CaptureFormatError(
            f"{path}: not a ScanNet capture; expected a .sens file, a folder holding one, or an exporter folder "
            f"({', '.join(EXPORT_DIRS)}, {EXPORT_INTRINSICS}/intrinsic_color.txt)"
        )
    return read_sens_capture(sens[0])
