"""Does the diffusion prior help? depth-nerfacto vs diffnerf without / with prior, plus TSDF fusion.

Scenes: the synthetic room with exact depth (dense: all training frames; few-view: 3 and 6 training
views) and the real ICL-NUIM 5-frame sequence from ../shared/fixtures. All methods get the same
iterations, ray batch and model size, the same held-out frames (every 8th), and are measured by the
same code (`benchmarks/nerf_harness.py`), each run in its own process. Writes
`benchmarks/results/regulariser.md`.

    python -m benchmarks.bench_regulariser [--iterations 300] [--no-small]
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import tyro
from PIL import Image

from data_converters.nerfstudio_scene import RGBDFrame, load_scene, split_view, write_scene
from data_converters.synthetic.demo_scene import make_demo_scene
from diffnerf_ns.metrics import surface_metrics
from diffnerf_ns.prior.sources import synthetic_room_frames
from diffnerf_ns.prior.train import TrainConfig, train_prior

FIXTURES = Path(__file__).resolve().parents[2] / "shared" / "fixtures"
COLUMNS = (  # (result key, header, format)
    ("psnr", "PSNR", ".2f"),
    ("ssim", "SSIM", ".3f"),
    ("depth_abs_rel", "AbsRel", ".3f"),
    ("depth_rmse", "RMSE", ".3f"),
    ("chamfer", "Chamfer", ".3f"),
    ("fscore", "F@5cm", ".3f"),
    ("seconds_per_iteration", "s/it", ".3f"),
    ("rays_per_second", "rays/s", ".0f"),
    ("peak_memory_mb", "peak MB", ".0f"),
)
RATIOS = ("depth_abs_rel", "chamfer", "seconds_per_iteration")


def table_row(scene: str, method: str, r: dict, peer: dict) -> str:
    """One markdown row: absolute metrics, then PSNR difference and ratios against the peer."""
    cells = [format(r[k], f) if k in r else "—" for k, _, f in COLUMNS]
    cells.append(f"{r['psnr'] - peer['psnr']:+.2f}" if "psnr" in r else "—")
    cells += [f"{r[k] / peer[k]:.2f}" if k in r and peer.get(k) else "—" for k in RATIOS]
    return "| " + " | ".join([scene, method, *cells]) + " |"


def icl_scene(out: Path, width: int, height: int) -> Path:
    """The ICL-NUIM fixture as a converted scene, downscaled to the benchmark resolution."""
    src = FIXTURES / "icl_nuim_5"
    cam = json.loads((src / "camera_primesense.json").read_text())
    K = np.asarray(cam["intrinsic_matrix"]).reshape(3, 3).T  # stored column-major
    lines = (src / "trajectory.log").read_text().split("\n")
    poses = [np.loadtxt(lines[5 * i + 1 : 5 * i + 5]) for i in range(5)]
    sx, sy = width / cam["width"], height / cam["height"]
    K_small = np.diag([sx, sy, 1.0]) @ K

    def frames():
        for i, c2w in enumerate(poses):
            rgb = Image.open(src / "color" / f"{i:05d}.jpg").convert("RGB").resize((width, height), Image.BILINEAR)
            depth = Image.open(src / "depth" / f"{i:05d}.png").resize((width, height), Image.NEAREST)
            yield RGBDFrame(np.asarray(rgb), np.asarray(depth, np.float32) / 1000.0, c2w, f"frame_{i:05d}")

    write_scene(out, K_small, width, height, frames(), {"source": str(src), "ground_truth": True})
    return out


def tsdf_surface(scene_dir: Path, voxel: float = 0.02) -> dict[str, float]:
    """Open3D TSDF fusion of the training frames (the classical anchor), scored like the NeRFs.

    Uses the tensor VoxelBlockGrid: the legacy ScalableTSDFVolume of open3d 0.20 integrates nothing here.
    """
    import open3d as o3d
    import open3d.core as o3c

    scene = load_scene(scene_dir)
    train = set(json.loads((scene_dir / "transforms.json").read_text())["train_filenames"])
    grid = o3d.t.geometry.VoxelBlockGrid(
        attr_names=("tsdf", "weight", "color"),
        attr_dtypes=(o3c.float32,) * 3,
        attr_channels=(1, 1, 3),
        voxel_size=voxel,
        block_resolution=8,
        block_count=50_000,
    )
    K = o3c.Tensor(scene.K, o3c.float64)
    for i, path in enumerate(scene.image_paths):
        if path.relative_to(scene_dir).as_posix() not in train:
            continue
        depth = o3d.t.geometry.Image(o3c.Tensor(np.ascontiguousarray(scene.depth(i), np.float32)))
        color = o3d.t.geometry.Image(o3c.Tensor(np.ascontiguousarray(scene.rgb(i), np.float32) / 255.0))
        extrinsic = o3c.Tensor(np.linalg.inv(scene.c2w[i]), o3c.float64)
        blocks = grid.compute_unique_block_coordinates(depth, K, extrinsic, 1.0, 10.0)
        grid.integrate(blocks, depth, color, K, extrinsic, 1.0, 10.0)
    points = grid.extract_point_cloud(weight_threshold=1.0).point.positions.numpy()  # few views: 1 observation
    return surface_metrics(points, scene.world_points(stride=2))


@dataclass
class Bench:
    """Run every method on every scene split and write the comparison table."""

    iterations: int = 300
    rays_per_batch: int = 512
    small: bool = True
    """CPU-sized model for every method (presets.small_model); --no-small on a GPU."""
    width: int = 96
    height: int = 72
    workdir: Path = Path("outputs/bench_regulariser")
    prior: Path | None = None
    """A trained prior folder; default: train one on other renders of the room (bounded by prior_minutes)."""
    prior_minutes: float = 6.0
    prior_steps: int = 3000
    prior_frames: int = 24
    prior_batch: int = 16
    tsdf: bool = True
    """Add the Open3D TSDF-fusion anchor (CPU)."""
    report: Path = Path("benchmarks/results/regulariser.md")
    scenes: tuple[str, ...] = ("few3", "few6", "dense", "icl")

    def scene_dirs(self) -> dict[str, Path]:
        base = self.workdir / "scenes"
        room = base / "room"
        if not (room / "transforms.json").exists():
            make_demo_scene(room, num_frames=48, width=self.width, height=self.height)
        dirs = {
            "few3": split_view(room, base / "room_few3", 3),
            "few6": split_view(room, base / "room_few6", 6),
            "dense": split_view(room, base / "room_dense", None),
        }
        if FIXTURES.is_dir():
            icl = base / "icl"
            if not (icl / "transforms.json").exists():
                icl_scene(icl, 160, 120)
            dirs["icl"] = split_view(icl, base / "icl_split", None)
        return {k: v for k, v in dirs.items() if k in self.scenes}

    def prior_dir(self) -> Path:
        if self.prior is not None:
            return self.prior
        out = self.workdir / "prior"
        if not (out / "unet" / "config.json").exists():
            # Different trajectory (seed) than the benchmark scene: the prior never sees held-out views.
            frames = synthetic_room_frames(self.prior_frames, self.width, self.height, seed=11)
            config = TrainConfig(
                out=out,
                patch_size=24,
                block_out_channels=(32, 64, 128),
                layers_per_block=1,
                attention=False,
                steps=self.prior_steps,
                batch_size=self.prior_batch,
                lr=1e-3,
                warmup_steps=100,
                ema_decay=0.995,
                checkpoint_every=500,
                max_minutes=self.prior_minutes,
            )
            train_prior(frames, config)
        return out

    def run(self, method: str, scene: str, scene_dir: Path, prior: Path) -> dict:
        out = self.workdir / "runs" / scene / f"{method}.json"
        if out.exists():
            return json.loads(out.read_text())
        out.parent.mkdir(parents=True, exist_ok=True)
        cmd = [
            sys.executable,
            "-m",
            "benchmarks.nerf_harness",
            "--method",
            method,
            "--scene",
            str(scene_dir),
            "--out",
            str(out),
            "--iterations",
            str(self.iterations),
            "--rays-per-batch",
            str(self.rays_per_batch),
            "--prior",
            str(prior),
            "--small" if self.small else "--no-small",
        ]
        print(f"[{time.strftime('%H:%M:%S')}] {scene}: {method}", flush=True)
        subprocess.run(cmd, check=True, env={**os.environ, "HF_HUB_OFFLINE": "1"}, stdout=subprocess.DEVNULL)
        return json.loads(out.read_text())

    def main(self) -> None:
        prior = self.prior_dir()
        rows = []
        for scene, scene_dir in self.scene_dirs().items():
            few = scene.startswith("few")
            ours = ("diffnerf-few-view-no-prior", "diffnerf-few-view") if few else ("diffnerf-no-prior", "diffnerf")
            results = {m: self.run(m, scene, scene_dir, prior) for m in ("depth-nerfacto", *ours)}
            if self.tsdf:
                results["tsdf-fusion"] = tsdf_surface(scene_dir)
            rows.append((scene, results))
            self.write(rows)

    def write(self, rows: list[tuple[str, dict]]) -> None:
        device = torch.cuda.get_device_name() if torch.cuda.is_available() else f"CPU ({os.cpu_count()} cores)"
        lines = [
            "# diffnerf vs depth-nerfacto: does the diffusion prior help?",
            "",
            f"Command: `python -m benchmarks.bench_regulariser --iterations {self.iterations} "
            f"--rays-per-batch {self.rays_per_batch} {'--small' if self.small else '--no-small'} "
            f"--prior-steps {self.prior_steps} --prior-frames {self.prior_frames} --prior-batch {self.prior_batch} "
            f"--prior-minutes {self.prior_minutes} "
            f"--scenes {' '.join(self.scenes)}{'' if self.tsdf else ' --no-tsdf'}"
            f"{f' --prior {self.prior}' if self.prior else ''}`  ",
            f"Machine: {platform.machine()} {device}, Python {platform.python_version()}, torch {torch.__version__}  ",
            f"Budget: {self.iterations} iterations x {self.rays_per_batch} rays for every method; "
            f"model size preset: {'small (CPU)' if self.small else 'default'}; images {self.width}x{self.height} "
            "(ICL 160x120). Held out: every 8th frame. Depth metrics in metres against ground truth; Chamfer "
            "(m, lower is better) and F-score at 5 cm of all views' rendered depth against the ground-truth surface. "
            "Ratios are against depth-nerfacto in the same run (PSNR: difference in dB).",
            "",
            "| scene | method | "
            + " | ".join(h for _, h, _ in COLUMNS)
            + " | PSNR Δ dB | AbsRel × | Chamfer × | s/it × |",
            "|" + "---|" * (len(COLUMNS) + 6),
        ]
        for scene, results in rows:
            lines += [table_row(scene, method, r, results["depth-nerfacto"]) for method, r in results.items()]
        lines += ["", "Raw results: " + ", ".join(f"`{p}`" for p in sorted((self.workdir / "runs").rglob("*.json")))]
        self.report.parent.mkdir(parents=True, exist_ok=True)
        self.report.write_text("\n".join(lines) + "\n")
        print("\n".join(lines))


if __name__ == "__main__":
    tyro.cli(Bench).main()
