"""Train one NeRF method on one scene split and measure it against ground truth (one process per run).

Each run is its own process so peak memory is that run's alone. Every method is measured by the
same code: held-out PSNR/SSIM, depth AbsRel/RMSE/delta1 in metres, and the Chamfer distance and
F-score of the back-projected rendered depth against the ground-truth surface, in the scene's
original world frame (each method's dataparser transform is undone first).

    python -m benchmarks.nerf_harness --method diffnerf --scene S --out result.json
"""

from __future__ import annotations

import dataclasses
import json
import resource
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
import tyro
from nerfstudio.data.dataparsers.nerfstudio_dataparser import NerfstudioDataParserConfig
from nerfstudio.engine.trainer import Trainer, TrainerConfig
from torchmetrics.functional import peak_signal_noise_ratio, structural_similarity_index_measure

from data_converters.nerfstudio_scene import OPENCV_TO_OPENGL, backproject, load_scene
from diffnerf_ns.compat import offline_lpips
from diffnerf_ns.metrics import depth_metrics, surface_metrics
from diffnerf_ns.presets import configure_run

Method = Literal["depth-nerfacto", "diffnerf-no-prior", "diffnerf", "diffnerf-few-view", "diffnerf-few-view-no-prior"]


def method_config(method: Method, prior: Path | None) -> TrainerConfig:
    """The registered TrainerConfig of `method`; the peer keeps nerfstudio's own dataparser and defaults."""
    from diffnerf_ns import diffnerf_config as ours

    if method == "depth-nerfacto":
        from nerfstudio.configs.method_configs import method_configs

        config = method_configs["depth-nerfacto"]
        dm = dataclasses.replace(
            config.pipeline.datamanager, dataparser=NerfstudioDataParserConfig(eval_mode="interval")
        )
        return dataclasses.replace(config, pipeline=dataclasses.replace(config.pipeline, datamanager=dm))
    spec = ours.diffnerf_few_view_method if method.startswith("diffnerf-few-view") else ours.diffnerf_method
    config = spec.config
    with_prior = not method.endswith("no-prior")
    if with_prior and prior is None:
        raise ValueError(f"{method} needs --prior")
    reg = dataclasses.replace(config.pipeline.model.regulariser, prior_path=prior if with_prior else None)
    model = dataclasses.replace(config.pipeline.model, regulariser=reg)
    return dataclasses.replace(config, pipeline=dataclasses.replace(config.pipeline, model=model))


def world_from_parser(points: np.ndarray, transform: torch.Tensor, scale: float) -> np.ndarray:
    """Undo a dataparser's `scale * (R p + t)`."""
    t = transform.numpy()
    return (points / scale - t[:, 3]) @ t[:, :3]


@torch.no_grad()
def evaluate(trainer: Trainer, scene_dir: Path) -> dict[str, float]:
    """Held-out image/depth metrics and surface metrics of all views' rendered depth."""
    pipeline = trainer.pipeline
    model = pipeline.model.eval()
    scale = float(pipeline.datamanager.train_dataparser_outputs.dataparser_scale)
    transform = pipeline.datamanager.train_dataparser_outputs.dataparser_transform
    per_view: list[dict[str, float]] = []
    points = []
    for dataset, held_out in ((pipeline.datamanager.eval_dataset, True), (pipeline.datamanager.train_dataset, False)):
        for i in range(len(dataset)):
            camera = dataset.cameras[i : i + 1].to(pipeline.device)
            out = model.get_outputs_for_camera(camera)
            z = (out["depth"] / out["directions_norm"])[..., 0].cpu() / scale
            if held_out:
                data = dataset[i]
                gt_rgb = data["image"][..., :3].permute(2, 0, 1)[None].float()
                pred = out["rgb"].cpu().permute(2, 0, 1)[None].clamp(0, 1)
                gt_z = data["depth_image"][..., 0] / scale
                per_view.append(
                    {
                        "psnr": float(peak_signal_noise_ratio(pred, gt_rgb, data_range=1.0)),
                        "ssim": float(structural_similarity_index_measure(pred, gt_rgb, data_range=1.0)),
                        **depth_metrics(z, gt_z),
                    }
                )
            c2w = np.vstack([camera.camera_to_worlds[0].cpu().numpy(), [0, 0, 0, 1]]) @ OPENCV_TO_OPENGL
            K = camera.get_intrinsics_matrices()[0].cpu().numpy()
            keep = (out["accumulation"][..., 0].cpu() > 0.5).numpy()
            pts = backproject(np.where(keep, z.numpy() * scale, 0.0), K, c2w, stride=2)
            points.append(world_from_parser(pts, transform, scale))
    scene = load_scene(scene_dir)
    metrics = {k: float(np.mean([v[k] for v in per_view])) for k in per_view[0]}
    metrics.update(surface_metrics(np.concatenate(points), scene.world_points(stride=2)))
    return metrics


@dataclass
class RunArgs:
    """One training run and its evaluation."""

    method: Method
    scene: Path
    out: Path
    """JSON file for the result."""
    prior: Path | None = None
    iterations: int = 300
    rays_per_batch: int = 512
    small: bool = True
    """Use the CPU-sized model preset (diffnerf_ns.presets.small_model) for every method."""
    seed: int = 0

    def main(self) -> None:
        torch.manual_seed(self.seed)
        np.random.seed(self.seed)
        config = configure_run(
            method_config(self.method, self.prior),
            self.scene,
            self.out.parent / "runs",
            self.iterations,
            self.rays_per_batch,
            small=self.small,
        )
        with offline_lpips():
            trainer = Trainer(config)
            trainer.setup()
        cuda = torch.cuda.is_available()
        if cuda:
            torch.cuda.reset_peak_memory_stats()
        start = time.perf_counter()
        for step in range(self.iterations):
            trainer.train_iteration(step)
        if cuda:
            torch.cuda.synchronize()
        seconds = time.perf_counter() - start
        peak_mb = (
            torch.cuda.max_memory_allocated() / 2**20
            if cuda
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        )
        result = {
            "method": self.method,
            "scene": str(self.scene),
            "iterations": self.iterations,
            "rays_per_batch": self.rays_per_batch,
            "seconds_per_iteration": seconds / self.iterations,
            "rays_per_second": self.iterations * self.rays_per_batch / seconds,
            "peak_memory_mb": peak_mb,
            "memory_kind": "cuda allocated" if cuda else "process RSS",
            **evaluate(trainer, self.scene),
        }
        self.out.write_text(json.dumps(result, indent=2))
        print(json.dumps(result))


if __name__ == "__main__":
    tyro.cli(RunArgs).main()
