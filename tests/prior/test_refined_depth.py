"""Supervision with prior-refined depth: the nyu dataparser swaps it in, weighted by its confidence."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
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
