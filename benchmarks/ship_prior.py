"""Take the prior a GPU session returned (`prior.tar.part-*`) and keep it: checked, carded, in exactly one place.

    python -m benchmarks.ship_prior --parts /work/.device/N --refine-report benchmarks/results/prior_refine_gpu.md
    python -m benchmarks.ship_prior --parts /work/.device/N --package   # into the installed package as the default
    python -m benchmarks.ship_prior --refresh diffnerf_ns/prior/pretrained --refine-report R.md --calibration-report C
    python -m benchmarks.ship_prior --promote --refine-report R.md --calibration-report C.md   # checkpoint -> package

Checks the weights file against the package limit and loads the folder with `RGBDPrior.from_pretrained`, then
copies only `model_index.json`, `unet/` and `scheduler/` and writes the model card (`README.md`): the runs of
the prior it continued from plus this one (steps, minutes, card, data, command) and the benchmark figures.

Destination: the development checkpoint (`benchmarks/prior_checkpoint/`, what the next GPU session continues
from) or, with `--package`, the package's `diffnerf_ns/prior/pretrained/`: only once
`DIFFNERF_PRIOR_UNDER_TEST=<folder> pytest tests/prior/test_shipped_prior_quality.py` passes with it and
`bench_prior_refine`'s real-frame table has it below the nearest fill. Never both: the working tree travels to the GPU
machine, and a second copy would spend 20 MB of its 64 MiB. `--promote` moves a development checkpoint that has
since passed that bar (a later benchmark, or better sampling) into the package, with its history and new figures.
"""

from __future__ import annotations

import io
import json
import shutil
import tarfile
import tempfile
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import tyro

from benchmarks.train_default_prior import CHECKPOINT_DIR, DATA_FILE, continue_from
from diffnerf_ns.prior.cli import SHIPPABLE_MB
from diffnerf_ns.prior.model import RGBDPrior
from diffnerf_ns.prior.model_card import TrainingRun, read_runs, write_card
from diffnerf_ns.prior.shipped import PACKAGED_PRIOR_DIR

SHIPPED_ITEMS = ("model_index.json", "unet", "scheduler")


@dataclass
class Ship:
    parts: Path | None = None
    """Folder holding `prior.tar.part-*` (a GPU session's returned files)."""
    refresh: Path | None = None
    """Instead: rewrite this kept prior's card with new figures (a later benchmark or calibration)."""
    promote: bool = False
    """Instead: move the development checkpoint into the package as the default prior, card rewritten."""
    package: bool = False
    """Install as the package's default prior (else: the development checkpoint the next GPU run continues)."""
    refine_report: Path | None = None
    """The refinement benchmark run with this prior; its tables become the card's figures."""
    calibration_report: Path | None = None
    """`benchmarks/calibrate_prior.py`'s report for this prior."""
    card: str | None = None
    """The accelerator it trained on; default: what the run recorded."""
    data: str | None = None
    """What it trained on; default: the `training_data.txt` the run wrote beside the weights."""
    command: str = "bash benchmarks/gpu_session.sh"
    date: str = str(date.today())


def unpack(parts: Path, into: Path) -> Path:
    """`cat prior.tar.part-* | tar -x` into `into`; returns the prior folder."""
    pieces = sorted(Path(parts).glob("prior.tar.part-*"))
    if not pieces:
        raise SystemExit(f"ship_prior: no prior.tar.part-* in {parts}")
    with tarfile.open(fileobj=io.BytesIO(b"".join(p.read_bytes() for p in pieces))) as tar:
        tar.extractall(into, filter="data")
    folders = [p.parent for p in into.rglob("model_index.json")]
    if len(folders) != 1:
        raise SystemExit(f"ship_prior: expected one prior folder in {parts}, found {len(folders)}")
    return folders[0]


def check(folder: Path) -> RGBDPrior:
    """The weights fit the package limit and the folder loads as a prior."""
    weights = folder / "unet" / "diffusion_pytorch_model.safetensors"
    if not weights.is_file():
        raise SystemExit(f"ship_prior: {weights} missing")
    megabytes = weights.stat().st_size / 1e6
    if megabytes > SHIPPABLE_MB:
        raise SystemExit(f"ship_prior: {weights} is {megabytes:.1f} MB, over the {SHIPPABLE_MB} MB package limit")
    return RGBDPrior.from_pretrained(folder)


def this_run(folder: Path, ship: Ship) -> TrainingRun:
    """The returned run, from the stats and config the training loop saved beside the weights."""
    stats = json.loads((folder / "train_stats.json").read_text())
    config = json.loads((folder / "train_config.json").read_text())
    return TrainingRun(
        date=ship.date,
        card=ship.card or stats.get("device_name") or stats["device"],
        steps=int(stats["steps"]),
        minutes=round(stats["seconds"] / 60, 2),
        batch_size=int(config["batch_size"]),
        patches_per_second=round(float(stats.get("patches_per_second", 0.0)), 1),
        data=ship.data or _recorded_data(folder),
        command=ship.command,
    )


def _recorded_data(folder: Path) -> str:
    path = folder / DATA_FILE
    if not path.is_file():
        raise SystemExit(f"ship_prior: {path} missing: say what the run trained on with --data")
    return path.read_text().strip()


def figures(*reports: Path | None) -> str:
    """Each report's tables and notes (everything after its title), pictures left out."""
    parts = []
    for report in (r for r in reports if r is not None):
        lines = report.read_text().splitlines()
        start = next((i for i, line in enumerate(lines) if line.startswith("## ")), 1)
        body = ["#" + line if line.startswith("#") else line for line in lines[start:] if not line.startswith("![")]
        parts.append(f"From `{report.as_posix()}`:\n\n" + "\n".join(body).strip())
    return "\n\n".join(parts)


def architecture(prior: RGBDPrior) -> str:
    unet = prior.unet.config
    return (
        f"{prior.patch_size} px patches, UNet {tuple(unet.block_out_channels)} x {unet.layers_per_block}, "
        f"{sum(p.numel() for p in prior.unet.parameters()) / 1e6:.1f}M parameters"
    )


def main(ship: Ship) -> None:
    if ship.refresh is not None:
        card = write_card(
            ship.refresh,
            read_runs(ship.refresh),
            architecture(RGBDPrior.from_pretrained(ship.refresh)),
            figures(ship.refine_report, ship.calibration_report),
        )
        print(f"ship_prior: rewrote {card}")
        return
    if ship.promote:
        prior = check(CHECKPOINT_DIR)
        if PACKAGED_PRIOR_DIR.exists():
            raise SystemExit(f"ship_prior: {PACKAGED_PRIOR_DIR} already holds a prior; nothing to promote over it")
        figures_text = figures(ship.refine_report, ship.calibration_report)
        shutil.move(CHECKPOINT_DIR, PACKAGED_PRIOR_DIR)
        write_card(PACKAGED_PRIOR_DIR, read_runs(PACKAGED_PRIOR_DIR), architecture(prior), figures_text)
        print(f"ship_prior: {PACKAGED_PRIOR_DIR} now holds the prior (moved from {CHECKPOINT_DIR})")
        return
    if ship.parts is None:
        raise SystemExit(
            "ship_prior: give --parts (a GPU session's returned files), --refresh <prior folder> or --promote"
        )
    if not ship.package and (PACKAGED_PRIOR_DIR / "model_index.json").is_file():
        raise SystemExit(
            f"ship_prior: the package ships a prior ({PACKAGED_PRIOR_DIR}); keeping this run as the development "
            "checkpoint would remove it. Benchmark the returned prior (bench_prior_refine on the unpacked parts) and "
            "pass --package to replace the shipped one if it is better"
        )
    with tempfile.TemporaryDirectory() as tmp:
        folder = unpack(ship.parts, Path(tmp))
        prior = check(folder)
        previous = continue_from()
        runs = (read_runs(previous) if previous is not None else []) + [this_run(folder, ship)]
        destination = PACKAGED_PRIOR_DIR if ship.package else CHECKPOINT_DIR
        staged = Path(tmp) / "staged"
        staged.mkdir()
        for item in SHIPPED_ITEMS:
            (shutil.copytree if (folder / item).is_dir() else shutil.copy2)(folder / item, staged / item)
        write_card(staged, runs, architecture(prior), figures(ship.refine_report, ship.calibration_report))
        for old in (PACKAGED_PRIOR_DIR, CHECKPOINT_DIR):  # one copy only
            shutil.rmtree(old, ignore_errors=True)
        shutil.copytree(staged, destination)
    total = sum(r.steps for r in runs)
    print(f"ship_prior: {destination} now holds the prior ({total:,} steps over {len(runs)} run(s))")


if __name__ == "__main__":
    main(tyro.cli(Ship))
