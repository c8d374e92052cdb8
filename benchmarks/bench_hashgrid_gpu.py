"""GPU: the fused Triton hash grid against nerfstudio's torch grid, kernels alone and end to end.

    python -m benchmarks.bench_hashgrid_gpu kernels             # encoding forward / forward+backward, do_bench
    python -m benchmarks.bench_hashgrid_gpu all                 # on a CUDA machine -> results/hashgrid_gpu.md
    python -m benchmarks.bench_hashgrid_gpu all --smoke         # tiny CPU run: checks the script executes

`kernels` times the encoding alone (16 levels, 2^19 table, 2 features: diffnerf's defaults) on 2^18 to 2^20
points; `all` trains diffnerf-no-prior with each grid (depth-nerfacto's torch grid is measured already).

Every run is its own process (peak memory is that run's alone), trains with nerfstudio's
`Trainer.train()` at default model sizes, then scores the held-out views' PSNR (same code for every
method). Rays/s excludes the first `warmup` iterations
(Triton compiles its kernels on first use). All runs of one invocation use the same card.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch
import tyro
from nerfstudio.engine.callbacks import TrainingCallback, TrainingCallbackLocation
from nerfstudio.engine.trainer import Trainer
from torchmetrics.functional import peak_signal_noise_ratio

from benchmarks.nerf_harness import method_config
from data_converters.synthetic.demo_scene import make_demo_scene
from diffnerf_ns.compat import offline_lpips
from diffnerf_ns.presets import configure_run

Impl = Literal["triton", "torch"]
RUNS: tuple[tuple[str, Impl], ...] = (
    ("diffnerf-no-prior", "triton"),
    ("diffnerf-no-prior", "torch"),
)


def _milliseconds(fn, smoke: bool) -> float:
    """Median kernel time: `triton.testing.do_bench` on CUDA (L2 flushed between calls), wall clock on CPU."""
    if not smoke:
        import triton.testing

        return float(triton.testing.do_bench(fn, warmup=25, rep=100, return_mode="median"))
    fn()
    start = time.perf_counter()
    for _ in range(3):
        fn()
    return (time.perf_counter() - start) / 3 * 1e3


@dataclass
class Kernels:
    """The encoding alone, fused against torch grid: forward, and forward + backward (input and table grads)."""

    log2_points: tuple[int, ...] = (18, 19, 20)
    out: Path = Path("benchmarks/results/hashgrid_kernels_gpu.md")
    smoke: bool = False
    """CPU check of the script: 2^10 points, the fused row falls back to the torch grid."""

    def main(self) -> None:
        from nerfstudio.field_components.encodings import HashEncoding

        from diffnerf_ns.fields.triton_hash_encoding import FusedHashEncoding

        device = "cpu" if self.smoke else "cuda"
        sizes = (10,) if self.smoke else self.log2_points
        torch.manual_seed(0)
        enc = HashEncoding(num_levels=16, min_res=16, max_res=2048, log2_hashmap_size=19, implementation="torch")
        enc = enc.to(device)
        grids = {"torch": enc, "fused (Triton)": FusedHashEncoding(enc)}
        card = torch.cuda.get_device_name() if not self.smoke else "cpu (smoke)"
        lines = [
            "# Hash-grid encoding kernels alone" + (" (SMOKE RUN ON CPU: not a measurement)" if self.smoke else ""),
            "",
            f"Card: {card}; torch {torch.__version__}. Command: `python -m benchmarks.bench_hashgrid_gpu kernels`. "
            "16 levels, 2^19 table, 2 features, float32 points in the unit cube; median of "
            "`triton.testing.do_bench` (25 warm-up, 100 ms).",
            "",
            "| points | grid | forward ms | forward + backward ms | M points/s (fwd+bwd) | x torch (fwd+bwd) |",
            "|---:|---|---:|---:|---:|---:|",
        ]
        for log2 in sizes:
            x = torch.rand(1 << log2, 3, device=device, requires_grad=True)
            grad = torch.randn(1 << log2, 32, device=device)
            times = {}
            for name, grid in grids.items():

                def forward(grid=grid, x=x) -> None:
                    with torch.no_grad():
                        grid(x)

                def both(grid=grid, x=x, grad=grad) -> None:
                    torch.autograd.grad(grid(x), [x, grid.hash_table], grad)

                times[name] = (_milliseconds(forward, self.smoke), _milliseconds(both, self.smoke))
            for name, (fwd, fb) in times.items():
                lines.append(
                    f"| 2^{log2} | {name} | {fwd:.3f} | {fb:.3f} | {(1 << log2) / fb / 1e3:.0f} | "
                    f"{times['torch'][1] / fb:.2f} |"
                )
            self.out.parent.mkdir(parents=True, exist_ok=True)
            self.out.write_text("\n".join(lines) + "\n")  # after each size: a cut run keeps what it measured
            print("\n".join(lines[-2:]), flush=True)


@torch.no_grad()
def held_out_psnr(pipeline) -> float:
    """Mean PSNR of the held-out views, computed the same way for every method (nerfacto's own metrics
    need LPIPS weights, which an offline machine does not have)."""
    model = pipeline.model.eval()
    dataset = pipeline.datamanager.eval_dataset
    values = []
    for i in range(len(dataset)):
        out = model.get_outputs_for_camera(dataset.cameras[i : i + 1].to(pipeline.device))
        gt = dataset[i]["image"][..., :3].to(out["rgb"].device)
        values.append(float(peak_signal_noise_ratio(out["rgb"].clamp(0, 1), gt, data_range=1.0)))
    return sum(values) / len(values)


def check_fused_grid_on_cuda() -> str:
    """The compiled kernel against the torch grid on this card (the CPU tests only cover the interpreter)."""
    from nerfstudio.field_components.encodings import HashEncoding

    from diffnerf_ns.fields.triton_hash_encoding import FusedHashEncoding

    torch.manual_seed(0)
    enc = HashEncoding(num_levels=16, min_res=16, max_res=2048, log2_hashmap_size=19, implementation="torch").cuda()
    with torch.no_grad():
        enc.hash_table.uniform_(-1, 1)
    fused = FusedHashEncoding(enc)
    x = torch.rand(1 << 18, 3, device="cuda")
    x_ref, x_fused = x.clone().requires_grad_(), x.clone().requires_grad_()
    ref, out = enc(x_ref), fused(x_fused)
    g = torch.randn_like(ref)
    g_ref = torch.autograd.grad(ref, [x_ref, enc.hash_table], g)
    g_out = torch.autograd.grad(out, [x_fused, fused.hash_table], g)
    with torch.no_grad():
        errors = [(out - ref).abs().max()] + [
            (a - b).abs().max() / b.abs().max() for a, b in zip(g_out, g_ref, strict=True)
        ]
    report = "fused grid vs torch grid on CUDA: max |value| error {:.2e}, relative input-grad {:.2e}, table-grad {:.2e}"
    report = report.format(*(float(e) for e in errors))
    # Values: at the finest level (scale 2048) one float32 ulp of `x * scale` is 2.4e-4 of a cell, and the two
    # implementations may round it differently (FMA contraction), which moves a trilinear weight by that much:
    # the H200 showed 1.7e-4 with tables in [-1, 1]. A wrong hash or corner is an O(1) error.
    if not (errors[0] < 5e-4 and errors[1] < 1e-3 and errors[2] < 1e-4):
        raise SystemExit(f"bench_hashgrid_gpu: the fused grid does not match the torch grid: {report}")
    return report


@dataclass
class RunOne:
    """Train one method with one hash-grid implementation and write a JSON result."""

    method: Literal["diffnerf-no-prior", "depth-nerfacto"]
    implementation: Impl
    scene: Path
    out: Path
    rays_per_batch: int = 4096
    iterations: int = 2000
    warmup: int = 50
    smoke: bool = False

    def main(self) -> None:
        torch.manual_seed(0)
        config = configure_run(
            method_config(self.method, None),
            self.scene,
            self.out.parent / "runs",
            self.iterations,
            self.rays_per_batch,
            small=self.smoke,
        )
        config.pipeline.model = dataclasses.replace(config.pipeline.model, implementation=self.implementation)
        cuda = torch.cuda.is_available()
        with offline_lpips():
            trainer = Trainer(config)
            trainer.setup()
        stamps: list[float] = []

        def stamp(step: int) -> None:
            if cuda:
                torch.cuda.synchronize()
            stamps.append(time.perf_counter())

        trainer.callbacks.append(TrainingCallback([TrainingCallbackLocation.BEFORE_TRAIN_ITERATION], stamp))
        if cuda:
            torch.cuda.reset_peak_memory_stats()
        trainer.train()
        timed = stamps[self.warmup :]
        rays_per_s = self.rays_per_batch * (len(timed) - 1) / (timed[-1] - timed[0])
        peak_mb = torch.cuda.max_memory_allocated() / 2**20 if cuda else float("nan")
        result = {
            "method": self.method,
            "implementation": self.implementation,
            "resolved_implementation": trainer.pipeline.model.config.implementation,
            "rays_per_batch": self.rays_per_batch,
            "iterations": self.iterations,
            "rays_per_second": rays_per_s,
            "peak_memory_mb": peak_mb,
            "psnr": held_out_psnr(trainer.pipeline),
            "device": torch.cuda.get_device_name() if cuda else "cpu",
        }
        self.out.write_text(json.dumps(result, indent=2))
        print(json.dumps(result))


@dataclass
class Bench:
    """Every (method, implementation) at every batch size, one process each, then one markdown table."""

    scene: Path | None = None
    """A converted scene; default: the demo room rendered at 640x480 (48 frames) into workdir."""
    workdir: Path = Path("outputs/bench_hashgrid_gpu")
    rays: tuple[int, ...] = (8192,)
    iterations: int = 2000
    warmup: int = 50
    out: Path = Path("benchmarks/results/hashgrid_gpu.md")
    smoke: bool = False
    """CPU check that the script runs: tiny scene and model, 4 iterations, the Triton row run on the torch
    grid (Triton needs CUDA); writes under workdir, never to benchmarks/results."""

    def main(self) -> None:
        if not torch.cuda.is_available() and not self.smoke:
            sys.exit(
                "bench_hashgrid_gpu: no CUDA device visible to torch; this benchmark needs a GPU (--smoke for CPU)."
            )
        if self.smoke:
            self.rays, self.iterations, self.warmup = (64, 128), 4, 1
            self.out = self.workdir / "smoke.md"
        check = "not run (smoke, CPU)" if self.smoke else check_fused_grid_on_cuda()
        print(check, flush=True)
        scene = self.scene or self.workdir / ("demo_smoke" if self.smoke else "demo_640x480")
        if not (scene / "transforms.json").exists():
            size = (
                dict(num_frames=16, width=64, height=48) if self.smoke else dict(num_frames=48, width=640, height=480)
            )
            make_demo_scene(scene, **size)
        results = []
        for rays in self.rays:
            for method, impl in RUNS:
                out = self.workdir / f"{method}_{impl}_{rays}.json"
                run_impl = "torch" if self.smoke else impl
                cmd = [sys.executable, "-m", "benchmarks.bench_hashgrid_gpu", "one", "--method", method]
                cmd += ["--implementation", run_impl, "--scene", str(scene), "--out", str(out)]
                cmd += ["--rays-per-batch", str(rays), "--iterations", str(self.iterations)]
                cmd += ["--warmup", str(self.warmup)] + (["--smoke"] if self.smoke else [])
                print(" ".join(cmd), flush=True)
                subprocess.run(cmd, check=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
                results.append({**json.loads(out.read_text()), "implementation": impl})
                self.write(results, scene, check)  # after each run: a cut session keeps what it measured

    def write(self, results: list[dict], scene: Path, check: str) -> None:
        devices = {r["device"] for r in results}
        lines = [
            "# Hash-grid implementations on one GPU" + (" (SMOKE RUN ON CPU: not a measurement)" if self.smoke else ""),
            "",
            f"Card: {', '.join(sorted(devices))}. Scene: {scene}. Default model sizes, mixed precision, "
            f"{self.iterations} iterations via `Trainer.train()`; rays/s after {self.warmup} warm-up iterations; "
            "PSNR: mean over the held-out views.",
            "",
            f"Correctness check before the runs: {check}.",
            "",
            "Command: `python -m benchmarks.bench_hashgrid_gpu all "
            f"--iterations {self.iterations} --rays {' '.join(map(str, self.rays))}`",
            "",
            "| rays/batch | method | hash grid | rays/s | x diffnerf torch grid | peak MB | PSNR "
            "| PSNR - diffnerf torch grid |",
            "|---:|---|---|---:|---:|---:|---:|---:|",
        ]
        for r in results:
            peer = next(
                (
                    p
                    for p in results
                    if p["rays_per_batch"] == r["rays_per_batch"]
                    and (p["method"], p["implementation"]) == ("diffnerf-no-prior", "torch")
                ),
                {"rays_per_second": float("nan"), "psnr": float("nan")},  # the torch run has not finished yet
            )
            grid = r["implementation"] + (
                "" if r["resolved_implementation"] == r["implementation"] else f" (ran {r['resolved_implementation']})"
            )
            lines.append(
                f"| {r['rays_per_batch']} | {r['method']} | {grid} | {r['rays_per_second']:.0f} | "
                f"{r['rays_per_second'] / peer['rays_per_second']:.2f} | {r['peak_memory_mb']:.0f} | "
                f"{r['psnr']:.2f} | {r['psnr'] - peer['psnr']:+.2f} |"
            )
        self.out.parent.mkdir(parents=True, exist_ok=True)
        self.out.write_text("\n".join(lines) + "\n")
        print("\n".join(lines))
        print(f"wrote {self.out}")


if __name__ == "__main__":
    tyro.extras.subcommand_cli_from_dict({"kernels": Kernels, "all": Bench, "one": RunOne}).main()
