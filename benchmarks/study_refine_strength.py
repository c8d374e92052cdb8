"""Choose refinement's `strength` and `start` on frames no benchmark scores: the prior's answer from pure noise,
or a correction of a classical fill started part-way down the schedule (SDEdit).

    python -m benchmarks.study_refine_strength --prior diffnerf_ns/prior/pretrained [--strengths 1 0.6 0.4 0.2]

Frames, all on the `prior` side of `diffnerf_ns.data_split` (see there):
- synthetic: one 640x480 view of each of `--synthetic-rooms` corpus `train`-split rooms of the calibration
  seed (rooms no prior trains on), Kinect raw holes scored against the exact depth;
- real, unseen: the TUM frame of `other_sensors`, valid pixels hidden under the NYU raw frame's (flipped)
  hole shape and scored against the sensor;
- real, seen: `--sun3d-frames` SUN3D fragment-1 frames (the development prior trained on this fragment, so
  these rows are optimistic), hidden under a fragment-2 frame's hole shape.
Writes a markdown table per source, mean over its frames, with the classical fills beside it.
"""

from __future__ import annotations

import platform
import shlex
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

import numpy as np
import torch
import tyro
from PIL import Image

from benchmarks.bench_prior_refine import FILLS, Case, _hide, _read_mm, _rmse, validation_real_cases
from data_converters.layouts.threedmatch import read_threedmatch
from data_converters.synthetic.corpus import corpus_frames
from diffnerf_ns.data_split import CALIBRATION_CORPUS_SEED, sun3d_group
from diffnerf_ns.prior.model import RGBDPrior
from diffnerf_ns.prior.refine import RefineConfig, refine_depth


@dataclass
class Study:
    prior: Path
    strengths: tuple[float, ...] = (1.0, 0.6, 0.4, 0.2)
    starts: tuple[Literal["nearest", "telea", "colorization"], ...] = ("nearest",)
    """Fills the holes start from below strength 1 (`RefineConfig.start`); every strength x start is run."""
    sampling: RefineConfig = field(default_factory=lambda: RefineConfig(steps=10, overlap=8))
    """Everything but `strength` and `start`, as the benchmarks sample."""
    synthetic_rooms: int = 2
    sun3d_frames: int = 3
    fills: tuple[str, ...] = ("nearest", "telea", "colorization")
    fixtures: Path = Path(__file__).resolve().parents[1].parent / "shared" / "fixtures"
    threads: int = 2
    report: Path = Path("benchmarks/results/refine_strength.md")


def validation_cases(study: Study) -> dict[str, list[Case]]:
    """Source name -> frames with their scored pixels (see the module docstring)."""
    synthetic = [
        Case(f.name, f.rgb, f.raw, f.depth, {"holes": f.raw <= 0})
        for f in corpus_frames(study.synthetic_rooms, 1, 640, 480, seed=CALIBRATION_CORPUS_SEED, split="train")
    ]
    tum = [
        replace(case, scored={"holes": case.scored["hidden"]})
        for case in validation_real_cases(study.fixtures)
        if case.name == "TUM frame"
    ]
    capture = read_threedmatch(study.fixtures / "sun3d_study_100")
    seen = [f for f in capture.frames if f.group == sun3d_group("prior")]
    donor = _read_mm(next(f for f in capture.frames if f.group == sun3d_group("scored")).depth_path) <= 0
    sun3d = []
    for frame in [seen[i] for i in np.linspace(5, len(seen) - 1, study.sun3d_frames).round().astype(int)]:
        stored = np.asarray(Image.open(frame.depth_path))
        raw = np.where(np.isin(stored, capture.invalid_depth_values), 0, stored * capture.depth_scale)
        raw = raw.astype(np.float32)
        hidden = _hide(raw, donor)
        rgb = np.asarray(Image.open(frame.rgb_path).convert("RGB"))
        sun3d.append(Case(f"SUN3D {frame.name}", rgb, np.where(hidden, 0, raw), raw, {"holes": hidden}))
    return {
        "synthetic corpus rooms (calibration seed), Kinect holes": synthetic,
        "TUM frame (unseen real), hidden pixels": tum,
        "SUN3D fragment 1 (seen by the development prior), hidden pixels": sun3d,
    }


def setting_name(strength: float, start: str) -> str:
    """Row label of one refinement setting."""
    return f"prior, strength {strength:g}" + ("" if start == "nearest" or strength >= 1 else f", from {start}")


def chosen_strength(ratios: dict[str, list[float]]) -> str:
    """Among settings below the nearest fill on every source, the lowest mean ratio to it; if none is, the
    lowest mean ratio. A default must not lose to the trivial fill anywhere it was validated."""
    everywhere = [s for s, r in ratios.items() if max(r) < 1]
    return min(everywhere or ratios, key=lambda s: float(np.mean(ratios[s])))


def choice_table(ratios: dict[str, list[float]]) -> str:
    """Per setting: hole RMSE over the nearest fill's on each source, their mean, and the chosen one."""
    lines = [
        "## Choice: hole RMSE / nearest fill's, per source (in the order above)",
        "",
        "| setting | per source | mean | below nearest everywhere |",
        "|---|---|---|---|",
    ]
    for name, r in ratios.items():
        below = "yes" if max(r) < 1 else "no"
        lines.append(f"| {name} | {', '.join(f'{v:.3f}' for v in r)} | {np.mean(r):.3f} | {below} |")
    return "\n".join([*lines, "", f"Chosen (`chosen_strength`): **{chosen_strength(ratios)}**."])


def main(study: Study) -> None:
    torch.set_num_threads(study.threads)
    prior = RGBDPrior.from_pretrained(study.prior)
    started = time.perf_counter()
    sections = []
    settings = {setting_name(s, start): (s, start) for s in study.strengths for start in study.starts}
    ratios: dict[str, list[float]] = {name: [] for name in settings}
    for source, cases in validation_cases(study).items():
        rmse: dict[str, list[float]] = {}
        seconds: dict[str, list[float]] = {}
        for case in cases:
            where = case.scored["holes"]
            outputs = {}
            for key in study.fills:
                name, fill = FILLS[key]
                start = time.perf_counter()
                outputs[name] = fill(case.raw, case.rgb)
                seconds.setdefault(name, []).append(time.perf_counter() - start)
            for name, (strength, start_fill) in settings.items():
                start = time.perf_counter()
                sampling = replace(study.sampling, strength=strength, start=start_fill)
                outputs[name] = refine_depth(prior, case.rgb, case.raw, sampling).depth
                seconds.setdefault(name, []).append(time.perf_counter() - start)
            for name, depth in outputs.items():
                rmse.setdefault(name, []).append(_rmse(depth, case.truth, where))
            print(source, case.name, {name: round(v[-1], 4) for name, v in rmse.items()}, flush=True)
        lines = [f"## {source} ({len(cases)} frame(s))", "", "| method | RMSE (m), mean | per frame | s / frame |"]
        lines.append("|---|---|---|---|")
        best = min(np.mean(v) for v in rmse.values())
        for name, values in rmse.items():
            mean = f"**{np.mean(values):.4f}**" if np.mean(values) == best else f"{np.mean(values):.4f}"
            per = ", ".join(f"{v:.4f}" for v in values)
            lines.append(f"| {name} | {mean} | {per} | {np.mean(seconds[name]):.1f} |")
        sections.append("\n".join(lines))
        for name in settings:
            ratios[name].append(np.mean(rmse[name]) / np.mean(rmse[FILLS["nearest"][0]]))
    sections.append(choice_table(ratios))
    cpu = f"{platform.machine()} CPU, {study.threads} torch threads; torch {torch.__version__}"
    report = "\n\n".join(
        [
            "# Refinement strength study (validation frames only)",
            f"Command: `{shlex.join(['python', '-m', 'benchmarks.study_refine_strength', *sys.argv[1:]])}`",
            f"Machine: {cpu}; {(time.perf_counter() - started) / 60:.1f} min in all.",
            f"Prior: `{study.prior}`. Sampling: {study.sampling} (strength and start varied).",
            "Strength 1 samples from pure noise; below 1, DDIM starts from a classical fill (the nearest fill unless "
            "the row names another) noised to that fraction of the schedule. Bold: the lowest mean. No "
            "benchmark-scored frame is used (`diffnerf_ns/data_split.py`).",
            *sections,
        ]
    )
    study.report.parent.mkdir(parents=True, exist_ok=True)
    study.report.write_text(report + "\n")
    print(report)


if __name__ == "__main__":
    main(tyro.cli(Study))
