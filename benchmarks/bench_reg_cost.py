"""What the patch regulariser costs per training iteration, and what its cheaper cadences save (issue #18 item 7).

    python -m benchmarks.bench_reg_cost          # CPU -> benchmarks/results/reg_cost_cpu.md

Times `diffnerf-few-view-no-prior` and `diffnerf-few-view` with the shipped prior through nerfstudio's own
`Trainer.train()`, at the benchmark's CPU batch (512 rays) and at the preset's own (4096), for several regulariser
cadences: every n-th step with n times the weight, and a fraction of the model's samples on the patch rays. A
regularised step renders one 48x48 patch (2,304 rays) and runs the prior's UNet once, whatever the batch, so the
regulariser's relative cost depends on the batch: this table says by how much. Quality of each cadence is the NeRF
benchmark's business (`bench_nerf --regulariser-every-n-steps ... --regulariser-patch-sample-fraction ...`).
"""

from __future__ import annotations

import dataclasses
import statistics
import time
from pathlib import Path

import torch
import tyro
from nerfstudio.engine.trainer import Trainer
from nerfstudio.scripts.train import _set_random_seed

from benchmarks.bench_profile import machine_name, train_steps
from benchmarks.nerf_harness import RunArgs, count_rendered_rays, method_config
from data_converters.synthetic.demo_scene import make_demo_scene
from diffnerf_ns.compat import offline_lpips
from diffnerf_ns.presets import configure_run
from diffnerf_ns.prior.shipped import require_default_prior

CADENCES: tuple[tuple[int, float], ...] = ((1, 1.0), (2, 1.0), (1, 0.5), (2, 0.5), (4, 0.25), (4, 1.0))
"""(every_n_steps, patch_sample_fraction) of each regularised variant; (1, 0.5) is the preset, (1, 1.0) the recipe."""


@dataclasses.dataclass
class CostArgs:
    """Seconds per training iteration of the regulariser's cadences against no prior, at several batch sizes."""

    rays_per_batch: tuple[int, ...] = (512, 4096)
    """512: the NeRF benchmark's CPU budget; 4096: the presets' own `train_num_rays_per_batch`."""
    warmup: int = 4
    """Untimed steps first (the prior loads and the cameras are cached on the first regularised step)."""
    iterations: int = 16
    """Timed steps: a multiple of every cadence's n, so each variant regularises exactly iterations/n of them."""
    repeats: int = 2
    """Timed windows per configuration, interleaved across variants; the table gives their median."""
    threads: int = 1
    """torch threads (the NeRF benchmark trains each run on one)."""
    small: bool = True
    """The CPU-sized model of the NeRF benchmark (`diffnerf_ns.presets.small_model`)."""
    prior: Path | None = None
    """Prior folder; default the shipped prior."""
    scene: Path | None = None
    """A converted scene; default the demo room (48 frames, 160x120), rendered into workdir."""
    workdir: Path = Path("outputs/bench_reg_cost")
    out: Path = Path("benchmarks/results/reg_cost_cpu.md")

    def trainer(self, scene: Path, rays: int, cadence: tuple[int, float] | None) -> Trainer:
        """A diffnerf-few-view trainer set up as `ns-train` sets it up; `cadence` None is the no-prior ablation."""
        method = "diffnerf-no-prior" if cadence is None else "diffnerf-reg"
        every, fraction = cadence or (None, None)
        args = RunArgs(
            method=method,
            scene=scene,
            out=self.workdir / "unused.json",  # RunArgs serves only its overrides here; nothing is written
            prior=self.prior or require_default_prior(),
            few_view=True,
            regulariser_every_n_steps=every,
            regulariser_patch_sample_fraction=fraction,
        )
        name = method if cadence is None else f"{method}-every{every}-frac{fraction}"
        total = self.warmup + self.iterations * self.repeats
        config = configure_run(
            args.overridden(method_config(method, args.prior, few_view=True)),
            scene,
            self.workdir / "runs" / f"{name}-{rays}",
            total,
            rays,
            small=self.small,
        )
        _set_random_seed(0)
        with offline_lpips():
            trainer = Trainer(config)
            trainer.setup()
        return trainer

    def main(self) -> list[tuple]:
        """Time every variant; write the table and return its rows (rays, cadence, s/it, ratio, rays/it, windows)."""
        torch.set_num_threads(self.threads)
        scene = self.scene or self.workdir / "demo_scene"
        if not (scene / "transforms.json").exists():
            make_demo_scene(scene, num_frames=48, width=160, height=120)
        variants: list[tuple[int, float] | None] = [None, *CADENCES]
        rows = []
        start = time.perf_counter()
        for rays in self.rays_per_batch:
            trainers = [self.trainer(scene, rays, v) for v in variants]
            counters = [count_rendered_rays(t.pipeline.model) for t in trainers]
            for t in trainers:
                train_steps(t, 0, self.warmup)
            seconds: list[list[float]] = [[] for _ in variants]
            before = [c() for c in counters]
            for r in range(self.repeats):  # interleaved, so a slow spell of the machine hits every variant alike
                for i, t in enumerate(trainers):
                    step = self.warmup + r * self.iterations
                    seconds[i].append(train_steps(t, step, self.iterations) / self.iterations)
            steps = self.iterations * self.repeats
            base = statistics.median(seconds[0])
            for v, s, c, b in zip(variants, seconds, counters, before, strict=True):
                median = statistics.median(s)
                rows.append((rays, v, median, median / base, (c() - b) / steps, s))
            del trainers
        self.write(rows, time.perf_counter() - start, scene)
        return rows

    def write(self, rows: list, wall: float, scene: Path) -> None:
        lines = [
            "# What the patch regulariser costs per iteration (CPU)",
            "",
            f"Command: `python -m benchmarks.bench_reg_cost --rays-per-batch {' '.join(map(str, self.rays_per_batch))}"
            f" --warmup {self.warmup} --iterations {self.iterations} --repeats {self.repeats}"
            f" --threads {self.threads}{'' if self.small else ' --no-small'}`  ",
            f"Machine: {machine_name()}. Wall time {wall / 60:.0f} min.  ",
            f"Scene: {'the demo room (48 frames, 160x120)' if self.scene is None else scene}; "
            f"model: {'the benchmark CPU size' if self.small else 'full'}; "
            f"prior: {self.prior or 'the shipped prior'} (48 px patches, 2,304 rays each).  ",
            f"Each figure: median over {self.repeats} windows of {self.iterations} steps (after {self.warmup} "
            "untimed) of wall seconds per step, trained through `Trainer.train()`; the windows of all variants are "
            "interleaved. Rays/it counts every ray the model renders (batch and patch).",
            "",
            "| rays per batch | method | every n steps | patch sample fraction | s/it | × no prior | rays/it "
            "| windows s/it |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for rays, v, s, ratio, per_it, windows in rows:
            every, fraction = ("—", "—") if v is None else v
            name = "diffnerf-few-view-no-prior" if v is None else "diffnerf-few-view"
            spread = ", ".join(f"{w:.3f}" for w in windows)
            lines.append(
                f"| {rays} | {name} | {every} | {fraction} | {s:.3f} | {ratio:.2f} | {per_it:.0f} | {spread} |"
            )
        self.out.parent.mkdir(parents=True, exist_ok=True)
        self.out.write_text("\n".join(lines) + "\n")
        print("\n".join(lines))


if __name__ == "__main__":
    tyro.cli(CostArgs).main()
