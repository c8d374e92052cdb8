"""Phone scenes made by nerfstudio's processing, read by the project's own scene reader, refined and trained on.

`ns-process-data polycam --use-depth` writes intrinsics per frame only, and other tools store depth at a lower
resolution than the images or in another unit (`depth_unit_scale_factor`). The Polycam scene and export come from
`test_phone_captures.py` (nerfstudio's own processing of a fabricated export); the variants here re-render exact
depth at a quarter of the image size (as an iPhone's LiDAR beside its camera) in 0.25 mm units, so every value
read back can be checked against the room.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from data_converters.nerfstudio_scene import OPENCV_TO_OPENGL, load_scene

_spec = importlib.util.spec_from_file_location(
    "phone_captures_shared", Path(__file__).with_name("test_phone_captures.py")
)
phone = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(phone)
polycam_scene, ffmpeg_on_path = phone.polycam_scene, phone.ffmpeg_on_path  # shared fixtures (module-scoped here)

UNIT = 2.5e-4
"""Metres per stored depth value in the variant scenes: neither nerfstudio's default nor the refiner's old mm."""
DEPTH_FACTOR = 4
"""The variants' depth maps are this many times smaller than their images (rounded down)."""
HOLE = (slice(20, 40), slice(50, 80))
"""A block of missing depth (at the depth's resolution) for the prior to fill."""


def _frame_camera(frame: dict) -> tuple[np.ndarray, tuple[int, int], np.ndarray]:
    """A frame's own intrinsics, (height, width) and OpenCV camera-to-world, read straight from transforms.json."""
    K = np.array([[frame["fl_x"], 0, frame["cx"]], [0, frame["fl_y"], frame["cy"]], [0, 0, 1.0]])
    return K, (int(frame["h"]), int(frame["w"])), np.asarray(frame["transform_matrix"]) @ OPENCV_TO_OPENGL


def _coarse_depth_variant(scene: Path, out: Path) -> Path:
    """The Polycam scene with its depth replaced by the room's exact depth at a quarter of the image size, stored in
    `UNIT` (declared as transforms.json's depth_unit_scale_factor), with a hole; images are the scene's."""
    meta = json.loads((scene / "transforms.json").read_text())
    out.mkdir()
    (out / "images").symlink_to((scene / "images").resolve())
    (out / "depth").mkdir()
    for frame in meta["frames"]:
        K, (h, w), c2w = _frame_camera(frame)
        dh, dw = h // DEPTH_FACTOR, w // DEPTH_FACTOR
        _, depth = phone.ROOM.render(np.diag([dw / w, dh / h, 1.0]) @ K, c2w, dh, dw)  # pixel corners scale
        depth[HOLE] = 0
        Image.fromarray(np.round(depth / UNIT).astype(np.uint16)).save(out / frame["depth_file_path"])
    meta["depth_unit_scale_factor"] = UNIT
    (out / "transforms.json").write_text(json.dumps(meta))
    return out


def _parse(data: Path, split: str = "train", **config):
    from diffnerf_ns.data.rgbd_dataparser import RgbdDataParserConfig
    from diffnerf_ns.data.rgbd_dataset import RGBDDataset

    outputs = RgbdDataParserConfig(data=data, **config).setup().get_dataparser_outputs(split)
    return outputs, RGBDDataset(outputs)


def test_load_scene_reads_a_polycam_scene_in_metres_with_each_frames_intrinsics(polycam_scene: Path) -> None:
    """Catches `load_scene` failing on nerfstudio's Polycam scenes (KeyError: they have no top-level fl_x / w / h),
    depth not in metres (a 1000x error), and one camera used for every frame: each frame's depth must be what the
    room shows through that frame's own intrinsics and pose."""
    scene = load_scene(polycam_scene)
    frames = json.loads((polycam_scene / "transforms.json").read_text())["frames"]
    assert len(frames) == len(scene.c2w) == phone.NUM_FRAMES - 1  # one blurry frame dropped
    for i, frame in enumerate(frames):
        K, size, c2w = _frame_camera(frame)
        np.testing.assert_array_equal(scene.K_of(i), K)
        assert scene.size_of(i) == size
        depth = scene.depth(i)
        raw = np.asarray(Image.open(polycam_scene / frame["depth_file_path"]))
        np.testing.assert_allclose(depth, raw / 1000.0, rtol=1e-6)
        truth = phone.ROOM.render(scene.K_of(i), scene.c2w[i], *scene.size_of(i))[1]
        error = np.abs(depth - truth)[depth > 0]  # depth upscaled 4x with nearest neighbour: mm on smooth surfaces
        assert np.median(error) < 0.01, (i, np.median(error))


def test_load_scene_takes_intrinsics_as_nerfstudio_does(polycam_scene: Path, tmp_path: Path) -> None:
    """Catches the first (or a top-level) camera used for every frame when frames' intrinsics differ, a per-frame
    value taken over a top-level one (nerfstudio's parser does the opposite: the top level wins), and `K` quietly
    returning one frame's intrinsics for a scene whose frames differ."""
    from nerfstudio.data.dataparsers.nerfstudio_dataparser import NerfstudioDataParserConfig

    meta = json.loads((polycam_scene / "transforms.json").read_text())
    for i, frame in enumerate(meta["frames"]):
        frame["fl_x"] += 3.0 * i
        frame["cx"] -= 1.5 * i
        frame["cy"] = 0.0  # overridden by the top level, as nerfstudio reads it
    meta["cy"] = 170.25
    for sub in ("images", "depth"):
        (tmp_path / sub).symlink_to((polycam_scene / sub).resolve())
    (tmp_path / "transforms.json").write_text(json.dumps(meta))
    scene = load_scene(tmp_path)
    config = NerfstudioDataParserConfig(
        data=tmp_path,
        orientation_method="none",
        center_method="none",
        auto_scale_poses=False,
        downscale_factor=1,
        eval_mode="all",
    )
    theirs = config.setup().get_dataparser_outputs("train")  # nerfstudio sorts frames by name; match by name
    K_of_image = dict(zip(theirs.image_filenames, theirs.cameras.get_intrinsics_matrices().numpy(), strict=True))
    for i, path in enumerate(scene.image_paths):
        np.testing.assert_allclose(scene.K_of(i), K_of_image[path], rtol=1e-6)
        assert scene.K_of(i)[1, 2] == 170.25
    assert len({float(K[0, 0]) for K in scene.Ks}) == len(scene.Ks)
    with pytest.raises(ValueError, match="differ between frames"):
        _ = scene.K


def test_load_scene_reads_depth_in_the_scenes_unit_at_its_own_resolution(polycam_scene: Path, tmp_path: Path) -> None:
    """Catches `depth_unit_scale_factor` ignored (depth read as millimetres: 4x off here), depth at a lower
    resolution than the images back-projected with the image's intrinsics (points 4x off), and RGB not brought to
    the depth's size for refinement."""
    variant = _coarse_depth_variant(polycam_scene, tmp_path / "variant")
    scene = load_scene(variant)
    assert scene.depth_unit == UNIT
    for i in range(len(scene.c2w)):
        h, w = scene.size_of(i)
        depth = scene.depth(i)
        assert depth.shape == (h // DEPTH_FACTOR, w // DEPTH_FACTOR)
        truth = phone.ROOM.render(scene.depth_K(i), scene.c2w[i], *depth.shape)[1]
        valid = depth > 0
        assert not valid[HOLE].any() and valid.mean() > 0.9
        np.testing.assert_allclose(depth[valid], truth[valid], atol=UNIT)
        rgb, rgbd_depth, K = scene.rgbd(i)
        assert rgb.shape == (*depth.shape, 3) and rgb.dtype == np.uint8
        np.testing.assert_array_equal(rgbd_depth, depth)
        np.testing.assert_array_equal(K, scene.depth_K(i))
        full = scene.rgb(i)
        np.testing.assert_array_equal(rgb, cv2.resize(full, depth.shape[::-1], interpolation=cv2.INTER_AREA))
    # Every back-projected point lies on the room: project them into frame 0 at full resolution.
    points = scene.world_points(stride=4)
    c2w = scene.c2w[0]
    cam = (points - c2w[:3, 3]) @ c2w[:3, :3]
    in_front = cam[:, 2] > 0.1
    K0 = scene.K_of(0)
    u = K0[0, 0] * cam[in_front, 0] / cam[in_front, 2] + K0[0, 2]
    v = K0[1, 1] * cam[in_front, 1] / cam[in_front, 2] + K0[1, 2]
    h, w = scene.size_of(0)
    inside = (u >= 0) & (u < w) & (v >= 0) & (v < h)
    truth0 = phone.ROOM.render(K0, c2w, h, w)[1]
    z_true = truth0[v[inside].astype(int), u[inside].astype(int)]
    # Points of other frames may be occluded from frame 0 (nearer than its surface is impossible, farther is not).
    assert np.median(np.abs(cam[in_front, 2][inside] - z_true)) < 0.02


def test_refine_a_polycam_scene_and_train_on_the_refined_depth(polycam_scene: Path, tmp_path: Path) -> None:
    """Catches `diffnerf-prior refine` failing on a scene with per-frame intrinsics and 4x coarser depth,
    layers written at the image's size instead of the depth's (or rejected by a check against top-level w/h),
    refined depth written in millimetres while the scene stores 0.25 mm (the dataset would read it 4x too
    small), and the dataparser not honouring the scene's depth unit for raw or refined depth."""
    from diffnerf_ns.prior.model import RGBDPrior
    from diffnerf_ns.prior.presets import PRIOR_PRESETS
    from diffnerf_ns.prior.refine import REFINED_LAYERS, RefineConfig, refine_scene

    variant = _coarse_depth_variant(polycam_scene, tmp_path / "variant")
    tiny = PRIOR_PRESETS["test"]
    torch.manual_seed(0)
    prior = RGBDPrior.create(tiny.patch_size, tiny.block_out_channels, tiny.layers_per_block, tiny.attention)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a tiny UNet on a shared CPU: extra threads only spin-wait
    try:
        refine_scene(prior, variant, RefineConfig(steps=2, samples=2, overlap=4))
    finally:
        torch.set_num_threads(threads)
    frames = json.loads((variant / "transforms.json").read_text())["frames"]
    for frame in frames:
        assert all(key in frame for key in REFINED_LAYERS)
        raw = np.asarray(Image.open(variant / frame["depth_file_path"]))
        refined = np.asarray(Image.open(variant / frame["refined_depth_file_path"]))
        confidence = np.asarray(Image.open(variant / frame["depth_confidence_file_path"]))
        depth_size = (int(frame["h"]) // DEPTH_FACTOR, int(frame["w"]) // DEPTH_FACTOR)
        assert refined.shape == confidence.shape == raw.shape == depth_size
        np.testing.assert_array_equal(refined[raw > 0], raw[raw > 0])  # observations kept, in the scene's unit
        assert (refined[HOLE] > 0).all()  # the prior filled the hole

    _, raw_data = _parse(variant)
    outputs, refined_data = _parse(variant, depth_source="refined")
    assert outputs.metadata["depth_unit_scale_factor"] == UNIT
    scene = load_scene(variant)
    index_of = {p.name: i for i, p in enumerate(scene.image_paths)}
    for i in range(len(refined_data)):
        raw_item, item = raw_data.get_metadata({"image_idx": i}), refined_data.get_metadata({"image_idx": i})
        depth, raw_depth = item["depth_image"][..., 0].numpy(), raw_item["depth_image"][..., 0].numpy()
        k = index_of[Path(refined_data.image_filenames[i]).name]
        h, w = scene.size_of(k)
        assert depth.shape == (h, w)
        truth = phone.ROOM.render(scene.K_of(k), scene.c2w[k], h, w)[1]
        observed = raw_depth > 0
        np.testing.assert_array_equal(depth[observed], raw_depth[observed])
        # Both in metres: coarse exact depth, nearest-upsampled, against the full-resolution truth.
        assert np.median(np.abs(raw_depth - truth)[observed]) < 0.01
        hole = ~observed
        assert hole.sum() > 5000 and (depth[hole] > 0).all() and np.isfinite(depth).all()
        assert np.median(item["depth_confidence"][..., 0].numpy()[hole]) < 1


def test_a_depth_unit_given_against_the_scenes_is_an_error(polycam_scene: Path, tmp_path: Path) -> None:
    """Catches `--depth-unit-scale-factor` silently overriding the unit a scene declares (or being silently
    ignored): one of them is wrong, and depth 10x off trains without complaint."""
    variant = _coarse_depth_variant(polycam_scene, tmp_path / "variant")
    with pytest.raises(ValueError, match="depth_unit_scale_factor"):
        _parse(variant, depth_unit_scale_factor=10 * UNIT)
    outputs, _ = _parse(variant, depth_unit_scale_factor=UNIT)  # agreeing with the scene is fine
    assert outputs.metadata["depth_unit_scale_factor"] == UNIT


def test_polycam_folder_export_confidence_weights_the_depth_loss(polycam_scene: Path, tmp_path: Path) -> None:
    """Catches Polycam's confidence lost when `ns-process-data polycam --data` was given the unzipped export folder
    (nothing is extracted into the scene then, and transforms.json does not say where the export was), and a
    neighbouring export of another capture taken for the scene's (its depth maps are not the scene's)."""
    from nerfstudio.scripts.process_data import ProcessPolycam

    from data_converters.phone import find_polycam_export

    export = tmp_path / "my_capture"
    shutil.copytree(polycam_scene / "capture", export)
    decoy = tmp_path / "other_capture"
    shutil.copytree(export, decoy)
    for path in (decoy / "keyframes" / "depth").iterdir():
        Image.fromarray((np.asarray(Image.open(path)) + 100).astype(np.uint16)).save(path)
    scene = tmp_path / "my_capture_scene"
    ProcessPolycam(data=export, output_dir=scene, use_depth=True, crop_border_pixels=phone.CROP).main()
    assert not list(scene.glob("*/keyframes"))  # a folder input leaves the export where it was
    assert find_polycam_export(scene) == export / "keyframes"
    _, dataset = _parse(scene)
    for i in range(len(dataset)):
        item = dataset.get_metadata({"image_idx": i})
        source = int(Path(dataset.image_filenames[i]).stem.split("_")[1]) - 1  # nerfstudio's frame_{i + 1:05d}
        h, w = item["depth_image"].shape[:2]
        rows, cols = (np.arange(h) + phone.CROP) // 4, (np.arange(w) + phone.CROP) // 4
        expected = phone._confidence_levels(source)[rows][:, cols] / 2
        np.testing.assert_allclose(item["depth_confidence"][..., 0].numpy(), expected, atol=1e-4)
