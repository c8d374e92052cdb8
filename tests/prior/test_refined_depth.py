"""Supervision with prior-refined depth: the nyu dataparser swaps it in, weighted by its confidence."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from data_converters.nerfstudio_scene import depth_to_png_mm, read_depth_png
from diffnerf_ns.data.rgbd_dataparser import RgbdDataParserConfig
from diffnerf_ns.data.rgbd_dataset import RGBDDataset


def with_refined_depth(demo_scene: Path, out: Path) -> Path:
    """A copy of the demo scene where even frames have 'refined' depth (+5 cm) and a confidence map."""
    shutil.copytree(demo_scene, out)
    meta = json.loads((out / "transforms.json").read_text())
    (out / "depth_refined").mkdir()
    (out / "depth_confidence").mkdir()
    for i, frame in enumerate(meta["frames"]):
        if i % 2:
            continue
        name = Path(frame["depth_file_path"]).name
        depth = read_depth_png(out / frame["depth_file_path"])
        Image.fromarray(depth_to_png_mm(depth + 0.05)).save(out / "depth_refined" / name)
        conf = np.zeros(depth.shape, np.uint16)
        conf[:, depth.shape[1] // 2 :] = 65535  # right half trusted, left half not
        Image.fromarray(conf).save(out / "depth_confidence" / name)
        frame["refined_depth_file_path"] = f"depth_refined/{name}"
        frame["depth_confidence_file_path"] = f"depth_confidence/{name}"
    (out / "transforms.json").write_text(json.dumps(meta))
    return out


def test_refined_depth_and_confidence_reach_the_batch(demo_scene: Path, tmp_path: Path) -> None:
    scene = with_refined_depth(demo_scene, tmp_path / "scene")
    parser = RgbdDataParserConfig(data=scene, depth_source="refined").setup()
    dataset = RGBDDataset(parser.get_dataparser_outputs("train"))
    raw_parser = RgbdDataParserConfig(data=scene).setup()
    raw = RGBDDataset(raw_parser.get_dataparser_outputs("train"))
    refined_seen = raw_seen = 0
    for i, path in enumerate(dataset.depth_filenames):
        got, base = dataset.get_metadata({"image_idx": i}), raw.get_metadata({"image_idx": i})
        valid = base["depth_image"] > 0
        diff = (got["depth_image"] - base["depth_image"])[valid]
        conf = got["depth_confidence"][..., 0]
        if "depth_refined" in str(path):
            refined_seen += 1
            assert torch.allclose(diff, torch.full_like(diff, 0.05), atol=2e-3)
            assert conf[:, :32].max() == 0 and conf[:, 32:].min() == 1
        else:
            raw_seen += 1
            assert torch.allclose(diff, torch.zeros_like(diff)) and conf.min() == 1
    assert refined_seen > 0 and raw_seen > 0


def _downscaled_copies(scene: Path, factor: int) -> None:
    """`images_N/` and `depths_N/` as `ns-process-data --num-downscales` writes them (nearest for depth)."""
    meta = json.loads((scene / "transforms.json").read_text())
    for frame in meta["frames"]:
        for key, folder, resample in (
            ("file_path", "images", Image.BILINEAR),
            ("depth_file_path", "depths", Image.NEAREST),
        ):
            source = Image.open(scene / frame[key])
            (scene / f"{folder}_{factor}").mkdir(exist_ok=True)
            size = (source.width // factor, source.height // factor)
            source.resize(size, resample).save(scene / f"{folder}_{factor}" / Path(frame[key]).name)


@pytest.mark.parametrize(
    "flags",
    [
        {"downscale_factor": 2},
        {"downscale_factor": 4},
        {"eval_mode": "fraction"},
        {"eval_mode": "all"},
        {"scale_factor": 0.5},
        {"orientation_method": "up"},
    ],
    ids=lambda flags: "-".join(f"{k}={v}" for k, v in flags.items()),
)
def test_refined_depth_with_common_dataparser_flags(demo_scene: Path, tmp_path: Path, flags: dict) -> None:
    """Catches refined layers looked up by the full-resolution image path while nerfstudio hands out
    `images_N/` paths (`--downscale-factor 2` raised KeyError), and any flag that makes a frame lose its
    refined depth or take another frame's."""
    scene = with_refined_depth(demo_scene, tmp_path / "scene")
    if "downscale_factor" in flags:
        _downscaled_copies(scene, flags["downscale_factor"])
    outputs = RgbdDataParserConfig(data=scene, depth_source="refined", **flags).setup().get_dataparser_outputs()
    meta = json.loads((scene / "transforms.json").read_text())
    refined_names = {Path(f["file_path"]).name for f in meta["frames"] if "refined_depth_file_path" in f}
    for image, depth in zip(outputs.image_filenames, outputs.metadata["depth_filenames"], strict=True):
        assert ("depth_refined" in str(depth)) == (Path(image).name in refined_names)
        assert Path(depth).name == Path(image).name
    dataset = RGBDDataset(outputs)
    item = dataset[0]
    assert item["depth_image"].shape[:2] == item["image"].shape[:2] == item["depth_confidence"].shape[:2]


def test_eval_splits_and_scene_box_use_raw_depth(demo_scene: Path, tmp_path: Path) -> None:
    """Catches held-out views scored against the prior's fills (refined depth in the eval split) and a box fitted
    to refined depth for one method but to raw depth for its no-prior ablation (refined here is raw + 5 cm, so
    either bug changes a filename or the box)."""
    scene = with_refined_depth(demo_scene, tmp_path / "scene")
    boxes = {}
    for source in ("raw", "refined"):
        parser = RgbdDataParserConfig(data=scene, depth_source=source).setup()
        for split in ("train", "val", "test"):
            outputs = parser.get_dataparser_outputs(split)
            boxes[source, split] = outputs.scene_box.aabb
            if split != "train":
                assert not any("depth_refined" in str(p) for p in outputs.metadata["depth_filenames"])
                assert "depth_confidence_filenames" not in outputs.metadata
    reference = boxes["raw", "train"]
    for key, box in boxes.items():
        assert torch.equal(box, reference), key
