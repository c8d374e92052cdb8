"""iPhone LiDAR captures through nerfstudio: Polycam and Record3D exports, fabricated from the synthetic room.

The exports are written in each app's format at app-like resolutions (depth 4x smaller than Polycam's keyframes,
3.75x smaller than Record3D's colour, as on an iPhone) with depth rendered exactly, so every depth value the
dataset hands to the model can be checked against the truth seen through the parser's own cameras. Polycam's
export goes through nerfstudio's own `ns-process-data polycam --use-depth` code (`ProcessPolycam.main`, ffmpeg
included), Record3D's through `ns-process-data record3d` (`ProcessRecord3D.main`), which keeps no depth.
"""

from __future__ import annotations

import json
import os
import shutil
import zipfile
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from PIL import Image
from scipy.spatial.transform import Rotation

from data_converters.layouts.record3d import ARKIT_TO_OPENCV  # importing it also switches on OpenCV's EXR codec
from data_converters.synthetic.demo_scene import scaled_intrinsics
from data_converters.synthetic.room import RoomScene, handheld_trajectory

ROOM = RoomScene.default()
ROOM_TO_YUP = np.array([[0, 1, 0, 0], [0, 0, 1, 0], [1, 0, 0, 0], [0, 0, 0, 1.0]])
"""Room world (z up) to the phones' ARKit world (y up); nerfstudio's polycam processing undoes exactly this."""
NUM_FRAMES = 8
BLURRY = 3
"""Polycam frame whose blur score is below nerfstudio's default --min-blur-score: left out of transforms.json."""
POLYCAM_SIZE, POLYCAM_DEPTH = (512, 384), (128, 96)  # (w, h): 1024x768 / 256x192 halved, the same 4x ratio
RECORD3D_SIZE, RECORD3D_DEPTH = (360, 480), (96, 128)  # 720x960 / 192x256 halved, portrait, ratio 3.75
CROP = 15  # nerfstudio's default --crop-border-pixels for polycam
BAD_DEPTH_M = 0.5
"""Added to the depth where Polycam's confidence is low, as LiDAR's flying pixels are."""


@pytest.fixture(scope="module")
def ffmpeg_on_path(tmp_path_factory: pytest.TempPathFactory):
    """nerfstudio's processing shells out to `ffmpeg`: the system's, else the one the imageio-ffmpeg wheel ships."""
    with pytest.MonkeyPatch.context() as mp:
        if shutil.which("ffmpeg") is None:
            imageio_ffmpeg = pytest.importorskip("imageio_ffmpeg", reason="needs ffmpeg (pip install imageio-ffmpeg)")
            bin_dir = tmp_path_factory.mktemp("bin")
            (bin_dir / "ffmpeg").symlink_to(imageio_ffmpeg.get_ffmpeg_exe())
            mp.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
        yield


def _poses() -> np.ndarray:
    return handheld_trajectory(NUM_FRAMES, seed=0)  # OpenCV camera-to-world in the room (z up)


def _arkit_pose(c2w_room: np.ndarray) -> np.ndarray:
    """The phone's camera-to-world: ARKit camera axes (x right, y up, z back), world y up."""
    return ROOM_TO_YUP @ c2w_room @ ARKIT_TO_OPENCV


def _confidence_levels(i: int) -> np.ndarray:
    """ARKit levels at Polycam's depth size: a low (0) column band that moves with the frame, a medium (1) top band."""
    w, h = POLYCAM_DEPTH
    levels = np.full((h, w), 2, np.uint8)
    levels[:16] = 1
    levels[:, 20 + 8 * i : 32 + 8 * i] = 0
    return levels


@pytest.fixture(scope="module")
def polycam_scene(tmp_path_factory: pytest.TempPathFactory, ffmpeg_on_path) -> Path:
    """`ns-process-data polycam --data export.zip --output-dir scene --use-depth`, on a fabricated Polycam export."""
    from nerfstudio.scripts.process_data import ProcessPolycam

    root = tmp_path_factory.mktemp("polycam")
    keyframes = root / "export" / "capture" / "keyframes"
    for sub in ("images", "cameras", "depth", "confidence"):
        (keyframes / sub).mkdir(parents=True)
    (w, h), (dw, dh) = POLYCAM_SIZE, POLYCAM_DEPTH
    K = scaled_intrinsics(w, h)
    for i, c2w in enumerate(_poses()):
        stem = str(1_700_000_000 + 500 * i)  # Polycam names keyframes by timestamp
        rgb, _ = ROOM.render(K, c2w, h, w)
        _, depth = ROOM.render(np.diag([dw / w, dh / h, 1.0]) @ K, c2w, dh, dw)
        levels = _confidence_levels(i)
        depth = depth + BAD_DEPTH_M * (levels == 0)
        Image.fromarray((rgb * 255 + 0.5).astype(np.uint8)).save(keyframes / "images" / f"{stem}.jpg", quality=95)
        Image.fromarray(np.round(depth * 1000).astype(np.uint16)).save(keyframes / "depth" / f"{stem}.png")
        Image.fromarray(levels).save(keyframes / "confidence" / f"{stem}.png")
        # Polycam's t_rc rows are the pose in its y-up world; nerfstudio reorders them to z up.
        pose = _arkit_pose(c2w)
        camera = {"fx": K[0, 0], "fy": K[1, 1], "cx": K[0, 2], "cy": K[1, 2], "width": w, "height": h}
        camera |= {f"t_{r}{c}": float(pose[r, c]) for r in range(3) for c in range(4)}
        camera |= {"blur_score": 10.0 if i == BLURRY else 80.0, "timestamp": int(stem)}
        (keyframes / "cameras" / f"{stem}.json").write_text(json.dumps(camera))
    export = root / "export.zip"
    with zipfile.ZipFile(export, "w") as z:
        for path in sorted((root / "export").rglob("*")):
            z.write(path, path.relative_to(root / "export").as_posix())
    scene = root / "scene"
    ProcessPolycam(data=export, output_dir=scene, use_depth=True, crop_border_pixels=CROP).main()
    return scene


@pytest.fixture(scope="module")
def record3d_export(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A Record3D "EXR + JPG sequence" export: metadata.json, rgb/<i>.jpg, depth/<i>.exr (float metres)."""
    root = tmp_path_factory.mktemp("record3d") / "EXR_RGBD"
    (root / "rgb").mkdir(parents=True)
    (root / "depth").mkdir()
    (w, h), (dw, dh) = RECORD3D_SIZE, RECORD3D_DEPTH
    K = scaled_intrinsics(w, h)
    poses = []
    for i, c2w in enumerate(_poses()):
        rgb, _ = ROOM.render(K, c2w, h, w)
        _, depth = ROOM.render(np.diag([dw / w, dh / h, 1.0]) @ K, c2w, dh, dw)
        depth[:4, :4] = np.nan  # the sensor's invalid pixels
        Image.fromarray((rgb * 255 + 0.5).astype(np.uint8)).save(root / "rgb" / f"{i}.jpg", quality=95)
        assert cv2.imwrite(str(root / "depth" / f"{i}.exr"), depth.astype(np.float32))
        pose = _arkit_pose(c2w)
        poses.append([*Rotation.from_matrix(pose[:3, :3]).as_quat(), *pose[:3, 3]])  # qx qy qz qw tx ty tz
    K_opencv = K - np.array([[0, 0, 0.5], [0, 0, 0.5], [0, 0, 0]])  # ARKit's principal point: pixel centres at integers
    meta = {"w": w, "h": h, "dw": dw, "dh": dh, "fps": 60, "K": K_opencv.T.reshape(-1).tolist(), "poses": poses}
    (root / "metadata.json").write_text(json.dumps(meta))
    return root


def _room_camera(outputs, i: int) -> np.ndarray:
    """Training camera `i` of the parser as an OpenCV camera-to-world in the room's own world."""
    c2w = np.vstack([outputs.cameras.camera_to_worlds[i].numpy(), [0, 0, 0, 1]])
    to_input = np.linalg.inv(np.vstack([outputs.dataparser_transform.numpy(), [0, 0, 0, 1]]))
    return to_input @ c2w @ ARKIT_TO_OPENCV


def _true_depth(outputs, i: int, world_to_room: np.ndarray) -> np.ndarray:
    """Exact z-depth (metres) that camera `i`, as the parser describes it (intrinsics, pose, size), sees."""
    camera = outputs.cameras[i]
    K = camera.get_intrinsics_matrices().numpy()  # nerfstudio's pixel centres at +0.5, as the renderer's
    return ROOM.render(K, world_to_room @ _room_camera(outputs, i), int(camera.height), int(camera.width))[1]


def _parse(data: Path, split: str = "train"):
    from diffnerf_ns.data.rgbd_dataparser import RgbdDataParserConfig
    from diffnerf_ns.data.rgbd_dataset import RGBDDataset

    outputs = RgbdDataParserConfig(data=data).setup().get_dataparser_outputs(split)
    return outputs, RGBDDataset(outputs)


def _assert_sensible_box(outputs, world_to_room: np.ndarray) -> None:
    """The box lies within the room (give or take a quarter of its size: the box has a 10% margin) and spans a good
    part of it (8 frames do not see all of it); the cameras are inside it."""
    aabb = outputs.scene_box.aabb.numpy()
    corners = np.array([[x, y, z, 1.0] for x in aabb[:, 0] for y in aabb[:, 1] for z in aabb[:, 2]])
    to_room = world_to_room @ np.linalg.inv(np.vstack([outputs.dataparser_transform.numpy(), [0, 0, 0, 1]]))
    room = (to_room @ corners.T).T[:, :3]
    lo, hi = ROOM.bounds()
    slack = 0.25 * (hi - lo)
    assert np.all(room.min(0) > lo - slack) and np.all(room.max(0) < hi + slack), (room.min(0), room.max(0))
    assert np.prod(room.max(0) - room.min(0)) > 0.3 * np.prod(hi - lo), aabb
    centres = outputs.cameras.camera_to_worlds[:, :3, 3].numpy()
    assert np.all(centres > aabb[0]) and np.all(centres < aabb[1])


def test_polycam_depth_reaches_the_dataset_in_metres(polycam_scene: Path) -> None:
    """Catches depth in the wrong unit (a 1000x error from reading nerfstudio's millimetre PNGs as metres, or
    metres again as millimetres), depth not resized to or misaligned with the cropped images (nerfstudio upscales
    Polycam's depth 4x and crops 15 px), poses in the wrong axes (the truth is rendered from the parser's own
    cameras), and a scene box fitted to wrongly scaled depth."""
    outputs, dataset = _parse(polycam_scene)
    assert len(dataset) == NUM_FRAMES - 2  # one blurry frame dropped by nerfstudio, one held out
    world_to_room = np.eye(4)  # nerfstudio's polycam processing already turned the world z up
    for i in range(len(dataset)):
        item = dataset.get_metadata({"image_idx": i})
        depth = item["depth_image"][..., 0].numpy()
        assert depth.shape == (int(outputs.cameras.height[i]), int(outputs.cameras.width[i]))
        trusted = item["depth_confidence"][..., 0].numpy() == 1
        source = int(Path(dataset.image_filenames[i]).stem.split("_")[1]) - 1  # nerfstudio's frame_{i + 1:05d}
        raw = np.asarray(Image.open(sorted((polycam_scene / "capture" / "keyframes" / "depth").iterdir())[source]))
        rows, cols = (np.arange(depth.shape[0]) + CROP) // 4, (np.arange(depth.shape[1]) + CROP) // 4
        np.testing.assert_allclose(depth, raw[rows][:, cols] / 1000, atol=1e-6)  # upscaled 4x, cropped, in metres
        error = np.abs(depth - _true_depth(outputs, i, world_to_room))[trusted & (depth > 0)]
        # Polycam's depth is 4x coarser: nearest-neighbour upsampling leaves millimetres on smooth surfaces.
        assert np.median(error) < 0.01 and np.percentile(error, 90) < 0.03, (i, np.median(error))
    _assert_sensible_box(outputs, world_to_room)


def test_polycam_confidence_weights_the_depth_loss(polycam_scene: Path) -> None:
    """Catches Polycam's confidence maps ignored (nerfstudio's processing drops them; the export it extracted into
    the scene still has them), a frame given another frame's map (a blurry frame that nerfstudio left out of
    transforms.json shifts frame numbers), maps not upscaled and cropped like the depth, levels not turned into
    weights (low 0, medium 0.5, high 1), and held-out views given confidence (their depth loss is never used)."""
    _, dataset = _parse(polycam_scene)
    for i in range(len(dataset)):
        item = dataset.get_metadata({"image_idx": i})
        source = int(Path(dataset.image_filenames[i]).stem.split("_")[1]) - 1  # nerfstudio's frame_{i + 1:05d}
        h, w = item["depth_image"].shape[:2]
        rows, cols = (np.arange(h) + CROP) // 4, (np.arange(w) + CROP) // 4
        expected = _confidence_levels(source)[rows][:, cols] / 2
        weight = item["depth_confidence"][..., 0].numpy()
        np.testing.assert_allclose(weight, expected, atol=1e-4, err_msg=f"frame {source}")
        # The zero-weight pixels are exactly those whose depth is off by half a metre.
        assert (weight == 0).sum() > 500
    _, held_out = _parse(polycam_scene, "val")
    assert "depth_confidence" not in held_out.get_metadata({"image_idx": 0})


def test_record3d_scene_from_ns_process_data_says_how_to_get_depth(
    record3d_export: Path, tmp_path: Path, ffmpeg_on_path
) -> None:
    """Catches a Record3D scene from `ns-process-data record3d` (which keeps no depth in nerfstudio 1.1.5) failing
    with no way forward, or training silently without depth supervision."""
    from nerfstudio.scripts.process_data import ProcessRecord3D

    scene = tmp_path / "scene"
    ProcessRecord3D(data=record3d_export, output_dir=scene).main()
    frames = json.loads((scene / "transforms.json").read_text())["frames"]
    assert len(frames) == NUM_FRAMES and not any("depth_file_path" in f for f in frames)
    with pytest.raises(ValueError, match="Record3D export folder"):
        _parse(scene)


def test_record3d_export_depth_reaches_the_dataset_in_metres(record3d_export: Path) -> None:
    """Catches a Record3D export taken for a plain colour + depth folder (it has rgb/ and depth/), EXR depth not
    decoded (OpenCV's EXR codec is off by default), depth at 192x256 not resized to the 720x960 colour or resized
    off-centre (a 3.75x ratio), `K` read row-major (it is column-major), quaternions read scalar-first, and ARKit
    camera axes taken for OpenCV's."""
    from data_converters.resolve import detect_layout

    assert detect_layout(record3d_export) == "record3d"
    outputs, dataset = _parse(record3d_export)
    world_to_room = np.linalg.inv(ROOM_TO_YUP)
    converted = json.loads((record3d_export.parent / "EXR_RGBD_nerfstudio" / "metadata.json").read_text())
    source = {f["name"]: f["source"] for f in converted["frames"]}
    (w, h), (dw, dh) = RECORD3D_SIZE, RECORD3D_DEPTH
    for i in range(len(dataset)):
        depth = dataset.get_metadata({"image_idx": i})["depth_image"][..., 0].numpy()
        assert depth.shape == (h, w)
        # Each pixel holds the sensor's value at the depth pixel its centre falls in (the upper-left one on a border,
        # as OpenCV picks), stored as millimetre PNGs in between.
        exr = cv2.imread(str(record3d_export / "depth" / f"{source[Path(dataset.image_filenames[i]).stem]}.exr"), -1)
        rows = np.ceil((np.arange(h) + 0.5) * dh / h).astype(int) - 1
        cols = np.ceil((np.arange(w) + 0.5) * dw / w).astype(int) - 1
        np.testing.assert_allclose(depth, np.nan_to_num(exr[rows][:, cols]), atol=5e-4)
        error = np.abs(depth - _true_depth(outputs, i, world_to_room))[depth > 0]
        assert np.median(error) < 0.01 and np.percentile(error, 90) < 0.03, (i, np.median(error))
        assert depth[:8, :8].max() == 0  # the sensor's nan stays invalid
    _assert_sensible_box(outputs, world_to_room)


@pytest.mark.parametrize("capture", ["polycam", pytest.param("record3d", marks=pytest.mark.slow)])
def test_phone_capture_trains_with_finite_depth_loss(capture: str, request, tmp_path: Path) -> None:
    """Catches a phone scene that parses but cannot train (`Trainer.train()`, as `ns-train diffnerf --data` runs
    it), a depth loss that is nan / inf / zero, and Polycam's confidence lost between the dataset and the model's
    ray batches (diffnerf supervises with refined depth by default; frames without it keep raw depth, which must
    keep its sensor confidence)."""
    from nerfstudio.engine.trainer import Trainer

    from diffnerf_ns.compat import offline_lpips
    from diffnerf_ns.diffnerf_config import diffnerf_method
    from diffnerf_ns.presets import configure_run

    data = request.getfixturevalue("polycam_scene" if capture == "polycam" else "record3d_export")
    torch.manual_seed(0)
    config = configure_run(diffnerf_method.config, data, tmp_path / "runs", iterations=3, rays_per_batch=64)
    with offline_lpips():
        trainer = Trainer(config)
        trainer.setup()
    depth_losses, weights = [], []
    inner = trainer.pipeline.get_train_loss_dict

    def get_train_loss_dict(step: int):
        outputs, losses, metrics = inner(step=step)
        depth_losses.append(float(losses["depth_loss"]))
        return outputs, losses, metrics

    trainer.pipeline.get_train_loss_dict = get_train_loss_dict  # type: ignore[method-assign]
    next_train = trainer.pipeline.datamanager.next_train

    def record_batch(step: int):
        ray_bundle, batch = next_train(step)
        weights.append(batch["depth_confidence"].flatten() if "depth_confidence" in batch else torch.ones(1))
        return ray_bundle, batch

    trainer.pipeline.datamanager.next_train = record_batch  # type: ignore[method-assign]
    trainer.train()
    assert len(depth_losses) == 3 and np.all(np.isfinite(depth_losses)) and max(depth_losses) > 0, depth_losses
    seen = torch.cat(weights)
    if capture == "polycam":  # about a sixth of its pixels have low confidence: 192 rays hit some
        assert seen.min() == 0 and seen.max() == 1, seen.unique()
    else:  # no confidence maps: every ray has full weight
        assert torch.all(seen == 1), seen.unique()
