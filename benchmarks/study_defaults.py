"""Which of diffnerf's defaults cost colour against depth-nerfacto on real data? (issue: defaults that win)

Runs on DEVELOPMENT scenes only, never the benchmark's: SUN3D fragment 2 (the benchmark uses fragment 1)
and a fourth synthetic room converted from NYU raw (the benchmark uses rooms 1-3). Each row changes one
default of `diffnerf-no-prior` toward depth-nerfacto's, so its PSNR/depth difference is what that default
costs or buys. Contraction is not a row: diffnerf clips rays to its box, so turning contraction on alone
would not let geometry outside the box (windows, doorways) be represented; that needs a model change.
Writes `benchmarks/results/defaults_study.md`.

    python -m benchmarks.study_defaults [--iterations 300]
"""

from __future__ import annotations

import os
import platform
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import torch
import tyro

from benchmarks.bench_nerf import Bench, development_room, split, summarise, sun3d_scene, synthetic_scene

VARIANTS: dict[str, tuple[str, tuple[str, ...]]] = {  # row -> (harness method, extra harness flags)
    "depth-nerfacto (as users run it)": ("depth-nerfacto", ()),
    "diffnerf-no-prior (defaults)": ("diffnerf-no-prior", ()),
    "  depth weight 1e-3 (nerfacto's)": ("diffnerf-no-prior", ("--depth-loss-mult", "1e-3")),
    "  piecewise sampler (nerfacto's)": ("diffnerf-no-prior", ("--proposal-initial-sampler", "piecewise")),
    "  LR decays to 1e-4 within the run": ("diffnerf-no-prior", ("--fields-lr-final", "1e-4")),
}
COLUMNS = (("psnr", "PSNR", ".2f"), ("ssim", "SSIM", ".3f"), ("depth_abs_rel", "AbsRel", ".3f"),
           ("depth_rmse", "RMSE m", ".3f"), ("depth_delta1", "δ1", ".3f"), ("seconds_per_iteration", "s/it", ".2f"))


@dataclass
class Study:
    """Run every variant on the development scenes and write the table."""

    iterations: int = 300
    rays_per_batch: int = 512
    seeds: tuple[int, ...] = (0, 1)
    jobs: int = 2
    workdir: Path = Path("outputs/study_defaults")
    report: Path = Path("benchmarks/results/defaults_study.md")

    def main(self) -> None:
        started = time.time()
        bench = Bench(iterations=self.iterations, rays_per_batch=self.rays_per_batch, workdir=self.workdir)
        scenes = {
            "sun3d_fragment2": sun3d_scene(self.workdir, bench.downscale, fragment=1),
            "dev_room": synthetic_scene("dev_room", *development_room(), self.workdir, bench.downscale),
        }
        jobs = []
        for name, scene in scenes.items():
            view = split(scene.scene_dir, self.workdir / "views" / name / "dense", None)
            for row, (method, extra) in VARIANTS.items():
                label = method + "".join(extra).replace("--", "_")
                for seed in self.seeds:
                    jobs.append((row, name, (method, name, "dense", view, scene.reference, None, seed, extra, label)))
        with ThreadPoolExecutor(self.jobs) as pool:
            futures = [(row, name, pool.submit(bench.run, *args)) for row, name, args in jobs]
            results: dict[tuple[str, str], list[dict]] = {}
            for row, name, future in futures:
                results.setdefault((row, name), []).append(future.result())
        device = torch.cuda.get_device_name() if torch.cuda.is_available() else f"CPU ({os.cpu_count()} cores)"
        lines = [
            "# Defaults study: what each diffnerf default costs against depth-nerfacto (development scenes)",
            "",
            f"Command: `python -m benchmarks.study_defaults --iterations {self.iterations} --rays-per-batch "
            f"{self.rays_per_batch} --seeds {' '.join(map(str, self.seeds))} --jobs {self.jobs}`  ",
            f"Machine: {platform.machine()} {device}, torch {torch.__version__}; wall time "
            f"{(time.time() - started) / 60:.0f} min.  ",
            "Scenes: " + "; ".join(f"`{k}`: {v.note}" for k, v in scenes.items()) + ". Dense setting, every 8th "
            "frame held out, CPU-sized model for every row. Cells: mean ± std over seeds.",
            "",
            "| scene | variant | " + " | ".join(h for _, h, _ in COLUMNS) + " |",
            "|" + "---|" * (len(COLUMNS) + 2),
        ]
        for name in scenes:
            for row in VARIANTS:
                runs = results[(row, name)]
                lines.append("| " + " | ".join([name, row, *(summarise([r[k] for r in runs], f)
                                                                  for k, _, f in COLUMNS)]) + " |")
        self.report.parent.mkdir(parents=True, exist_ok=True)
        self.report.write_text("\n".join(lines) + "\n")
        print("\n".join(lines))


if __name__ == "__main__":
    tyro.cli(Study).main()
