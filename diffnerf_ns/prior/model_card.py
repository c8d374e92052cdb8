"""A prior folder's model card (`README.md`, as diffusers and the Hub write them): YAML front matter that
machines read (every training run, hence the cumulative step count a continued run starts from) and a
page that people read (runs, data recipe, exact commands, benchmark figures)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import yaml

CARD_FILE = "README.md"


@dataclass
class TrainingRun:
    """One bounded training run of a prior: where, how long, on what."""

    date: str
    card: str
    steps: int
    minutes: float
    batch_size: int
    patches_per_second: float
    data: str
    command: str

    @property
    def patches(self) -> int:
        return self.steps * self.batch_size


def read_runs(folder: Path) -> list[TrainingRun]:
    """The training runs recorded in `folder`'s card; [] when it has no card (a prior trained from scratch)."""
    path = Path(folder) / CARD_FILE
    if not path.is_file():
        return []
    text = path.read_text()
    if not text.startswith("---\n"):
        raise ValueError(f"{path}: no YAML front matter (a model card starts with '---')")
    meta = yaml.safe_load(text[4 : text.index("\n---", 4)]) or {}
    try:
        return [TrainingRun(**run) for run in meta.get("training_runs", [])]
    except TypeError as err:
        raise ValueError(f"{path}: malformed training_runs entry ({err})") from err


def cumulative_steps(folder: Path) -> int:
    """Optimizer steps behind the prior in `folder`, over every recorded run."""
    return sum(run.steps for run in read_runs(folder))


def write_card(folder: Path, runs: list[TrainingRun], architecture: str, figures: str = "") -> Path:
    """Write `folder/README.md` for a prior trained by `runs` (oldest first)."""
    meta = {
        "library_name": "diffusers",
        "pipeline_tag": "image-to-image",
        "tags": ["rgb-d", "depth-completion", "diffusion", "nerfstudio", "diffnerf-ns"],
        "cumulative_steps": sum(r.steps for r in runs),
        "training_runs": [asdict(r) for r in runs],
    }
    rows = [
        f"| {r.date} | {r.card} | {r.steps:,} | {r.batch_size} | {r.minutes:.1f} | {r.patches_per_second:,.0f} | "
        f"{r.data} |"
        for r in runs
    ]
    commands = "\n".join(f"    {r.command}" for r in runs)
    page = [
        "---",
        yaml.safe_dump(meta, sort_keys=False, width=1000).strip(),
        "---",
        "",
        "# diffnerf-ns RGB-D diffusion prior",
        "",
        "A noise-predicting UNet over 4-channel RGB-D patches (diffusers `UNet2DModel` + `DDPMScheduler` in the "
        "`RGBDPrior` pipeline), conditioned on the sensor's raw depth and its validity mask. It refines raw "
        "Kinect depth before NeRF training and scores rendered patches during it (DiffusioNeRF).",
        "",
        f"Architecture: {architecture}. Weights: float16 safetensors. Load with "
        "`RGBDPrior.from_pretrained(<this folder>)`.",
        "",
        f"## Training: {sum(r.steps for r in runs):,} steps, {sum(r.minutes for r in runs):.1f} minutes in "
        f"{len(runs)} run(s), each continuing from the last",
        "",
        "| date | card | steps | batch | minutes | patches/s | data |",
        "|---|---|---:|---:|---:|---:|---|",
        *rows,
        "",
        "Commands:",
        "",
        commands,
        "",
        "## Benchmark figures",
        "",
        figures or "Not measured yet.",
        "",
    ]
    path = Path(folder) / CARD_FILE
    path.write_text("\n".join(page))
    return path
