"""Does the diffusion prior help, and how does diffnerf compare with depth-nerfacto as users run it?

Input is what the product gets, scored against truth the methods never see:
- `room1..3`: three different synthetic rooms and hand-held trajectories, written in NYU raw format with the
  Kinect model (quantised disparity, noise, holes, misregistration, timestamps) and converted by the
  project's own `diffnerf-convert-nyu raw` (registered, holey depth; estimated poses). Held-out frames are
  replaced by the generator's clean render at the true pose (clean RGB and depth); the true surface is the
  clean depth of every frame, moved into the estimated world frame by a rigid alignment of camera centres.
- `sun3d`: the real SUN3D study fixture through the 3DMatch reader: the scored fragment of
  `diffnerf_ns.data_split` (fragment 2: no prior trains on it; `nerf.md`'s run predates that and used fragment 1),
  with its given poses; held-out
  frames keep their sensor RGB and depth (scored on valid pixels); the reference surface is a TSDF fusion of
  all 100 frames.
- `icl`: the 5-frame ICL-NUIM fixture (given poses, rendered depth).

Settings: `dense` (all training frames), `few3` and `few6` (3 / 6 training views); every 8th frame held out.
Rows: depth-nerfacto exactly as `ns-train depth-nerfacto --data <scene>`; depth-nerfacto given diffnerf's box,
depth weight and sampler; Open3D TSDF fusion of the same training frames; diffnerf without prior, on refined
depth, with the regulariser, and both. Every NeRF gets the same iterations, rays per batch and model-size
preset, and is trained by `benchmarks/nerf_harness.py` (nerfstudio's `Trainer.train()`), one process per run,
`--jobs` runs at a time. Writes `benchmarks/results/nerf.md` and `benchmarks/results/nerf.png`.
This module runs the benchmark; the scenes are built in `nerf_scenes`, TSDF fusion is `tsdf_fusion`, the prior's
training and refinement steps are `nerf_prior_steps`, and the table and plot are written by `nerf_report`.

    python -m benchmarks.bench_nerf                      # the full CPU benchmark
    python -m benchmarks.bench_nerf --scenes room1 --settings dense --iterations 10 --methods depth-nerfacto \
        diffnerf-no-prior tsdf-fusion --report /tmp/smoke.md   # smoke test
    python -m benchmarks.bench_nerf <flags> --plan       # what is stored for reuse, what would train
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, NamedTuple

import numpy as np
import torch
import tyro

from benchmarks.fingerprint import (
    config_fingerprint,
    folder_fingerprint,
    git_commit,
    package_versions,
    sources_unchanged,
)
from benchmarks.nerf_prior_steps import development_prior, refine_view
from benchmarks.nerf_report import write_report
from benchmarks.nerf_scenes import BenchScene, benchmark_rooms, icl_scene, split, sun3d_scene, synthetic_scene
from benchmarks.tsdf_fusion import tsdf_row
from data_converters.nerfstudio_scene import load_scene
from diffnerf_ns.data_split import EVAL_INTERVAL
from diffnerf_ns.models.patch_regulariser import PatchRegulariserConfig
from diffnerf_ns.prior.refine import REFINED_LAYERS

NERF_METHODS = (
    "depth-nerfacto",
    "depth-nerfacto-matched",
    "diffnerf-no-prior",
    "diffnerf-refined",
    "diffnerf-reg",
    "diffnerf-both",
)
PRIOR_METHODS = ("diffnerf-refined", "diffnerf-reg", "diffnerf-both")
PoseRefinement = Literal["off", "SO3xR3", "SE3"]


class RunSpec(NamedTuple):
    """One harness run: a method on a scene's view, scored against `reference`; `extra`: further harness flags,
    named `label` in the result file (default: the method)."""

    method: str
    scene: str
    setting: str
    view: Path
    reference: Path
    prior: Path | None
    seed: int
    extra: tuple[str, ...] = ()
    label: str | None = None


@dataclass
class Bench:
    """Build the scenes, run every method on every scene and setting, write the table and the plot."""

    scenes: tuple[str, ...] = ("room1", "room2", "room3", "sun3d", "icl")
    settings: tuple[str, ...] = ("dense", "few3", "few6")
    methods: tuple[str, ...] = (*NERF_METHODS, "tsdf-fusion")
    iterations: int = 300
    rays_per_batch: int = 512
    seeds: tuple[int, ...] = (0,)
    small: bool = True
    """CPU-sized model for every method (presets.small_model); --no-small on a GPU."""
    downscale: int = 4
    """Image size divisor (640x480-class input -> 140x106 / 160x120)."""
    jobs: int = 2
    """Runs in parallel, one process each (one thread each)."""
    workdir: Path = Path("outputs/bench_nerf")
    store: Path | None = None
    """Folder of the runs' result JSONs (fingerprinted, reused while valid); default `<workdir>/runs`. A folder in
    the repository (`benchmarks/results/nerf_runs`) lets a grid longer than a session be finished across sessions
    on fresh machines; the training logs stay under the workdir."""
    prior: Path | None = None
    """Prior folder for the prior rows; default: train a CPU-sized one on a development room (not a benchmark
    room) with `diffnerf-prior train`, bounded by --prior-minutes."""
    prior_minutes: float = 10.0
    dense_pose_refinement: PoseRefinement = "SO3xR3"
    """Pose refinement of every method in the dense rows (nerfstudio's and diffnerf's default)."""
    few_view_pose_refinement: PoseRefinement = "off"
    """Pose refinement of every method in the few-view rows (diffnerf-few-view's: too little overlap to refine)."""
    regulariser_every_n_steps: int | None = None
    """Override the regulariser's `every_n_steps` in the prior rows (cost study); None keeps the preset's."""
    regulariser_patch_sample_fraction: float | None = None
    """Override the regulariser's `patch_sample_fraction` in the prior rows (cost study); None keeps the preset's."""
    report: Path = Path("benchmarks/results/nerf.md")
    plan: bool = False
    """Only list, per setting and method, how many runs are stored for reuse and how many would train; train
    nothing and write no report (views are still split and refined, since refined depth is part of a run's key)."""

    def bench_scenes(self) -> dict[str, BenchScene]:
        rooms = benchmark_rooms()
        out = {}
        for name in self.scenes:
            if name in rooms:
                out[name] = synthetic_scene(name, *rooms[name], self.workdir, self.downscale)
            elif name == "sun3d":
                out[name] = sun3d_scene(self.workdir, self.downscale)
            elif name == "icl":
                out[name] = icl_scene(self.workdir)
            else:
                raise SystemExit(f"unknown scene {name!r}: choose from {[*rooms, 'sun3d', 'icl']}")
        return out

    def prior_dir(self) -> Path:
        """The prior for the prior rows; trains a small one on a development room if none is given."""
        if self.prior is not None:
            return self.prior
        return development_prior(self.workdir, self.downscale, self.prior_minutes, self.env(threads=2))

    def env(self, threads: int) -> dict[str, str]:
        return {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}

    def run(self, spec: RunSpec) -> dict:
        """One harness process, or its stored result; a reused result says so (`reused`)."""
        args, out, fingerprint = self.result_path(spec)
        cached = self.cached(out)
        if cached is not None:
            return {**cached, "reused": True}
        out.parent.mkdir(parents=True, exist_ok=True)
        trained = self.workdir / "train" / out.relative_to(self.runs_dir()).with_suffix("")  # not in the store
        cmd = [sys.executable, "-m", "benchmarks.nerf_harness", *args, "--out", str(out), "--run-dir", str(trained)]
        name = spec.label or spec.method
        print(f"[{time.strftime('%H:%M:%S')}] {spec.scene}/{spec.setting}: {name} (seed {spec.seed})", flush=True)
        log = trained.with_suffix(".log")
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("w") as f:
            done = subprocess.run(cmd, env=self.env(threads=1), stdout=f, stderr=subprocess.STDOUT)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed (exit {done.returncode}); see {log}")
        result = {
            **json.loads(out.read_text()),
            "fingerprint": fingerprint,
            "commit": git_commit(),
            "finished": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        }
        out.write_text(json.dumps(result, indent=2))
        return {**result, "reused": False}

    def result_path(self, spec: RunSpec) -> tuple[list[str], Path, str]:
        """The run's harness flags, its result file and the fingerprint that names it.

        The fingerprint covers what the run depends on (harness flags and budget, the files the run reads, the
        prior where the method reads it, the installed packages); the project sources it imports are checked
        separately (`cached`).
        """
        method, scene, setting, view, reference, prior, seed, extra, label = spec
        prior = prior if method in PRIOR_METHODS else None  # a run that never reads the prior outlives a new one
        args = [
            "--method",
            method,
            "--scene",
            str(view),
            "--iterations",
            str(self.iterations),
            "--rays-per-batch",
            str(self.rays_per_batch),
            "--reference",
            str(reference),
            "--seed",
            str(seed),
            "--small" if self.small else "--no-small",
            *(["--few-view"] if setting.startswith("few") else []),
            *(["--prior", str(prior)] if prior else []),
            *extra,
        ]
        fingerprint = config_fingerprint(
            {
                "args": args,
                "inputs": view_fingerprint(view, refined=method in ("diffnerf-refined", "diffnerf-both")),
                "prior": folder_fingerprint(prior) if prior else None,
                "packages": package_versions(),
            }
        )
        out = self.runs_dir() / scene / setting / f"{label or method}.seed{seed}.{fingerprint}.json"
        return args, out, fingerprint

    def runs_dir(self) -> Path:
        return self.workdir / "runs" if self.store is None else self.store

    @staticmethod
    def cached(out: Path) -> dict | None:
        """The stored result, if there is one and every project source its run imported is unchanged (so this
        checkout would reproduce it)."""
        if not out.exists():
            return None
        stored = json.loads(out.read_text())
        return stored if sources_unchanged(stored.get("sources", {})) else None

    def pose_refinement(self, setting: str) -> PoseRefinement:
        return self.dense_pose_refinement if setting == "dense" else self.few_view_pose_refinement

    def extra_flags(self, method: str, setting: str) -> tuple[str, ...]:
        """The row's pose refinement for every method; the regulariser's cadence for prior rows.

        The patch sample fraction is always passed (the config's default when not overridden; no preset sets its
        own), so a run's key names the fraction it trained with: a run made with the flag and one made with the
        same default are one run.
        """
        flags = ("--camera-optimizer-mode", self.pose_refinement(setting))
        if method in ("diffnerf-reg", "diffnerf-both"):
            if self.regulariser_every_n_steps is not None:
                flags += ("--regulariser-every-n-steps", str(self.regulariser_every_n_steps))
            fraction = self.regulariser_patch_sample_fraction
            if fraction is None:
                fraction = PatchRegulariserConfig.patch_sample_fraction
            flags += ("--regulariser-patch-sample-fraction", str(fraction))
        return flags

    def plan_jobs(self) -> tuple[dict[str, BenchScene], Path | None, list[RunSpec], list[str]]:
        """(scenes, prior, runs in grid order, skipped cells). Prepares what the runs read: the views, and their
        refined layers where a method trains on them (a re-refinement when the prior or refine code changed)."""
        scenes = self.bench_scenes()
        uses_prior = any(m in PRIOR_METHODS for m in self.methods)
        prior = self.prior_dir() if uses_prior else None
        refined = any(m in ("diffnerf-refined", "diffnerf-both") for m in self.methods)
        jobs, skipped = [], []
        for name, scene in scenes.items():
            num_frames = len(load_scene(scene.scene_dir).c2w)
            for setting in self.settings:
                num_train = None if setting == "dense" else int(setting.removeprefix("few"))
                if num_train is not None and 2 * num_train > num_frames - len(range(0, num_frames, EVAL_INTERVAL)):
                    skipped.append(f"`{name}` {setting}")  # ICL has 4 training frames: dense is already few-view there
                    continue
                view = split(scene.scene_dir, self.workdir / "views" / name / setting, num_train)
                if refined:
                    refine_view(view, prior, self.env(threads=2))
                for method in self.methods:
                    if method != "tsdf-fusion":
                        for seed in self.seeds:
                            extra = self.extra_flags(method, setting)
                            jobs.append(RunSpec(method, name, setting, view, scene.reference, prior, seed, extra))
        # Seed-major: a grid cut short (by a session's end) leaves whole seeds, every method on every scene.
        jobs.sort(key=lambda job: self.seeds.index(job.seed))
        return scenes, prior, jobs, skipped

    def main(self) -> None:
        started = time.time()
        torch.set_num_threads(2)
        scenes, prior, jobs, skipped = self.plan_jobs()
        if self.plan:
            print_plan(self, jobs)
            return
        results: dict[tuple[str, str], dict[str, list[dict]]] = {}
        with ThreadPoolExecutor(self.jobs) as pool:
            futures = [(job, pool.submit(self.run, job)) for job in jobs]
            for job, future in futures:
                results.setdefault((job.scene, job.setting), {}).setdefault(job.method, []).append(future.result())
        if "tsdf-fusion" in self.methods:
            for (name, setting), rows in results.items():
                view = self.workdir / "views" / name / setting
                rows["tsdf-fusion"] = [tsdf_row(view, np.load(scenes[name].reference))]
        write_report(self, scenes, results, time.time() - started, prior, skipped)

    def command(self) -> str:
        args = [
            f"--scenes {' '.join(self.scenes)}",
            f"--settings {' '.join(self.settings)}",
            f"--methods {' '.join(self.methods)}",
            f"--iterations {self.iterations}",
            f"--rays-per-batch {self.rays_per_batch}",
            f"--seeds {' '.join(map(str, self.seeds))}",
            "--small" if self.small else "--no-small",
            f"--downscale {self.downscale}",
            f"--jobs {self.jobs}",
            f"--workdir {self.workdir}",
            *([f"--store {self.store}"] if self.store is not None else []),
            f"--report {self.report}",
            f"--dense-pose-refinement {self.dense_pose_refinement}",
            f"--few-view-pose-refinement {self.few_view_pose_refinement}",
            *(
                [f"--regulariser-every-n-steps {self.regulariser_every_n_steps}"]
                if self.regulariser_every_n_steps
                else []
            ),
            *(
                [f"--regulariser-patch-sample-fraction {self.regulariser_patch_sample_fraction}"]
                if self.regulariser_patch_sample_fraction is not None
                else []
            ),
            f"--prior {self.prior}" if self.prior else f"--prior-minutes {self.prior_minutes}",
        ]
        return "python -m benchmarks.bench_nerf " + " ".join(args)


def view_fingerprint(view: Path, refined: bool) -> str:
    """What a run reads from a benchmark view: its transforms and the files of its layers.

    Not the refinement's stamp (`refined_with.json`), nor, for a run on raw depth, the refined layers and their keys
    in the transforms: redoing a refinement (its code changed, its output did not) must not discard runs that never
    read it.
    """
    meta = json.loads((view / "transforms.json").read_text())
    if not refined:
        meta["frames"] = [{k: v for k, v in f.items() if k not in REFINED_LAYERS} for f in meta.get("frames", [])]
    layers = ("images", "depth", *(REFINED_LAYERS.values() if refined else ()))
    return config_fingerprint({"transforms": meta, **{layer: folder_fingerprint(view / layer) for layer in layers}})


def print_plan(bench: Bench, jobs: list[RunSpec]) -> None:
    """Per setting and method: runs stored for reuse / runs in the grid; then the runs that would train."""
    counts: dict[tuple[str, str], list[int]] = {}
    missing = []
    for job in jobs:
        stored = bench.cached(bench.result_path(job)[1]) is not None
        count = counts.setdefault((job.setting, job.method), [0, 0])
        count[0] += stored
        count[1] += 1
        if not stored:
            missing.append(f"{job.scene}/{job.setting}: {job.method} (seed {job.seed})")
    for (setting, method), (stored, total) in counts.items():
        print(f"{setting:6} {method:24} {stored:3d} / {total:3d} stored")
    print(f"{len(missing)} of {len(jobs)} runs would train, in this order:")
    print("\n".join(missing))


if __name__ == "__main__":
    tyro.cli(Bench).main()
