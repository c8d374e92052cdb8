"""Every capture layout trains through nerfstudio: Trainer.train() on SUN3D, and `ns-train diffnerf --data`."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from diffnerf_ns.depth_convention import ray_to_z_depth

BIN = Path(sys.executable).parent
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "COLUMNS": "200", "OMP_NUM_THREADS": "1"}


def _link_tree(src: Path, dst: Path, every: int = 1) -> Path:
    """A capture copy made of symlinks (conversion writes its cache beside the input, never into fixtures)."""
    dst.mkdir(parents=True)
    for path in sorted(src.iterdir()):
        if path.is_dir():
            _link_tree(path, dst / path.name, every)
        elif every == 1 or not path.name.startswith("frame-") or int(path.name[6:12]) % every == 0:
            (dst / path.name).symlink_to(path.resolve())
    return dst


def heldout_depth_error(pipeline, downscale: int = 8) -> float:
    """Median |rendered z - sensor z| (metres) over the held-out frames, rendered at 1/downscale size."""
    dataset = pipeline.datamanager.eval_dataset
    errors = []
    for i in range(len(dataset)):
        camera = dataset.cameras[i : i + 1].to(pipeline.device)
        camera.rescale_output_resolution(1.0 / downscale)
        gt = dataset.get_metadata({"image_idx": i})["depth_image"][..., 0]
        gt = gt[downscale // 2 :: downscale, downscale // 2 :: downscale][: int(camera.height), : int(camera.width)]
        with torch.no_grad():
            out = pipeline.model.get_outputs_for_camera(camera)
        z = ray_to_z_depth(out["depth"], out["directions_norm"])[..., 0].cpu()
        valid = gt > 0
        errors.append((z[valid] - gt[valid]).abs())
    return float(torch.cat(errors).median())


def test_dataparser_converts_once_without_changing_its_config(fixtures_dir: Path, tmp_path: Path) -> None:
    """Catches: the parser assigning the cache path to config.data (a saved config.yml would lose the
    user's capture), a second split converting again, and the `nyu` alias pointing elsewhere."""
    from nerfstudio.plugins.registry_dataparser import discover_dataparsers

    from diffnerf_ns.data.rgbd_dataparser import RgbdDataParserConfig

    capture = _link_tree(fixtures_dir / "icl_nuim_5", tmp_path / "icl")
    parser = RgbdDataParserConfig(data=capture).setup()
    train = parser.get_dataparser_outputs("train")
    stamp = (tmp_path / "icl_nerfstudio" / "transforms.json").stat().st_mtime_ns
    val = parser.get_dataparser_outputs("val")
    assert parser.config.data == capture
    assert (tmp_path / "icl_nerfstudio" / "transforms.json").stat().st_mtime_ns == stamp
    assert len(train.image_filenames) == 4 and len(val.image_filenames) == 1
    assert all(Path(p).parent == tmp_path / "icl_nerfstudio" / "images" for p in train.image_filenames)
    configs, _ = discover_dataparsers()
    assert type(configs["nyu"]) is RgbdDataParserConfig and type(configs["rgbd"]) is RgbdDataParserConfig


@pytest.mark.slow
def test_sun3d_given_poses_trains_and_heldout_depth_improves(fixtures_dir: Path, tmp_path: Path) -> None:
    """Catches: given poses in the wrong convention or world (held-out depth would not improve), depth in
    the wrong unit, the dataparser rewriting its own config.data to the cache (a saved config would then
    no longer name the user's capture). 30 steps take the held-out median error from 2.3 m to 0.7 m."""
    from nerfstudio.engine.trainer import Trainer

    from diffnerf_ns.diffnerf_config import diffnerf_method
    from diffnerf_ns.presets import configure_run

    torch.manual_seed(0)
    capture = _link_tree(fixtures_dir / "sun3d_study_100", tmp_path / "sun3d", every=5)
    config = configure_run(diffnerf_method.config, capture, tmp_path / "runs", iterations=30, rays_per_batch=512)
    trainer = Trainer(config)
    trainer.setup()
    assert trainer.pipeline.datamanager.dataparser.config.data == capture
    before = heldout_depth_error(trainer.pipeline)
    trainer.train()
    after = heldout_depth_error(trainer.pipeline)
    assert after < 0.7 * before, (before, after)
    meta = json.loads((tmp_path / "sun3d_nerfstudio" / "metadata.json").read_text())
    assert meta["poses"].startswith("given") and meta["frames_written"] == 20


def _tum(fixtures: Path, root: Path) -> Path:
    (root / "rgb").mkdir(parents=True)
    (root / "depth").mkdir()
    for k in range(6):
        shutil.copy(fixtures / "other_sensors" / "TUM_color.png", root / "rgb" / f"{k}.png")
        shutil.copy(fixtures / "other_sensors" / "TUM_depth.png", root / "depth" / f"{k}.png")
    (root / "rgb.txt").write_text("".join(f"{k / 30:.6f} rgb/{k}.png\n" for k in range(6)))
    (root / "depth.txt").write_text("".join(f"{k / 30 + 0.003:.6f} depth/{k}.png\n" for k in range(6)))
    return root


def _plain(fixtures: Path, root: Path) -> Path:
    shutil.copytree(fixtures / "icl_nuim_5" / "color", root / "color")
    shutil.copytree(fixtures / "icl_nuim_5" / "depth", root / "depth")
    (root / "intrinsics.txt").write_text("525 0 319.5\n0 525 239.5\n0 0 1\n")
    return root


LAYOUTS = {
    "redwood": lambda fx, root: _link_tree(fx / "icl_nuim_5", root),
    "threedmatch": lambda fx, root: _link_tree(fx / "sun3d_study_100", root, every=10),
    "tum": _tum,
    "plain": _plain,
}


@pytest.mark.parametrize(
    "layout", [pytest.param(name, marks=[] if name == "redwood" else [pytest.mark.slow]) for name in LAYOUTS]
)
def test_ns_train_any_layout_without_flags(layout: str, fixtures_dir: Path, tmp_path: Path) -> None:
    """Catches: a layout the dataparser cannot detect, a conversion that needs a layout flag, a cache that
    is not written beside the capture. Only run-size flags are passed, no data flags."""
    data = LAYOUTS[layout](fixtures_dir, tmp_path / "capture")
    args = ["ns-train", "diffnerf", "--data", str(data), "--output-dir", str(tmp_path / "runs"), "--vis", "tensorboard"]
    args += ["--max-num-iterations", "2", "--pipeline.datamanager.train-num-rays-per-batch", "64"]
    proc = subprocess.run([str(BIN / args[0]), *args[1:]], capture_output=True, text=True, timeout=600, env=ENV)
    assert proc.returncode == 0, proc.stderr[-3000:]
    meta = json.loads((tmp_path / "capture_nerfstudio" / "metadata.json").read_text())
    assert meta["source"] == f"RGB-D capture, {layout} layout"
    assert list((tmp_path / "runs").rglob("*.ckpt"))


@pytest.mark.parametrize("mode, expected_ratio", [("measure", 0.8), ("apply", 1.0)])
def test_dataparser_trajectory_scale_reaches_the_conversion(
    mode: str, expected_ratio: float, fixtures_dir: Path, tmp_path: Path
) -> None:
    """SUN3D fragment 2 with its given path planted 20% short, parsed with `trajectory-scale measure|apply`: the
    training cameras' path keeps the planted length, or gets back the length the depth agrees with. Catches: the
    flag not passed to the conversion (a no-op), and a cache converted under one mode reused for the other."""
    from data_converters.trajectory_scale import scaled
    from diffnerf_ns.data.rgbd_dataparser import RgbdDataParserConfig
    from diffnerf_ns.metrics import path_length_ratio

    source = fixtures_dir / "sun3d_study_100"
    frames = tmp_path / "planted" / "fragment-2-rgbd-frames"
    frames.mkdir(parents=True)
    (frames.parent / "camera-intrinsics.txt").symlink_to((source / "camera-intrinsics.txt").resolve())
    pose_files = sorted((source / frames.name).glob("*.pose.txt"))
    given = np.stack([np.loadtxt(path) for path in pose_files])
    for path in (source / frames.name).iterdir():
        if not path.name.endswith(".pose.txt"):
            (frames / path.name).symlink_to(path.resolve())
    for path, short in zip(pose_files, scaled(given, 0.8), strict=True):
        np.savetxt(frames / path.name, short)
    capture = frames.parent
    for other in ("apply" if mode == "measure" else "measure", mode):  # the last conversion is the one scored
        config = RgbdDataParserConfig(
            data=capture, depth_alignment="off", trajectory_scale=other, eval_mode="all", cache_dir=tmp_path / "cache"
        )
        outputs = config.setup().get_dataparser_outputs("train")
    assert len(outputs.image_filenames) == len(given)
    ratio = path_length_ratio(outputs.cameras.camera_to_worlds.numpy(), given)
    assert abs(ratio - expected_ratio) < 0.03, ratio
