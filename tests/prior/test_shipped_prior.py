"""The shipped prior: found where the package installs it, every file of it packaged, a clear error without it."""

from __future__ import annotations

import fnmatch
import json
from pathlib import Path

import numpy as np
import pytest
import tyro

from data_converters.nerfstudio_scene import RGBDFrame, write_scene
from data_converters.synthetic.demo_scene import scaled_intrinsics
from diffnerf_ns.prior import cli as prior_cli
from diffnerf_ns.prior import shipped
from diffnerf_ns.prior.cli import Command
from diffnerf_ns.prior.model import RGBDPrior

tomllib = pytest.importorskip("tomllib")  # Python >= 3.11
ROOT = Path(__file__).resolve().parents[2]


def _package_data_globs() -> list[str]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    return config["tool"]["setuptools"]["package-data"]["diffnerf_ns.prior"]


def _matches(relative: str, pattern: str) -> bool:
    """setuptools' recursive glob: `**/` also matches no folder at all."""
    return fnmatch.fnmatch(relative, pattern) or fnmatch.fnmatch(relative, pattern.replace("**/", ""))


def test_every_file_of_a_saved_prior_is_package_data(tmp_path) -> None:
    """Catches package-data globs that miss part of a prior (model_index.json at the top, the scheduler's
    config, the safetensors weights): the installed package would then ship a prior that cannot load."""
    folder = tmp_path / "pretrained"
    RGBDPrior.create(16, (16, 32), 1, False).save_pretrained(folder)
    files = [p.relative_to(tmp_path).as_posix() for p in folder.rglob("*") if p.is_file()]
    assert any(f.endswith(".safetensors") for f in files) and "pretrained/model_index.json" in files
    globs = _package_data_globs()
    missed = [f for f in files if not any(_matches(f, g) for g in globs)]
    assert not missed, f"not packaged by {globs}: {missed}"
    assert shipped.PACKAGED_PRIOR_DIR == ROOT / "diffnerf_ns" / "prior" / "pretrained"


def test_shipped_prior_is_found_and_loads(tmp_path, monkeypatch) -> None:
    """A prior saved (fp16, as shipped) into the package folder is the default and loads back."""
    folder = tmp_path / "pretrained"
    prior = RGBDPrior.create(16, (16, 32), 1, False)
    prior.unet.half()
    prior.save_pretrained(folder)
    monkeypatch.setattr(shipped, "PACKAGED_PRIOR_DIR", folder)
    assert shipped.default_prior_path() == folder == shipped.require_default_prior()
    assert RGBDPrior.from_pretrained(shipped.require_default_prior()).patch_size == 16


def test_absent_shipped_prior_says_how_to_get_one(tmp_path, monkeypatch) -> None:
    """Without a packaged prior: None, and an error naming the folder and the three ways out (not a bare
    FileNotFoundError from deep inside diffusers)."""
    monkeypatch.setattr(shipped, "PACKAGED_PRIOR_DIR", tmp_path / "pretrained")
    assert shipped.default_prior_path() is None
    with pytest.raises(FileNotFoundError) as err:
        shipped.require_default_prior()
    message = str(err.value)
    assert str(tmp_path / "pretrained") in message
    for way in ("--pipeline.model.regulariser.prior-path", "diffnerf-prior train", "diffnerf-prior fit-scene"):
        assert way in message


def test_refine_without_a_prior_uses_the_shipped_one(tmp_path, monkeypatch) -> None:
    """Catches `diffnerf-prior refine` spending minutes fitting a weaker per-scene prior although the package
    ships a trained one."""
    folder = tmp_path / "pretrained"
    RGBDPrior.create(16, (16, 32), 1, False).save_pretrained(folder)
    monkeypatch.setattr(prior_cli, "default_prior_path", lambda: folder)
    rng = np.random.default_rng(0)
    depth = rng.uniform(1.0, 3.0, (24, 32)).astype(np.float32)
    depth[5:9, 6:12] = 0
    frames = [RGBDFrame(rng.integers(0, 255, (24, 32, 3), dtype=np.uint8), depth, np.eye(4), "frame_00000")]
    scene = tmp_path / "scene"
    write_scene(scene, scaled_intrinsics(32, 24), 32, 24, frames, metadata={"source": "test"})
    tyro.cli(Command, args=["refine", "--scene", str(scene), "--sampling.steps", "2", "--sampling.samples", "2"]).main()
    frame = json.loads((scene / "transforms.json").read_text())["frames"][0]
    assert (scene / frame["refined_depth_file_path"]).is_file()
    assert not (scene / "prior").exists()
