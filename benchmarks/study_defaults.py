"""Which of diffnerf's defaults cost colour against depth-nerfacto on real data? (issue: defaults that win)

Runs on DEVELOPMENT scenes only, never the benchmark's: the SUN3D fragment on the prior's side of
`diffnerf_ns.data_split` (fragment 1; `defaults_study.md` predates that module and used fragment 2, which is now
the scored one) and a fourth synthetic room converted from NYU raw (the benchmark uses rooms 1-3). Each row changes one
default of `diffnerf-no-prior` toward depth-nerfacto's (or turns pose refinement off, for both methods), so
its PSNR/depth difference is what that default costs or buys. Every run trains through the harness
(nerfstudio's `Trainer.train()`, as ns-train does). Writes `benchmarks/results/defaults_study.md`.

    python -m benchmarks.study_defaults [--iterations 300] [--seeds 0 1] [--variants nerfacto defaults ...]
"""

from __future__ import annotations

import dataclasses
import os
import platform
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import tyro

from benchmarks.bench_nerf import Bench, RunSpec
from benchmarks.nerf_report import summarise
from benchmarks.nerf_scenes import development_room, split, sun3d_scene, synthetic_scene

VARIANTS: dict[str, tuple[str, str, tuple[str, ...]]] = {  # key -> (row, harness method, extra harness flags)
    "nerfacto": ("depth-nerfacto (as users run it)", "depth-nerfacto", ()),
    "nerfacto-no-pose-opt": ("  pose refinement off", "depth-nerfacto", ("--camera-optimizer-mode", "off")),
    "defaults": ("diffnerf-no-prior (defaults)", "diffnerf-no-prior", ()),
    "no-pose-opt": ("  pose refinement off", "diffnerf-no-prior", ("--camera-optimizer-mode", "off")),
    "contraction": (
        "  contraction past the box, piecewise sampler",
        "diffnerf-no-prior",
        ("--disable-scene-contraction", "False", "--proposal-initial-sampler", "piecewise"),
    ),
    "contraction-no-pose-opt": (
        "  contraction past the box, piecewise sampler, pose refinement off",
        "diffnerf-no-prior",
        (
            "--disable-scene-contraction",
            "False",
            "--proposal-initial-sampler",
            "piecewise",
            "--camera-optimizer-mode",
            "off",
        ),
    ),
    "depth-weight": ("  depth weight 1e-3 (nerfacto's)", "diffnerf-no-prior", ("--depth-loss-mult", "1e-3")),
    "piecewise": ("  piecewise sampler (nerfacto's)", "diffnerf-no-prior", ("--proposal-initial-sampler", "piecewise")),
    "lr-decay": ("  LR decays to 1e-4 within the run", "diffnerf-no-prior", ("--fields-lr-final", "1e-4")),
}
"""Rows under a method change one default of the method above toward the other method's (or turn a feature off)."""
PEER = "nerfacto"
COLUMNS = (
    ("psnr", "PSNR", ".2f"),
    ("ssim", "SSIM", ".3f"),
    ("depth_abs_rel", "AbsRel", ".3f"),
    ("depth_rmse", "RMSE m", ".3f"),
    ("depth_delta1", "δ1", ".3f"),
    ("seconds_per_iteration", "s/it", ".2f"),
)


def flatten(config: Any, prefix: str = "") -> dict[str, Any]:
    """Every leaf of a nested config (dataclasses, dicts, lists of dicts) by its dotted path."""
    if dataclasses.is_dataclass(config) and not isinstance(config, type):
        items = ((f.name, getattr(config, f.name)) for f in dataclasses.fields(config))
    elif isinstance(config, dict):
        items = config.items()
    elif isinstance(config, list) and config and isinstance(config[0], dict):
        items = ((f"[{i}]", v) for i, v in enumerate(config))
    else:
        return {prefix: config}
    out: dict[str, Any] = {}
    for name, value in items:
        out.update(flatten(value, f"{prefix}.{name}".lstrip(".") if not name.startswith("[") else prefix + name))
    return out


def config_differences() -> list[tuple[str, str, str]]:
    """(field, depth-nerfacto, diffnerf-no-prior) for every config field where the two methods differ as users
    get them from ns-train (before the study's CPU size preset, which both get). The disabled regulariser's
    fields, which depth-nerfacto lacks, are left out."""
    from nerfstudio.configs.method_configs import method_configs

    from diffnerf_ns.diffnerf_config import diffnerf_no_prior_method

    def show(value: Any) -> str:  # classes (and generic aliases such as VanillaDataManager[X]) by short name
        if hasattr(value, "__origin__"):
            return f"{show(value.__origin__)}[{', '.join(map(show, value.__args__))}]"
        return value.__name__ if isinstance(value, type) else repr(value)

    peer, ours = flatten(method_configs["depth-nerfacto"]), flatten(diffnerf_no_prior_method.config)
    rows = []
    for key in sorted(set(peer) | set(ours)):
        a, b = (show(c[key]) if key in c else "—" for c in (peer, ours))
        if a != b and ".regulariser." not in key:
            rows.append((key, a, b))
    return rows


@dataclass
class Study:
    """Run the chosen variants on the development scenes and write the table."""

    iterations: int = 300
    rays_per_batch: int = 512
    seeds: tuple[int, ...] = (0, 1)
    variants: tuple[str, ...] = tuple(VARIANTS)
    """Keys of VARIANTS to run (the depth-nerfacto peer row is always run: the deltas are taken against it)."""
    jobs: int = 2
    workdir: Path = Path("outputs/study_defaults")
    report: Path = Path("benchmarks/results/defaults_study.md")

    def main(self) -> None:
        unknown = sorted(set(self.variants) - set(VARIANTS))
        if unknown:
            raise SystemExit(f"unknown variant(s) {unknown}: choose from {list(VARIANTS)}")
        keys = [PEER, *(k for k in VARIANTS if k in self.variants and k != PEER)]
        started = time.time()
        bench = Bench(iterations=self.iterations, rays_per_batch=self.rays_per_batch, workdir=self.workdir)
        scenes = {
            "sun3d_dev": sun3d_scene(self.workdir, bench.downscale, role="prior"),
            "dev_room": synthetic_scene("dev_room", *development_room(), self.workdir, bench.downscale),
        }
        jobs = []
        for seed in self.seeds:  # seed-major: a partial run still has every row for the first seeds
            for name, scene in scenes.items():
                view = split(scene.scene_dir, self.workdir / "views" / name / "dense", None)
                for key in keys:
                    _, method, extra = VARIANTS[key]
                    label = method + "".join(extra).replace("--", "_")
                    spec = RunSpec(method, name, "dense", view, scene.reference, None, seed, extra, label)
                    jobs.append((key, name, spec))
        with ThreadPoolExecutor(self.jobs) as pool:
            futures = [(key, name, pool.submit(bench.run, spec)) for key, name, spec in jobs]
            results: dict[tuple[str, str], list[dict]] = {}
            for key, name, future in futures:
                results.setdefault((key, name), []).append(future.result())
        # Bench.run reuses a run with the same fingerprint: the report says how many it did not train.
        reused = sum(bool(r.get("reused")) for rows in results.values() for r in rows)
        self.write(scenes, keys, results, time.time() - started, reused)

    def write(
        self, scenes: dict, keys: list[str], results: dict[tuple[str, str], list[dict]], seconds: float, reused: int
    ) -> None:
        device = torch.cuda.get_device_name() if torch.cuda.is_available() else f"CPU ({os.cpu_count()} cores)"
        lines = [
            "# Defaults study: what each diffnerf default costs against depth-nerfacto (development scenes)",
            "",
            f"Command: `python -m benchmarks.study_defaults --iterations {self.iterations} --rays-per-batch "
            f"{self.rays_per_batch} --seeds {' '.join(map(str, self.seeds))} --variants {' '.join(keys)} "
            f"--jobs {self.jobs}`  ",
            f"Machine: {platform.machine()} {device}, torch {torch.__version__}; wall time "
            f"{seconds / 60:.0f} min ({self.jobs} runs at a time, one thread each, CPU shared with other jobs"
            + (
                f"; {reused} of the {sum(map(len, results.values()))} runs were reused from an earlier invocation in "
                f"`{self.workdir}`"
                if reused
                else ""
            )
            + ").  ",
            "Scenes: " + "; ".join(f"`{k}`: {v.note}" for k, v in scenes.items()) + ". Dense setting, every 8th "
            f"frame held out, CPU-sized model for every row. Cells: mean ± std over seeds {list(self.seeds)}.",
            "",
            "| scene | variant | " + " | ".join(h for _, h, _ in COLUMNS) + " |",
            "|" + "---|" * (len(COLUMNS) + 2),
        ]
        for name in scenes:
            for key in keys:
                runs = results[(key, name)]
                lines.append(
                    "| "
                    + " | ".join([name, VARIANTS[key][0], *(summarise([r[k] for r in runs], f) for k, _, f in COLUMNS)])
                    + " |"
                )
        lines += [
            "",
            "Against depth-nerfacto as users run it, paired by seed (same seed, same scene): ΔPSNR > 0 means the "
            "row beats it on colour; AbsRel ratio < 1 means the row's depth is better.",
            "",
            "| scene | variant | ΔPSNR dB | AbsRel ratio |",
            "|---|---|---|---|",
        ]
        for name in scenes:
            peer = {r["seed"]: r for r in results[(PEER, name)]}
            for key in keys[1:]:
                runs = results[(key, name)]
                delta = [r["psnr"] - peer[r["seed"]]["psnr"] for r in runs]
                ratio = [r["depth_abs_rel"] / peer[r["seed"]]["depth_abs_rel"] for r in runs]
                row, method, _ = VARIANTS[key]
                row = f"{method}: {row.strip()}" if row.startswith(" ") else row  # sub-rows name their method
                lines.append(f"| {name} | {row} | {summarise(delta, '+.2f')} | {summarise(ratio, '.2f')} |")
        lines += [
            "",
            "Every config field where the two methods differ as users get them (`ns-train depth-nerfacto` vs "
            "`ns-train diffnerf-no-prior` on this machine; the study then gives both the same CPU size preset):",
            "",
            "| field | depth-nerfacto | diffnerf-no-prior |",
            "|---|---|---|",
            *(f"| `{k}` | `{a}` | `{b}` |" for k, a, b in config_differences()),
        ]
        self.report.parent.mkdir(parents=True, exist_ok=True)
        self.report.write_text("\n".join(lines) + "\n")
        print("\n".join(lines))


if __name__ == "__main__":
    tyro.cli(Study).main()
