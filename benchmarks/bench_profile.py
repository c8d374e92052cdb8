"""Where one diffnerf-no-prior training iteration's time goes (the demo's scene and model size).

    python -m benchmarks.bench_profile                      # CPU -> benchmarks/results/profile_cpu.md
    python -m benchmarks.bench_profile --implementation triton   # on a GPU -> profile_gpu.md

Three measurements of the same trainer:
1. plain wall time per iteration, trained through nerfstudio's `Trainer.train()` (every callback runs);
2. the same iterations under torch.profiler, with named ranges around data loading, proposal sampling,
   the NeRF field, the hash grids, the MLPs and the optimizer step; backward is the autograd engine's
   own events. On CUDA every range synchronises first, so ranges hold their kernels' time;
3. a replay of each hash grid and MLP on the inputs it saw in one iteration, forward and backward
   timed apart (the profiler cannot split backward by module).
"""

from __future__ import annotations

import dataclasses
import os
import platform
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Literal

import torch
import tyro
from nerfstudio.engine.callbacks import TrainingCallback, TrainingCallbackLocation
from nerfstudio.engine.trainer import Trainer
from nerfstudio.field_components.encodings import HashEncoding
from nerfstudio.field_components.mlp import MLP
from torch.profiler import ProfilerActivity, profile, record_function

from data_converters.synthetic.demo_scene import make_demo_scene
from diffnerf_ns.compat import offline_lpips
from diffnerf_ns.device import default_device
from diffnerf_ns.diffnerf_config import diffnerf_no_prior_method
from diffnerf_ns.presets import configure_run

DEMO_MODEL = {"log2_hashmap_size": 17, "num_levels": 12, "max_res": 512}
"""scripts/demo.sh's model flags (default hidden sizes and sample counts)."""


def machine_name() -> str:
    """CPU model and core count, plus the GPU when one is used."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    name = f"{cpu}, {torch.get_num_threads()} torch thread(s) of {len(os.sched_getaffinity(0))} cores"
    if torch.cuda.is_available():
        name += f"; GPU {torch.cuda.get_device_name()}"
    return name


def _sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def _labelled(fn: Callable, label: str) -> Callable:
    def wrapper(*args, **kwargs):
        _sync()
        with record_function(label):
            out = fn(*args, **kwargs)
            _sync()
        return out

    return wrapper


def instrument(trainer: Trainer) -> None:
    """Named profiler ranges around the parts of an iteration (instance attributes: nothing global changes)."""
    model = trainer.pipeline.model
    dm = trainer.pipeline.datamanager
    dm.next_train = _labelled(dm.next_train, "data loading (next_train)")
    model.proposal_sampler.forward = _labelled(model.proposal_sampler.forward, "proposal sampling")
    model.field.forward = _labelled(model.field.forward, "nerf field")
    model.get_loss_dict = _labelled(model.get_loss_dict, "losses")
    trainer.optimizers.optimizer_scaler_step_some = _labelled(
        trainer.optimizers.optimizer_scaler_step_some, "optimizer step"
    )
    for name, module in model.named_modules():
        where = "field" if name.startswith("field.") else "proposal nets"
        if isinstance(module, HashEncoding):
            module.forward = _labelled(module.forward, f"hash grid forward ({where})")
        elif isinstance(module, MLP):
            module.forward = _labelled(module.forward, f"MLP forward ({where})")


def train_steps(trainer: Trainer, start: int, count: int, label: str | None = None) -> float:
    """Run steps [start, start + count) through nerfstudio's own `Trainer.train()`, so every callback runs as under
    ns-train; returns wall seconds from the first step's start to the last step's end (the end-of-training
    checkpoint is outside). `label` wraps each step in a profiler range of that name."""
    stamps: list[float] = []
    ranges: list[record_function] = []

    def before(step: int) -> None:
        _sync()
        stamps.append(time.perf_counter())
        if label is not None:
            ranges.append(record_function(label).__enter__())

    def after(step: int) -> None:
        if label is not None:
            ranges.pop().__exit__(None, None, None)
        _sync()
        stamps.append(time.perf_counter())

    hooks = [
        TrainingCallback([TrainingCallbackLocation.BEFORE_TRAIN_ITERATION], before),
        TrainingCallback([TrainingCallbackLocation.AFTER_TRAIN_ITERATION], after),
    ]
    trainer.callbacks = [hooks[0], *trainer.callbacks, hooks[1]]
    trainer._start_step, trainer.config.max_num_iterations = start, count
    trainer.train()
    trainer.callbacks = trainer.callbacks[1:-1]
    return stamps[-1] - stamps[0]


def replay_components(trainer: Trainer, step: int, repeats: int = 3) -> list[tuple[str, int, float, float]]:
    """(module, points, forward ms, backward ms) per hash grid / MLP, on the inputs of one real iteration."""
    model = trainer.pipeline.model
    seen: dict[str, list[torch.Tensor]] = defaultdict(list)
    hooks = [
        module.register_forward_hook(
            lambda m, args, out, name=name: seen[name].append(args[0].detach().clone().requires_grad_())
        )
        for name, module in model.named_modules()
        if isinstance(module, HashEncoding | MLP)
    ]
    train_steps(trainer, step, 1)
    for h in hooks:
        h.remove()
    modules = dict(model.named_modules())
    rows = []
    for name, inputs in seen.items():
        fwd = bwd = 0.0
        for _ in range(repeats):
            for x in inputs:
                _sync()
                t0 = time.perf_counter()
                y = modules[name](x)
                _sync()
                t1 = time.perf_counter()
                y.backward(torch.ones_like(y))
                _sync()
                fwd, bwd = fwd + t1 - t0, bwd + time.perf_counter() - t1
        rows.append((name, sum(x.shape[0] for x in inputs), 1e3 * fwd / repeats, 1e3 * bwd / repeats))
    model.zero_grad(set_to_none=True)
    return rows


@dataclasses.dataclass
class ProfileArgs:
    """Profile diffnerf-no-prior training iterations on the demo scene."""

    scene: Path | None = None
    """A converted scene; default: the demo room (48 frames, 160x120), rendered into workdir."""
    workdir: Path = Path("outputs/bench_profile")
    iterations: int = 10
    warmup: int = 3
    rays_per_batch: int = 1024
    threads: int = 1
    """torch threads on CPU (the machine is shared: 1 gives stable figures)."""
    implementation: Literal["auto", "tcnn", "triton", "torch"] = "auto"
    out: Path | None = None
    """Markdown table; default benchmarks/results/profile_<cpu|gpu>.md."""

    def main(self) -> None:
        torch.set_num_threads(self.threads)
        torch.manual_seed(0)
        scene = self.scene
        if scene is None:
            scene = self.workdir / "demo_scene"
            if not (scene / "transforms.json").exists():
                make_demo_scene(scene, num_frames=48, width=160, height=120)
        config = configure_run(
            diffnerf_no_prior_method.config, scene, self.workdir / "runs", 10**6, self.rays_per_batch, small=False
        )
        model = dataclasses.replace(config.pipeline.model, implementation=self.implementation, **DEMO_MODEL)
        config.pipeline = dataclasses.replace(config.pipeline, model=model)
        with offline_lpips():
            trainer = Trainer(config)
            trainer.setup()
        trainer.pipeline.train()

        train_steps(trainer, 0, self.warmup)
        c0 = time.process_time()
        seconds_per_it = train_steps(trainer, self.warmup, self.iterations) / self.iterations
        cpu_seconds_per_it = (time.process_time() - c0) / self.iterations
        step = self.warmup + self.iterations
        replay = replay_components(trainer, step)

        instrument(trainer)
        device = default_device()
        activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device == "cuda" else [])
        with profile(activities=activities) as prof:
            train_steps(trainer, step + 1, self.iterations, label="iteration")
        self.write(
            prof,
            seconds_per_it,
            cpu_seconds_per_it,
            replay,
            device,
            scene,
            trainer.pipeline.model.config.implementation,
        )

    def write(
        self,
        prof,
        seconds_per_it: float,
        cpu_seconds_per_it: float,
        replay: list,
        device: str,
        scene: Path,
        resolved: str,
    ) -> None:
        events = prof.key_averages()
        n = self.iterations
        total_ms = {e.key: e.cpu_time_total / 1e3 / n for e in events}
        iteration = total_ms["iteration"]
        backward = sum(v for k, v in total_ms.items() if k.startswith("autograd::engine::evaluate_function:"))
        parts = [
            ("data loading (next_train)", total_ms.get("data loading (next_train)", 0.0)),
            ("proposal sampling (2 proposal nets + sampling)", total_ms.get("proposal sampling", 0.0)),
            ("nerf field forward", total_ms.get("nerf field", 0.0)),
            ("losses", total_ms.get("losses", 0.0)),
            ("backward (autograd engine)", backward),
            ("optimizer step", total_ms.get("optimizer step", 0.0)),
        ]
        rest = iteration - sum(v for _, v in parts)
        nested = [
            ("hash grid forward (proposal nets)", "proposal sampling"),
            ("MLP forward (proposal nets)", "proposal sampling"),
            ("hash grid forward (field)", "nerf field forward"),
            ("MLP forward (field)", "nerf field forward"),
        ]
        scatter = total_ms.get("autograd::engine::evaluate_function: IndexBackward0", 0.0)
        lines = [
            f"# Profile of one diffnerf-no-prior training iteration ({device.upper()})",
            "",
            f"Machine: {machine_name()}.",
            f"Scene: {scene} ; model: demo size ({DEMO_MODEL}, default hidden sizes and samples), "
            f"{self.rays_per_batch} rays/batch, hash grid implementation `{self.implementation}` "
            f"(resolved: `{resolved}`).",
            "",
            "Command: `python -m benchmarks.bench_profile "
            + " ".join(
                f"--{k.replace('_', '-')} {v}"
                for k, v in (
                    ("iterations", self.iterations),
                    ("rays_per_batch", self.rays_per_batch),
                    ("threads", self.threads),
                    ("implementation", self.implementation),
                )
            )
            + "`",
            "",
            f"**Wall time, no profiler: {seconds_per_it:.3f} s/iteration** "
            f"({self.rays_per_batch / seconds_per_it:.0f} rays/s; "
            f"mean of {self.iterations} after {self.warmup} warm-up); process CPU time "
            f"{cpu_seconds_per_it:.3f} s/iteration (less sensitive to other jobs on a shared machine; "
            f"load average at the end: {os.getloadavg()[0]:.1f}).",
            "",
            f"## Breakdown under torch.profiler (ms/iteration; profiled iteration {iteration:.0f} ms)",
            "",
            "| part | ms | % of iteration |",
            "|---|---:|---:|",
        ]
        lines += [f"| {name} | {ms:.1f} | {100 * ms / iteration:.1f} |" for name, ms in parts]
        lines.append(
            f"| rest: ray bundle, renderers, metrics, callbacks, Python | {rest:.1f} | {100 * rest / iteration:.1f} |"
        )
        lines += ["", "Nested in the rows above:", "", "| part | inside | ms | % of iteration |", "|---|---|---:|---:|"]
        lines += [
            f"| {k} | {inside} | {total_ms.get(k, 0.0):.1f} | {100 * total_ms.get(k, 0.0) / iteration:.1f} |"
            for k, inside in nested
        ]
        lines.append(
            f"| IndexBackward0 (hash-table gather backward: scatter-add) | backward | {scatter:.1f} | "
            f"{100 * scatter / iteration:.1f} |"
        )
        lines += [
            "",
            "## Components replayed on one iteration's inputs (ms per iteration, profiler off)",
            "",
            "| module | points | forward ms | backward ms |",
            "|---|---:|---:|---:|",
        ]
        lines += [f"| {name} | {pts} | {f:.1f} | {b:.1f} |" for name, pts, f, b in replay]
        hash_rows = [r for r in replay if "mlp_base.model.0" in r[0] or r[0].endswith(".encoding")]
        if hash_rows:
            f, b = sum(r[2] for r in hash_rows), sum(r[3] for r in hash_rows)
            lines.append(
                f"| **all hash grids** | | **{f:.1f}** | **{b:.1f}** "
                f"({100 * (f + b) / 1e3 / seconds_per_it:.0f}% of the iteration, fwd+bwd) |"
            )
        lines += [
            "",
            "## Top operators by self time (profiler)",
            "",
            "```",
            events.table(sort_by="self_cpu_time_total", row_limit=15, max_name_column_width=60),
            "```",
            "",
        ]
        out = self.out or Path(f"benchmarks/results/profile_{device}.md")
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text("\n".join(lines))
        print("\n".join(lines[:40]))
        print(f"wrote {out}")


if __name__ == "__main__":
    tyro.cli(ProfileArgs).main()
