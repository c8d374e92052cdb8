"""ScanNet reader: a `.sens` file and the exporter's folder, both built here from real ICL-NUIM frames.

The rig mimics ScanNet's: colour at twice the source size (1280x960, its own intrinsics) and depth
from a depth camera with other intrinsics and another size (a 600x460 crop of the source's depth
grid), one frame with ScanNet's `-inf` lost-tracking pose. The source camera is then exactly the
training camera the reader should choose, so converted depth can be checked pixel by pixel.
"""

from __future__ import annotations

import json
import struct
import tempfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from data_converters.capture import CaptureFormatError
from data_converters.cli import Auto
from data_converters.layouts.redwood import read_log_trajectory
from data_converters.layouts.scannet import Camera, read_scannet, read_sens_capture, training_camera
from data_converters.nerfstudio_scene import load_scene
from data_converters.resolve import detect_layout

K_SOURCE = np.array([[525.0, 0, 319.5], [0, 525.0, 239.5], [0, 0, 1]])
"""icl_nuim_5's camera (fixtures README), 640x480."""
CROP = (slice(8, 468), slice(16, 616))
"""Rows and columns of the source grid the depth camera sees: 600x460, principal point (303.5, 231.5)."""
K_COLOUR = np.array([[1050.0, 0, 639.5], [0, 1050.0, 479.5], [0, 0, 1]])
"""K_SOURCE for the source image resized to 1280x960 (pixel centres scale about -0.5)."""
K_DEPTH = np.array([[525.0, 0, 319.5 - 16], [0, 525.0, 239.5 - 8], [0, 0, 1]])
LOST = 2


@dataclass
class Rig:
    """Source frames (640x480, the expected training camera) and what the ScanNet rig records of them."""

    rgb: list[np.ndarray]
    depth_mm: list[np.ndarray]
    poses: list[np.ndarray]

    def colour(self, i: int) -> np.ndarray:
        return cv2.resize(self.rgb[i], (1280, 960), interpolation=cv2.INTER_CUBIC)

    def depth_camera(self, i: int) -> np.ndarray:
        return np.ascontiguousarray(self.depth_mm[i][CROP])

    def pose(self, i: int) -> np.ndarray:
        return np.full((4, 4), -np.inf) if i == LOST else self.poses[i]


@pytest.fixture(scope="module")
def rig(fixtures_dir: Path) -> Rig:
    src = fixtures_dir / "icl_nuim_5"
    trajectory = read_log_trajectory(src / "trajectory.log")
    rgb = [cv2.cvtColor(cv2.imread(str(p)), cv2.COLOR_BGR2RGB) for p in sorted((src / "color").glob("*.jpg"))]
    depth = [cv2.imread(str(p), cv2.IMREAD_UNCHANGED) for p in sorted((src / "depth").glob("*.png"))]
    return Rig(rgb, depth, [trajectory[i] for i in range(len(rgb))])


def _matrix4(K: np.ndarray) -> np.ndarray:
    M = np.eye(4)
    M[:3, :3] = K
    return M


def _jpeg(rgb: np.ndarray) -> bytes:
    return cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 95])[1].tobytes()


def sens_bytes(
    colour: list[bytes],
    depth: list[np.ndarray],
    poses: list[np.ndarray],
    cameras: tuple[Camera, Camera],
    extrinsics: tuple[np.ndarray, np.ndarray] = (np.eye(4), np.eye(4)),
    version: int = 4,
    codecs: tuple[int, int] = (2, 1),
) -> bytes:
    """A SensorData v4 file (REFERENCE.md section 5): encoded colour, uint16 millimetre depth (zlib'd for codec 1)."""
    colour_cam, depth_cam = cameras
    name = b"StructureSensor"
    header = [struct.pack("<IQ", version, len(name)), name]
    for M in (_matrix4(colour_cam.K), extrinsics[0], _matrix4(depth_cam.K), extrinsics[1]):
        header.append(np.asarray(M, "<f4").tobytes())
    header.append(struct.pack("<2i4IfQ", *codecs, colour_cam.width, colour_cam.height, depth_cam.width,
                              depth_cam.height, 1000.0, len(colour)))  # fmt: skip
    body = []
    for k, (c, d, pose) in enumerate(zip(colour, depth, poses, strict=True)):
        z = d.astype("<u2").tobytes()
        z = zlib.compress(z) if codecs[1] == 1 else z
        body += [np.asarray(pose, "<f4").tobytes(), struct.pack("<4Q", k, k, len(c), len(z)), c, z]
    return b"".join(header + body)


def write_sens(rig: Rig, path: Path) -> Path:
    n = len(rig.rgb)
    cameras = Camera(K_COLOUR, 1280, 960), Camera(K_DEPTH, 600, 460)
    data = sens_bytes(
        [_jpeg(rig.colour(i)) for i in range(n)],
        [rig.depth_camera(i) for i in range(n)],
        [rig.pose(i) for i in range(n)],
        cameras,
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def _savetxt(path: Path, matrix: np.ndarray) -> None:
    """As ScanNet's exporter writes a matrix: one row per line, '%f'."""
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savetxt(path, matrix, fmt="%f")


def write_export(rig: Rig, root: Path, extrinsics: tuple[np.ndarray, np.ndarray] = (np.eye(4), np.eye(4))) -> Path:
    """The folder ScanNet's exporter writes: color/N.jpg, depth/N.png, pose/N.txt, intrinsic/*.txt."""
    for name in ("color", "depth"):
        (root / name).mkdir(parents=True)
    for i in range(len(rig.rgb)):
        (root / "color" / f"{i}.jpg").write_bytes(_jpeg(rig.colour(i)))
        cv2.imwrite(str(root / "depth" / f"{i}.png"), rig.depth_camera(i))
        _savetxt(root / "pose" / f"{i}.txt", rig.pose(i))
    _savetxt(root / "intrinsic" / "intrinsic_color.txt", _matrix4(K_COLOUR))
    _savetxt(root / "intrinsic" / "intrinsic_depth.txt", _matrix4(K_DEPTH))
    _savetxt(root / "intrinsic" / "extrinsic_color.txt", extrinsics[0])
    _savetxt(root / "intrinsic" / "extrinsic_depth.txt", extrinsics[1])
    return root


def _depth_agreement(scene_depth: np.ndarray, K_scene: np.ndarray, source_mm: np.ndarray) -> tuple[float, int]:
    """(fraction within 1 mm, count) of the scene's valid depth against the source at the pixel each one sees.

    Each scene pixel centre (nerfstudio convention, +0.5) is cast through the scene's own intrinsics and
    projected with the source camera's, so any intrinsics scale, offset or width/height mix-up shows.
    """
    v, u = np.nonzero(scene_depth > 0)
    x = (u + 0.5 - K_scene[0, 2]) / K_scene[0, 0]
    y = (v + 0.5 - K_scene[1, 2]) / K_scene[1, 1]
    us = np.round(K_SOURCE[0, 0] * x + K_SOURCE[0, 2]).astype(int)
    vs = np.round(K_SOURCE[1, 1] * y + K_SOURCE[1, 2]).astype(int)
    inside = (us >= 0) & (us < 640) & (vs >= 0) & (vs < 480)
    error_mm = np.full(len(u), np.inf)
    error_mm[inside] = np.abs(scene_depth[v, u][inside] * 1000.0 - source_mm[vs[inside], us[inside]])
    return float(np.mean(error_mm <= 1.0 + 1e-3)), len(u)


@pytest.mark.parametrize("source", ["sens", "export"])
def test_converted_frames_poses_and_depth_in_the_colour_camera(rig: Rig, tmp_path: Path, source: str) -> None:
    """Catches: the layout detected as Redwood/plain (the export has color/ and depth/ too) or a .sens refused;
    the lost (-inf) frame kept or the count off; poses transposed, re-centred or moved to another axis convention;
    depth resized to the colour image instead of reprojected through both intrinsics (a stretch of up to 16 px),
    the principal point's x and y swapped, depth left in millimetres (conversion refuses a 1.9 km median),
    training at the colour camera's full size, and colour not resampled to the training camera (a 1 px shift
    already doubles the colour error)."""
    kept = [i for i in range(len(rig.rgb)) if i != LOST]
    if source == "sens":
        data = write_sens(rig, tmp_path / "scans" / "scene0000_00" / "scene0000_00.sens")
        assert detect_layout(data.parent) == "scannet"  # a downloaded scan folder holding the .sens
        out = tmp_path / "scans" / "scene0000_00" / "scene0000_00_nerfstudio"
    else:
        data = write_export(rig, tmp_path / "scene0000_00_export")
        out = tmp_path / "scene0000_00_export_nerfstudio"
    assert detect_layout(data) == "scannet"
    capture = read_scannet(data)
    assert capture.skipped.keys() == {str(LOST)}
    assert any(f"1 of 5 frames have lost tracking (-inf pose), first: frame {LOST}" in n for n in capture.notes)
    Auto(root=data).main()  # `diffnerf-convert auto <path>`, default output beside the input
    scene = load_scene(out)
    meta = json.loads((out / "metadata.json").read_text())
    assert [f["source"] for f in meta["frames"]] == [str(i) for i in kept]
    assert "lost tracking" in meta["dropped"][str(LOST)]
    assert (scene.width, scene.height) == (640, 480)
    # Poses went through float32 (.sens) or '%f' text (export).
    np.testing.assert_allclose(scene.c2w, [rig.poses[i] for i in kept], atol=2e-6)
    seen = np.zeros((480, 640), bool)
    seen[CROP] = True
    for k, i in enumerate(kept):
        depth = scene.depth(k)
        agree, count = _depth_agreement(depth, scene.K, rig.depth_mm[i])
        assert agree > 0.999, f"frame {i}: only {agree:.3f} of the depth matches the source pixel it sees"
        assert count > 0.99 * np.count_nonzero(rig.depth_mm[i][CROP]), "depth has holes the sensor did not"
        assert not depth[~seen].any(), "depth where the depth camera does not look"
        colour_error = np.abs(scene.rgb(k).astype(float) - rig.rgb[i]).mean()
        assert colour_error < 1.5, f"frame {i}: colour differs from the source by {colour_error:.1f} levels"


def test_rgbd_dataparser_takes_a_sens_file(rig: Rig, tmp_path: Path) -> None:
    """Catches: `ns-train diffnerf --data scene.sens` refused because the parser only takes folders, the
    `scannet` layout name rejected by the parser's config, or the cache named `scene.sens_nerfstudio`."""
    from diffnerf_ns.data.rgbd_dataparser import RgbdDataParserConfig

    sens = write_sens(rig, tmp_path / "scene0000_00.sens")
    outputs = RgbdDataParserConfig(data=sens, layout="scannet").setup().get_dataparser_outputs("train")
    scene = tmp_path / "scene0000_00_nerfstudio"
    assert all(Path(p).parent == scene / "images" for p in outputs.image_filenames)
    assert len(outputs.image_filenames) == 3  # 4 frames left after the lost one, one held out
    assert (int(outputs.cameras.width[0]), int(outputs.cameras.height[0])) == (640, 480)


def test_extrinsics_move_depth_and_poses_the_documented_way(rig: Rig, tmp_path: Path) -> None:
    """Catches: the depth-to-colour transform inverted or its factors swapped (depth would shift the wrong way),
    and poses left on the base frame instead of moved to the colour camera through its extrinsic."""
    colour_to_base, depth_to_base = np.eye(4), np.eye(4)
    colour_to_base[:3, 3] = [0.0, 0.02, 0.0]
    depth_to_base[:3, 3] = [0.03, 0.0, 0.0]
    capture = read_scannet(write_export(rig, tmp_path / "export", (colour_to_base, depth_to_base)))
    frame = capture.frames[0]
    np.testing.assert_allclose(frame.c2w, rig.poses[0] @ colour_to_base, atol=2e-6)
    depth = capture.load_depth_m(frame)
    source = rig.depth_mm[0].astype(np.float64) / 1000.0
    # A depth-camera pixel of depth z lands (525 * 0.03 / z, -525 * 0.02 / z) pixels away from its source pixel.
    v, u = np.nonzero(depth > 0)
    z = depth[v, u].astype(np.float64)
    us = np.round(u - 525 * 0.03 / z).astype(int)
    vs = np.round(v + 525 * 0.02 / z).astype(int)
    ok = (us >= 0) & (us < 640) & (vs >= 0) & (vs < 480)
    agree = np.abs(source[vs[ok], us[ok]] - z[ok]) < 0.02
    assert agree.mean() > 0.95, f"only {agree.mean():.3f} of the depth sits where the extrinsics put it"


def test_training_camera_for_scannet_sizes() -> None:
    """Catches: training at ScanNet's full 1296x968 colour (depth would only be upsampled, 4x the rays), width
    and height scaled by different factors than the image, and the principal point scaled about 0 instead of
    the image corner at -0.5 (a quarter-pixel shift at this scale, too small for the fixture test to see)."""
    colour = Camera(np.array([[1169.6, 0, 646.3], [0, 1167.1, 489.9], [0, 0, 1]]), 1296, 968)
    depth = Camera(np.array([[577.6, 0, 318.9], [0, 577.6, 238.7], [0, 0, 1]]), 640, 480)
    train = training_camera(colour, depth)
    assert (train.width, train.height) == (640, 478)
    np.testing.assert_allclose(train.K[0, 0], 1169.6 * 640 / 1296)
    np.testing.assert_allclose(train.K[1, 2], (489.9 + 0.5) * 478 / 968 - 0.5)


def _tiny_sens(**changes) -> bytes:
    """Two frames of 16x12 colour and 8x6 depth; the second with a lost pose."""
    rgb = np.random.default_rng(0).integers(0, 255, (12, 16, 3), dtype=np.uint8)
    depth = np.full((6, 8), 1500, np.uint16)
    cameras = (
        Camera(np.array([[20.0, 0, 7.5], [0, 20.0, 5.5], [0, 0, 1]]), 16, 12),
        Camera(np.array([[10.0, 0, 3.5], [0, 10.0, 2.5], [0, 0, 1]]), 8, 6),
    )
    args = {"colour": [_jpeg(rgb)] * 2, "depth": [depth] * 2, "poses": [np.eye(4), np.full((4, 4), -np.inf)]}
    return sens_bytes(cameras=cameras, **{**args, **changes})


def test_sens_raw_codecs_round_trip(tmp_path: Path) -> None:
    """Catches: raw colour read as BGR or with rows and columns swapped, and raw depth read big-endian."""
    rgb = np.random.default_rng(1).integers(0, 255, (12, 16, 3), dtype=np.uint8)
    depth = (1000 + np.arange(48, dtype=np.uint16) * 7).reshape(6, 8)
    path = tmp_path / "raw.sens"
    path.write_bytes(_tiny_sens(colour=[rgb.tobytes()] * 2, depth=[depth] * 2, codecs=(0, 0)))
    capture = read_sens_capture(path)
    frame = capture.frames[0]
    np.testing.assert_array_equal(capture.load_depth_raw(frame), depth)
    np.testing.assert_array_equal(capture.load_rgb(frame), cv2.resize(rgb, (8, 6), interpolation=cv2.INTER_AREA))


def test_sens_bad_input_names_the_file_and_the_problem(tmp_path: Path) -> None:
    """Catches: a wrong version, an unsupported (occi) depth codec, a truncated file or a corrupt frame
    ending in struct.error / zlib.error / a reshape error, or in a message that does not name the file."""
    good = _tiny_sens()
    cases = {
        "version.sens": (struct.pack("<I", 3) + good[4:], r"version 3; only version 4"),
        "occi.sens": (_tiny_sens(codecs=(2, 2)), r"unsupported depth compression type 2"),
        "short.sens": (good[:-10], r"truncated: frame 1 depth"),
        "header.sens": (good[:100], r"truncated: calibration matrices"),
    }
    for name, (data, message) in cases.items():
        path = tmp_path / name
        path.write_bytes(data)
        with pytest.raises(CaptureFormatError, match=message) as err:
            read_sens_capture(path)
        assert str(path) in str(err.value)
    z = zlib.compress(np.full((6, 8), 1500, "<u2").tobytes())
    bad_depth = good.replace(z, b"x" * len(z), 1)
    path = tmp_path / "frame.sens"
    path.write_bytes(bad_depth)
    capture = read_sens_capture(path)
    with pytest.raises(CaptureFormatError, match=r"frame.sens \(frame 0 depth\)"):
        capture.load_depth_m(capture.frames[0])


@settings(max_examples=60, deadline=2000, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    cut=st.integers(0, 10_000),
    at=st.integers(0, 10_000),
    garbage=st.binary(min_size=1, max_size=16),
    mode=st.sampled_from(["truncate", "overwrite", "garbage", "version"]),
)
def test_sens_parser_fuzz(cut: int, at: int, garbage: bytes, mode: str) -> None:
    """Catches: any corrupt, truncated or foreign file escaping as struct.error / IndexError / MemoryError,
    hanging on a huge frame count, or giving frames of the wrong shape instead of an error naming the file."""
    good = _tiny_sens()
    data = {
        "truncate": good[: cut % len(good)],
        "overwrite": good[: at % len(good)] + garbage + good[at % len(good) + len(garbage) :],
        "garbage": garbage * (1 + cut % 64),
        "version": struct.pack("<I", cut) + good[4:],
    }[mode]
    path = Path(tempfile.mkdtemp(prefix="fuzz-")) / "scene.sens"
    path.write_bytes(data)
    try:
        capture = read_sens_capture(path)
        for frame in capture.frames:
            rgb, depth = capture.load_rgb(frame), capture.load_depth_m(frame)
            assert rgb.shape == (capture.height, capture.width, 3) and depth.shape == rgb.shape[:2]
    except ValueError as err:  # CaptureFormatError is a ValueError
        assert isinstance(err, CaptureFormatError) and str(path) in str(err), repr(err)
