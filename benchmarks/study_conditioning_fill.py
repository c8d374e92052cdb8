"""Condition the refiner on the colorization fill instead of the nearest fill? (issue 17, item 3)

Two priors of one size are trained the same way on the same corpus rooms, with the same seed and budget; they
differ only in the classical fill that pre-fills the conditioning's holes (`TrainConfig.conditioning_fill`).
Each refines the same validation frames conditioned as it was trained, starting SDEdit from either fill, and
is scored in the holes against the truth beside both classical fills. Validation only, as `data_split` asks of
a study that chooses a setting: corpus rooms of the calibration seed (same generator, rooms no prior saw) with
exact depth, and the real validation frames (TUM, SUN RGB-D) with valid pixels hidden under real hole shapes,
at the training resolution. A CPU-sized experiment: it says which conditioning learns the better correction at
this scale, not what a GPU-trained prior reaches.
"""

from __future__ import annotations

import dataclasses
import os
import platform
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import tyro

from benchmarks.bench_prior_refine import Case, validation_real_cases
from data_converters.synthetic.corpus import corpus_frames
from diffnerf_ns.data_split import CALIBRATION_CORPUS_SEED
from diffnerf_ns.prior.baselines import hole_fill
from diffnerf_ns.prior.model import RGBDPrior
from diffnerf_ns.prior.presets import PRIOR_PRESETS
from diffnerf_ns.prior.refine import RefineConfig, refine_depth
from diffnerf_ns.prior.sources import iter_corpus
from diffnerf_ns.prior.train import train_prior

FILL_NAMES = ("nearest", "colorization")


@dataclass
class Study:
    """Train a nearest- and a colorization-conditioned prior per seed, score both on validation frames."""

    train_rooms: int = 24
    views_per_room: int = 4
    validation_rooms: int = 6
    width: int = 160
    height: int = 120
    steps: int = 1500
    """Training steps of each prior (the `cpu-bench` preset's size and batch)."""
    seeds: tuple[int, ...] = (0, 1)
    """Training seeds; every seed trains both priors."""
    sampling: RefineConfig = dataclasses.field(default_factory=lambda: RefineConfig(steps=10, overlap=8))
    fixtures: Path = Path(__file__).resolve().parents[1].parent / "shared" / "fixtures"
    workdir: Path = Path("outputs/study_conditioning_fill")
    report: Path = Path("benchmarks/results/conditioning_fill.md")
    threads: int = 1


def downscaled(case: Case, factor: int) -> Case:
    """A real validation case at the training resolution: every `factor`-th pixel (holes stay holes)."""
    s = (slice(None, None, factor), slice(None, None, factor))
    return Case(case.name, case.rgb[s], case.raw[s], case.truth[s], {k: v[s] for k, v in case.scored.items()})


def validation_cases(study: Study) -> list[Case]:
    cases = [
        Case(f"corpus room {f.room}", f.rgb, f.raw, f.depth, {"holes": (f.raw <= 0) & (f.depth > 0)})
        for f in corpus_frames(
            study.validation_rooms, 1, study.width, study.height, CALIBRATION_CORPUS_SEED, split="train"
        )
    ]
    for case in validation_real_cases(study.fixtures):
        cases.append(downscaled(case, case.raw.shape[1] // study.width))
    return cases


def rmse(depth: np.ndarray, case: Case) -> float:
    where = next(iter(case.scored.values()))
    return float(np.sqrt(((depth - case.truth)[where] ** 2).mean()))


def run(study: Study) -> str:
    started = time.perf_counter()
    torch.set_num_threads(study.threads)
    frames = list(iter_corpus(study.train_rooms, study.views_per_room, study.width, study.height, seed=0))
    cases = validation_cases(study)
    rows: dict[str, list[list[float]]] = {}  # method -> per seed, per case RMSE
    for fill in FILL_NAMES:
        rows[f"{fill} fill"] = [[rmse(hole_fill(c.raw, c.rgb, fill), c) for c in cases]]
    train_minutes = {}
    for seed in study.seeds:
        for cond in FILL_NAMES:
            out = study.workdir / f"{cond}-seed{seed}"
            config = dataclasses.replace(
                PRIOR_PRESETS["cpu-bench"],
                out=out,
                steps=study.steps,
                seed=seed,
                conditioning_fill=cond,
                resume=False,
                checkpoint_every=study.steps,
            )
            t0 = time.perf_counter()
            if not (out / "model_index.json").exists():
                train_prior(frames, config)
            train_minutes[(cond, seed)] = (time.perf_counter() - t0) / 60
            prior = RGBDPrior.from_pretrained(out)
            for start in FILL_NAMES:
                sampling = dataclasses.replace(study.sampling, conditioning_fill=cond, start=start, seed=seed)
                scores = [rmse(refine_depth(prior, c.rgb, c.raw, sampling).depth, c) for c in cases]
                rows.setdefault(f"prior conditioned on {cond}, SDEdit from {start}", []).append(scores)
                print(cond, start, seed, [round(s, 4) for s in scores], flush=True)
    return report(study, cases, rows, train_minutes, (time.perf_counter() - started) / 60)


def report(study: Study, cases: list[Case], rows: dict[str, list[list[float]]], minutes: dict, total: float) -> str:
    synthetic = [i for i, c in enumerate(cases) if c.name.startswith("corpus")]
    real = [i for i, c in enumerate(cases) if i not in synthetic]
    colorization = np.array(rows["colorization fill"][0])

    def cell(per_seed: list[list[float]], idx: list[int]) -> str:
        values = [float(np.mean(np.array(s)[idx])) for s in per_seed]
        ratios = [float(np.mean(np.array(s)[idx] / colorization[idx])) for s in per_seed]
        spread = f" ({' / '.join(f'{v:.3f}' for v in values)})" if len(values) > 1 else ""
        return f"{np.mean(values):.3f}{spread} | {np.mean(ratios):.2f}"

    lines = [f"| {name} | {cell(s, synthetic)} | {cell(s, real)} |" for name, s in rows.items()]
    per_case = [
        f"| {name} | " + " | ".join(f"{np.mean([s[i] for s in per_seed]):.3f}" for i in range(len(cases))) + " |"
        for name, per_seed in rows.items()
    ]
    machine = f"{platform.platform()}, {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs"
    trained = ", ".join(f"{c} seed {s}: {m:.1f} min" for (c, s), m in minutes.items())
    return f"""# Conditioning fill of the refiner: nearest against colorization (CPU-sized priors)

Command: `{" ".join(["python -m benchmarks.study_conditioning_fill", *sys.argv[1:]])}`

Machine: {machine}, torch {torch.__version__}, {study.threads} thread(s), shared with a benchmark running
beside it; {total:.0f} min in all. Training (0.0 = reused from `{study.workdir}`): {trained}.

Priors: the `cpu-bench` preset (24 px patches, UNet (16, 32)), {study.steps} steps of batch
{PRIOR_PRESETS["cpu-bench"].batch_size} each, trained on {study.train_rooms} x {study.views_per_room} procedural-corpus
frames (seed 0, `train` rooms, {study.width}x{study.height}, Kinect raw), seeds {list(study.seeds)}; the two
priors of a seed differ only in `conditioning_fill`. Sampling: {study.sampling}, with `conditioning_fill` as
trained and `start` as the row says.

Validation frames ({len(cases)}): {len(synthetic)} corpus rooms of the calibration seed
({CALIBRATION_CORPUS_SEED}: no prior trained on them), one view each, scored in the Kinect holes against exact
depth; {len(real)} real validation frames (TUM, SUN RGB-D) at {study.width} px wide, valid pixels hidden under
the NYU raw frame's holes, scored at the hidden pixels. Cells: mean RMSE (m) over the frames (per seed in
brackets), then the mean per-frame ratio to the colorization fill's RMSE (below 1: better than colorization).

| method | synthetic holes RMSE (m) | x colorization | real hidden RMSE (m) | x colorization |
|---|---|---|---|---|
{chr(10).join(lines)}

Per frame (RMSE m, mean over seeds):

| method | {" | ".join(c.name for c in cases)} |
|---|{"---|" * len(cases)}
{chr(10).join(per_case)}
"""


def main(study: Study) -> None:
    text = run(study)
    study.report.parent.mkdir(parents=True, exist_ok=True)
    study.report.write_text(text)
    print(text)


if __name__ == "__main__":
    main(tyro.cli(Study))
