"""Labeled-file reader on a small .mat written in the same HDF5 layout, and the real splits.mat."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest

from data_converters.nerfstudio_scene import load_scene, to_nerfstudio_intrinsics
from data_converters.nyu import calibration as cal
from data_converters.nyu.labeled import LabeledNYU, export_labeled_scene, read_splits
from data_converters.nyu.raw_reader import NYUFormatError
from data_converters.resolve import ensure_nerfstudio_scene
from data_converters.synthetic.room import RoomScene, handheld_trajectory
from diffnerf_ns.metrics import absolute_trajectory_error

SCENES = ["living_room_0001"] * 4 + ["kitchen_0002"]


def _write_strings(f: h5py.File, key: str, values: list[str]) -> None:
    """MATLAB v7.3 cell of strings: object references to (len, 1) uint16 char arrays in #refs#."""
    refs = f.require_group("#refs#")
    ds = f.create_dataset(key, (1, len(values)), dtype=h5py.ref_dtype)
    for i, value in enumerate(values):
        chars = refs.create_dataset(f"{key}_{i}", data=np.array([ord(c) for c in value], np.uint16).reshape(-1, 1))
        ds[0, i] = chars.ref


@pytest.fixture(scope="module")
def labeled_mat(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[np.ndarray], np.ndarray]:
    """Five rendered frames (undistorted RGB camera, white border like the real file), two scenes."""
    scene = RoomScene.default()
    poses = handheld_trajectory(40, seed=3, arc_degrees=60)[[0, 3, 6, 9, 30]]
    K = cal.K_RGB.copy()
    K[:2, 2] += 0.5  # RoomScene samples pixel centres at +0.5
    rgbs, depths = [], []
    for c2w in poses:
        rgb, depth = scene.render(K, c2w, cal.HEIGHT, cal.WIDTH)
        rgb8 = np.full((cal.HEIGHT, cal.WIDTH, 3), 255, np.uint8)
        rgb8[cal.CROP_ROWS, cal.CROP_COLS] = (rgb * 255 + 0.5).astype(np.uint8)[cal.CROP_ROWS, cal.CROP_COLS]
        rgbs.append(rgb8)
        depths.append(depth)
    rgbs[0][100, 500] = (255, 0, 0)  # an asymmetric marker: a rot90 or flip would move it
    raw_depths = [np.where((np.arange(cal.WIDTH) % 17 == 0)[None, :], 0, d).astype(np.float32) for d in depths]
    path = tmp_path_factory.mktemp("labeled") / "nyu_depth_v2_labeled.mat"
    with h5py.File(path, "w") as f:
        f.create_dataset("images", data=np.stack([im.T for im in rgbs]))  # (N, 3, 640, 480) as h5py sees it
        f.create_dataset("depths", data=np.stack([d.T for d in depths]))
        f.create_dataset("rawDepths", data=np.stack([d.T for d in raw_depths]))
        f.create_dataset("accelData", data=np.zeros((4, len(rgbs))))
        _write_strings(f, "scenes", SCENES)
        _write_strings(f, "sceneTypes", ["living_room"] * 4 + ["kitchen"])
        _write_strings(f, "rawRgbFilenames", [f"{s}/r-13151667{i:02d}.000000-1.ppm" for i, s in enumerate(SCENES)])
        _write_strings(f, "rawDepthFilenames", [f"{s}/d-13151667{i:02d}.000000-1.pgm" for i, s in enumerate(SCENES)])
    return path, rgbs, poses


def test_reads_frames_and_strings(labeled_mat: tuple[Path, list[np.ndarray], np.ndarray]) -> None:
    path, rgbs, _ = labeled_mat
    with LabeledNYU(path) as labeled:
        assert len(labeled) == 5
        assert labeled.scenes == SCENES and labeled.scene_types[-1] == "kitchen"
        assert labeled.raw_depth_filenames[1] == "living_room_0001/d-1315166701.000000-1.pgm"
        frame = labeled.frame(0)
        assert frame.rgb.shape == (480, 640, 3) and frame.depth.shape == (480, 640)
        np.testing.assert_array_equal(frame.rgb, rgbs[0])  # plain transpose, marker in place
        assert tuple(frame.rgb[100, 500]) == (255, 0, 0)
        assert (frame.raw_depth[:, ::17] == 0).all() and (frame.depth > 0).all()
        assert labeled.scene_indices("living_room_0001") == [0, 1, 2, 3]
        streamed = labeled.iter_frames([4, 1])
        assert [f.index for f in streamed] == [4, 1]


def test_unknown_scene_and_wrong_files(labeled_mat: tuple[Path, list[np.ndarray], np.ndarray], tmp_path: Path) -> None:
    path, _, _ = labeled_mat
    with LabeledNYU(path) as labeled, pytest.raises(NYUFormatError, match=r"nyu_depth_v2_labeled\.mat.*'bedroom_9999'"):
        labeled.scene_indices("bedroom_9999")
    other = tmp_path / "other.mat"
    with h5py.File(other, "w") as f:
        f.create_dataset("images", data=np.zeros((1, 3, 4, 4), np.uint8))
    with pytest.raises(NYUFormatError, match=r"other\.mat: not the NYU labeled file.*depths"):
        LabeledNYU(other)
    text = tmp_path / "text.mat"
    text.write_text("MATLAB 5.0 MAT-file")
    with pytest.raises(NYUFormatError, match=r"text\.mat: not an HDF5"):
        LabeledNYU(text)
    with pytest.raises(NYUFormatError, match=r"missing\.mat: file is missing"):
        LabeledNYU(tmp_path / "missing.mat")


def test_export_scene_is_posed(labeled_mat: tuple[Path, list[np.ndarray], np.ndarray], tmp_path: Path) -> None:
    path, _, poses = labeled_mat
    out = export_labeled_scene(path, "living_room_0001", tmp_path / "lr", progress=False)
    scene = load_scene(out)
    meta = json.loads((out / "metadata.json").read_text())
    assert meta["frames_in_scene"] == 4 and meta["frames_written"] == 4 and not meta["dropped"]
    assert (scene.width, scene.height) == (561, 427)
    np.testing.assert_allclose(scene.K, to_nerfstudio_intrinsics(cal.cropped_rgb_intrinsics()))
    assert (scene.rgb(0) < 255).any(axis=-1).mean() > 0.99  # the white border is cropped away
    assert absolute_trajectory_error(scene.c2w, poses[:4]) < 0.01
    with pytest.raises(NYUFormatError, match="needs a scene name"):
        ensure_nerfstudio_scene(path)
    cached = ensure_nerfstudio_scene(path, cache_dir=tmp_path / "cache", scene_name="kitchen_0002")
    assert cached == tmp_path / "cache" / "kitchen_0002_nerfstudio" and len(load_scene(cached).c2w) == 1


def test_official_splits(fixtures_dir: Path) -> None:
    path = fixtures_dir / "nyu_splits" / "splits.mat"
    if not path.is_file():
        pytest.skip(f"{path} is absent")
    splits = read_splits(path)
    assert len(splits["train"]) == 795 and len(splits["test"]) == 654
    assert np.union1d(splits["train"], splits["test"]).tolist() == list(range(1449))  # 0-based, disjoint, complete
    with pytest.raises(NYUFormatError, match=r"splits\.mat: not an HDF5"):
        LabeledNYU(path)
