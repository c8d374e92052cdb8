"""A GPU run's prior kept between sessions: model card history, one copy only, size limit, continued schedule."""

from __future__ import annotations

import io
import json
import math
import shutil
import tarfile
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from benchmarks import ship_prior, train_default_prior
from diffnerf_ns.prior.model import RGBDPrior
from diffnerf_ns.prior.model_card import TrainingRun, cumulative_steps, read_runs, write_card
from diffnerf_ns.prior.presets import PRIOR_PRESETS
from diffnerf_ns.prior.train import TrainConfig, _lr_schedule


def _run(steps: int) -> TrainingRun:
    return TrainingRun("2026-12-04", "NVIDIA H200", steps, 4.6, 256, 3110.0, "corpus + SUN3D", "bash x.sh")


def test_card_round_trip_sums_every_run(tmp_path: Path) -> None:
    """Catches a card whose front matter does not parse back, or a step count that keeps only the last run
    (the next run would then restart its schedule and EMA warm-up)."""
    write_card(tmp_path, [_run(2975), _run(4000)], "48 px")
    assert read_runs(tmp_path) == [_run(2975), _run(4000)]
    assert cumulative_steps(tmp_path) == 6975
    text = (tmp_path / "README.md").read_text()
    assert text.startswith("---\nlibrary_name: diffusers") and "6,975 steps" in text
    assert cumulative_steps(tmp_path / "none") == 0


def _returned_parts(tmp_path: Path, steps: int) -> Path:
    """What a GPU session returns: a tiny fp16 prior with its stats, as split tar parts."""
    folder = tmp_path / "work" / "default_prior"
    prior = RGBDPrior.create(16, (16, 32), 1, False)
    prior.unet.half()
    prior.save_pretrained(folder)
    stats = {"steps": steps, "seconds": 60.0, "patches_per_second": 100.0, "device": "cpu", "device_name": "cpu"}
    (folder / "train_stats.json").write_text(json.dumps(stats))
    (folder / "train_config.json").write_text(json.dumps({"batch_size": 4}))
    (folder / train_default_prior.DATA_FILE).write_text("2 synthetic frames\n")
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        tar.add(folder, arcname="default_prior")
    parts = tmp_path / f"returned-{steps}"
    parts.mkdir()
    data = buffer.getvalue()
    half = len(data) // 2
    (parts / "prior.tar.part-aa").write_bytes(data[:half])
    (parts / "prior.tar.part-ab").write_bytes(data[half:])
    return parts


@pytest.fixture
def homes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    checkpoint, package = tmp_path / "prior_checkpoint", tmp_path / "pretrained"
    monkeypatch.setattr(train_default_prior, "CHECKPOINT_DIR", checkpoint)
    monkeypatch.setattr(ship_prior, "CHECKPOINT_DIR", checkpoint)
    monkeypatch.setattr(ship_prior, "PACKAGED_PRIOR_DIR", package)
    monkeypatch.setattr(train_default_prior, "default_prior_path", lambda: package if package.is_dir() else None)
    return checkpoint, package


def test_ship_keeps_one_carded_copy_and_continues_its_history(tmp_path: Path, homes: tuple[Path, Path]) -> None:
    """Catches copying the run's scratch files (stats, config) into the package, leaving the prior in two places
    (it would travel twice to the GPU machine), or a second run's card forgetting the first run."""
    checkpoint, package = homes
    ship_prior.main(ship_prior.Ship(parts=_returned_parts(tmp_path, 30)))
    assert sorted(p.name for p in checkpoint.iterdir()) == ["README.md", "model_index.json", "scheduler", "unet"]
    assert train_default_prior.continue_from() == checkpoint and cumulative_steps(checkpoint) == 30
    assert read_runs(checkpoint)[0].data == "2 synthetic frames"

    ship_prior.main(ship_prior.Ship(parts=_returned_parts(tmp_path, 12), package=True))
    assert not checkpoint.exists() and (package / "README.md").is_file()
    assert train_default_prior.continue_from() == package and cumulative_steps(package) == 42
    assert RGBDPrior.from_pretrained(package).patch_size == 16


def test_ship_refuses_a_prior_over_the_package_limit(
    tmp_path: Path, homes: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Catches a size check that never runs: an oversized prior must stop before anything is copied."""
    monkeypatch.setattr(ship_prior, "SHIPPABLE_MB", 0.001)
    with pytest.raises(SystemExit, match="over the 0.001 MB package limit"):
        ship_prior.main(ship_prior.Ship(parts=_returned_parts(tmp_path, 30)))
    assert not homes[0].exists()


def test_continued_schedule_skips_the_warm_up_it_already_had() -> None:
    """Catches a continued run that restarts the warm-up at lr ~0 (every GPU session would then spend its
    first minutes re-warming) or lands anywhere but where an uninterrupted run would be."""
    config = TrainConfig(lr=1e-3, warmup_steps=100, steps=2000)
    model = torch.nn.Linear(2, 2)
    continued = _lr_schedule(torch.optim.AdamW(model.parameters(), lr=config.lr), config, 1, start=1000)
    expected = 0.5 * config.lr * (1 + math.cos(math.pi * (1000 - 100) / (2000 - 100)))
    assert continued.get_last_lr()[0] == pytest.approx(expected, rel=1e-6)
    fresh = _lr_schedule(torch.optim.AdamW(model.parameters(), lr=config.lr), config, 1, start=0)
    assert fresh.get_last_lr()[0] == 0.0


def test_continued_training_starts_at_the_cards_step(tmp_path: Path) -> None:
    """Catches `init_step` being ignored: the continued run would redo all `steps` from 0 (here 502 instead of 2)
    and record itself as a fresh run."""
    from diffnerf_ns.prior.sources import synthetic_room_frames
    from diffnerf_ns.prior.train import train_prior

    frames = list(synthetic_room_frames(1, 48, 36, seed=1))
    tiny = dict(batch_size=2, warmup_steps=1, bank_size=32, bank_chunk=16, crops_per_frame=8, resume=False)
    test = PRIOR_PRESETS["test"]
    train_prior(frames, replace(test, out=tmp_path / "first", steps=2, **tiny))
    losses = train_prior(
        frames, replace(test, out=tmp_path / "second", steps=502, init_from=tmp_path / "first", init_step=500, **tiny)
    )
    stats = json.loads((tmp_path / "second" / "train_stats.json").read_text())
    assert len(losses) == 2 and stats["start_step"] == 500


def test_prior_records_its_conditioning_fill_and_refinement_follows_it(tmp_path: Path) -> None:
    """A prior trained on colorization-filled conditioning says so in its folder, refinement conditions with that
    fill unless told otherwise, and a resume with another fill stops. Catches: the fill not saved (a shipped
    colorization prior would be refined with the nearest fill, the mismatch `conditioning_fill.md` measured as
    worse), refinement ignoring the record, and a resumed run silently switching fills mid-training."""
    from unittest import mock

    from diffnerf_ns.prior import refine as refine_module
    from diffnerf_ns.prior.refine import RefineConfig, refine_depth
    from diffnerf_ns.prior.shipped import PACKAGED_PRIOR_DIR
    from diffnerf_ns.prior.sources import synthetic_room_frames
    from diffnerf_ns.prior.train import train_prior

    frames = list(synthetic_room_frames(1, 48, 36, seed=1))
    tiny = dict(batch_size=2, warmup_steps=1, bank_size=32, bank_chunk=16, crops_per_frame=8, steps=2)
    test = replace(PRIOR_PRESETS["test"], **tiny)
    train_prior(frames, replace(test, out=tmp_path / "col", resume=False, conditioning_fill="colorization"))
    prior = RGBDPrior.from_pretrained(tmp_path / "col")
    assert prior.config["conditioning_fill"] == "colorization"
    assert RGBDPrior.from_pretrained(PACKAGED_PRIOR_DIR).config["conditioning_fill"] == "nearest"  # folder records none
    frame = frames[0]
    rgb, raw = frame.rgb, frame.depth.copy()
    raw[10:20, 12:24] = 0  # a hole to refine
    seen = []
    real = refine_module.observation_channels

    def spy(raw_depth, rgb_in=None, fill="nearest"):
        seen.append(fill)
        return real(raw_depth, rgb_in, fill)

    with mock.patch.object(refine_module, "observation_channels", spy):
        refine_depth(prior, rgb, raw, RefineConfig(steps=2, samples=2, precision="float32"))
        refine_depth(
            prior, rgb, raw, RefineConfig(steps=2, samples=2, precision="float32", conditioning_fill="nearest")
        )
    assert seen == ["colorization", "nearest"]
    checkpointed = replace(test, out=tmp_path / "resumed", checkpoint_every=1, resume=True)
    train_prior(frames, checkpointed)
    with pytest.raises(ValueError, match="conditioning_fill='nearest', not 'colorization'"):
        train_prior(frames, replace(checkpointed, steps=4, conditioning_fill="colorization"))


def test_refresh_rewrites_figures_and_keeps_the_history(tmp_path: Path, homes: tuple[Path, Path]) -> None:
    """Catches a card refresh that drops the training runs (the next run would restart at step 0) or leaves the
    old figures in place."""
    checkpoint, _ = homes
    ship_prior.main(ship_prior.Ship(parts=_returned_parts(tmp_path, 30)))
    report = tmp_path / "refine.md"
    report.write_text(
        "# Bench\n\nCommand: x\n\n## Real frames\n\n| method | RMSE |\n|---|---|\n| prior | 0.5 |\n![pic](p.png)\n"
    )
    ship_prior.main(ship_prior.Ship(refresh=checkpoint, refine_report=report))
    text = (checkpoint / "README.md").read_text()
    assert "| prior | 0.5 |" in text and "![pic]" not in text and "Not measured yet" not in text
    assert cumulative_steps(checkpoint) == 30


def test_promote_moves_the_checkpoint_into_the_package_with_its_history(
    tmp_path: Path, homes: tuple[Path, Path]
) -> None:
    """Catches a promotion that copies (two 20 MB copies travel to the GPU machine), drops the training runs
    (the next GPU run would restart at step 0), keeps the old figures, or overwrites a prior already shipped."""
    checkpoint, package = homes
    ship_prior.main(ship_prior.Ship(parts=_returned_parts(tmp_path, 30)))
    report = tmp_path / "refine.md"
    report.write_text("# Bench\n\n## Real frames\n\n| method | RMSE |\n|---|---|\n| prior | 0.09 |\n")
    ship_prior.main(ship_prior.Ship(promote=True, refine_report=report))
    assert not checkpoint.exists() and sorted(p.name for p in package.iterdir()) == [
        "README.md",
        "model_index.json",
        "scheduler",
        "unet",
    ]
    assert train_default_prior.continue_from() == package and cumulative_steps(package) == 30
    assert "| prior | 0.09 |" in (package / "README.md").read_text()
    assert RGBDPrior.from_pretrained(package).patch_size == 16
    with pytest.raises(SystemExit, match="the package ships a prior"):  # a GPU run must not unship it silently
        ship_prior.main(ship_prior.Ship(parts=_returned_parts(tmp_path, 5)))
    assert cumulative_steps(package) == 30
    shutil.copytree(package, checkpoint)  # a second prior beside the shipped one
    with pytest.raises(SystemExit, match="already holds a prior"):
        ship_prior.main(ship_prior.Ship(promote=True))
