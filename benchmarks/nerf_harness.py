"""Train one NeRF method on one scene the way `ns-train` does, and measure it against ground truth.

Training goes through nerfstudio's own `TrainerConfig.setup()` / `Trainer.setup()` / `Trainer.train()`,
exactly as `ns-train` runs them, so every training callback (nerfacto's proposal-weight annealing,
the regulariser's timestep schedule, camera-optimiser schedules...) runs. Timing covers the training
iterations only; rays/s counts every ray the model renders while training (the batch and any patch
the regulariser renders), by counting at the model's `get_outputs`.

Scoring reads the ground truth from the scene's files (held-out frames of a benchmark scene hold the
clean truth), never from a method's own dataparser, so every method is scored by the same code against
the same pixels: held-out PSNR/SSIM(/LPIPS), planar depth AbsRel/RMSE/delta1 in metres, and Chamfer /
F-score of all views' back-projected rendered depth against a reference surface, in the scene's own
world frame (each method's dataparser transform is undone first).

    python -m benchmarks.nerf_harness --method diffnerf --scene S --out result.json
"""

from __future__ import annotations

import dataclasses
import json
import resource
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
import tyro
from nerfstudio.engine.callbacks import TrainingCallback, TrainingCallbackLocation
from nerfstudio.engine.trainer import Trainer, TrainerConfig
from nerfstudio.scripts.train import _set_random_seed

from benchmarks.fingerprint import loaded_sources
from data_converters.nerfstudio_scene import OPENCV_TO_OPENGL, backproject, load_scene
from diffnerf_ns.compat import offline_lpips
from diffnerf_ns.depth_convention import ray_to_z_depth
from diffnerf_ns.metrics import depth_metrics, image_metrics, surface_metrics
from diffnerf_ns.presets import configure_run

Method = Literal[
    "depth-nerfacto",  # exactly as `ns-train depth-nerfacto --data <scene>` (nerfstudio's parser and defaults)
    "depth-nerfacto-matched",  # depth-nerfacto given diffnerf's box, depth weight and sampler
    "diffnerf-no-prior",
    "diffnerf-refined",  # stage 1: supervised by prior-refined depth
    "diffnerf-reg",  # stage 2: the patch regulariser
    "diffnerf-both",
]


def method_config(method: Method, prior: Path | None, few_view: bool = False) -> TrainerConfig:
    """The TrainerConfig a user gets from `ns-train <method>`, plus only the stated differences."""
    from diffnerf_ns import diffnerf_config as ours

    if method == "depth-nerfacto":
        from nerfstudio.configs.method_configs import method_configs

        return method_configs["depth-nerfacto"]
    if method == "depth-nerfacto-matched":
        from nerfstudio.configs.method_configs import method_configs

        peer = method_configs["depth-nerfacto"]
        mine = ours.diffnerf_no_prior_method.config.pipeline
        m = mine.model
        model = dataclasses.replace(
            peer.pipeline.model,
            depth_loss_mult=m.depth_loss_mult,
            disable_scene_contraction=m.disable_scene_contraction,
            proposal_initial_sampler=m.proposal_initial_sampler,
            near_plane=m.near_plane,
            # diffnerf clips rays to its box; nerfacto's near/far collider needs a metric far plane instead of 1000.
            far_plane=10.0,
        )
        # diffnerf's parser gives the metric, room-fitted box; the model stays nerfstudio's DepthNerfactoModel.
        dm = dataclasses.replace(peer.pipeline.datamanager, dataparser=mine.datamanager.dataparser)
        return dataclasses.replace(peer, pipeline=dataclasses.replace(peer.pipeline, model=model, datamanager=dm))
    if method != "diffnerf-no-prior" and prior is None:
        raise ValueError(f"{method} needs --prior (a trained prior folder)")
    if method == "diffnerf-no-prior":  # the registered ablations: both prior stages off, raw depth
        spec = ours.diffnerf_few_view_no_prior_method if few_view else ours.diffnerf_no_prior_method
    else:
        spec = ours.diffnerf_few_view_method if few_view else ours.diffnerf_method
    config = spec.config
    model, dm = config.pipeline.model, config.pipeline.datamanager
    regularise = method in ("diffnerf-reg", "diffnerf-both")
    model = dataclasses.replace(
        model,
        regulariser=dataclasses.replace(
            model.regulariser, enabled=regularise, prior_path=prior if regularise else None
        ),
        render_normals=False,  # scoring needs no normals; their extra pass would only slow evaluation
    )
    depth_source = "refined" if method in ("diffnerf-refined", "diffnerf-both") else "raw"
    dm = dataclasses.replace(dm, dataparser=dataclasses.replace(dm.dataparser, depth_source=depth_source))
    return dataclasses.replace(config, pipeline=dataclasses.replace(config.pipeline, model=model, datamanager=dm))


def count_rendered_rays(model: torch.nn.Module) -> Callable[[], int]:
    """Count every ray the model renders while training (batch and patches); returns a reader of the count.

    Wraps the instance's `get_outputs`, through which `forward` and any patch rendering pass.
    """
    count = [0]
    inner = model.get_outputs

    def get_outputs(ray_bundle, *args, **kwargs):
        if model.training:
            count[0] += int(np.prod(ray_bundle.shape))
        return inner(ray_bundle, *args, **kwargs)

    model.get_outputs = get_outputs  # type: ignore[method-assign]
    return lambda: count[0]


@dataclass
class TrainStats:
    """What training cost, measured around nerfstudio's own loop."""

    seconds: float
    """Wall time of the training iterations (callbacks included, final checkpoint excluded)."""
    rendered_rays: int
    peak_memory_mb: float
    memory_kind: str
    losses: list[float]
    """Total training loss of every step."""


def train_like_ns_train(config: TrainerConfig) -> tuple[Trainer, TrainStats]:
    """`ns-train`'s sequence (seed, save config, setup, train) with timing, ray and loss counters attached.

    Seeding as `ns-train` does (Python's `random`, numpy and torch from `config.machine.seed`) makes a run
    repeatable: nerfstudio's image cache draws its image order from `random`, so an unseeded run trains on other
    batches each time (2.5 dB apart on one few-view room)."""
    _set_random_seed(config.machine.seed)
    config.save_config()
    with offline_lpips():
        trainer = config.setup(local_rank=0, world_size=1)
        trainer.setup()
    rays = count_rendered_rays(trainer.pipeline.model)
    losses: list[float] = []
    inner_loss = trainer.pipeline.get_train_loss_dict

    def get_train_loss_dict(step: int):
        out = inner_loss(step=step)
        losses.append(float(sum(v.detach() for v in out[1].values())))
        return out

    trainer.pipeline.get_train_loss_dict = get_train_loss_dict  # type: ignore[method-assign]
    first, last = trainer._start_step, trainer._start_step + config.max_num_iterations - 1
    clock: dict[str, float] = {}
    cuda = torch.cuda.is_available()

    def tick(step: int) -> None:
        if step == first:
            clock["start"] = time.perf_counter()
        if cuda:
            torch.cuda.synchronize()

    def tock(step: int) -> None:
        if step == last:
            if cuda:
                torch.cuda.synchronize()
            clock["end"] = time.perf_counter()

    # Appended last: they run after every other callback at the same location, so the timed span covers them.
    trainer.callbacks.append(TrainingCallback([TrainingCallbackLocation.BEFORE_TRAIN_ITERATION], tick))
    trainer.callbacks.append(TrainingCallback([TrainingCallbackLocation.AFTER_TRAIN_ITERATION], tock))
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    trainer.train()
    peak_mb = (
        torch.cuda.max_memory_allocated() / 2**20 if cuda else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    )
    stats = TrainStats(
        seconds=clock["end"] - clock["start"],
        rendered_rays=rays(),
        peak_memory_mb=peak_mb,
        memory_kind="cuda max allocated" if cuda else "process peak RSS",
        losses=losses,
    )
    return trainer, stats


def callback_state(trainer: Trainer) -> dict[str, float]:
    """Quantities only training callbacks change; they prove the callbacks ran."""
    model = trainer.pipeline.model
    state = {}
    sampler = getattr(model, "proposal_sampler", None)
    if sampler is not None:
        state["proposal_anneal"] = float(sampler._anneal)
        state["proposal_step"] = float(sampler._step)
    regulariser = getattr(model, "regulariser", None)
    if regulariser is not None and hasattr(regulariser, "timestep"):
        state["regulariser_timestep"] = float(regulariser.timestep())
    return state


def world_from_parser(points: np.ndarray, transform: torch.Tensor, scale: float) -> np.ndarray:
    """Undo a dataparser's `scale * (R p + t)`."""
    t = transform.numpy()
    return (points / scale - t[:, 3]) @ t[:, :3]


@torch.no_grad()
def evaluate(
    trainer: Trainer, scene_dir: Path, reference: np.ndarray | None = None, surface_views: int = 12
) -> dict[str, float]:
    """Held-out image and depth metrics against the scene's files, and surface metrics of rendered depth
    (held-out views, and up to `surface_views` training views at half resolution).

    `reference`: the true surface (N, 3) in the scene's world frame (default: the scene's own depth).
    """
    pipeline = trainer.pipeline
    model = pipeline.model.eval()
    outputs = pipeline.datamanager.train_dataparser_outputs
    scale, transform = float(outputs.dataparser_scale), outputs.dataparser_transform
    scene = load_scene(scene_dir)
    index_of = {p.resolve(): i for i, p in enumerate(scene.image_paths)}
    per_view: list[dict[str, float]] = []
    points = []
    train = pipeline.datamanager.train_dataset
    for dataset, held_out, views in (
        (pipeline.datamanager.eval_dataset, True, range(len(pipeline.datamanager.eval_dataset))),
        # Geometry from at most `surface_views` training views spread over the path: rendering is the cost.
        (train, False, sorted(set(np.linspace(0, len(train) - 1, min(surface_views, len(train))).round().astype(int)))),
    ):
        for i in views:
            camera = dataset.cameras[i : i + 1].to(pipeline.device)
            if not held_out:
                camera.rescale_output_resolution(0.5)  # geometry only: a quarter of the rays
            out = model.get_outputs_for_camera(camera)
            z = ray_to_z_depth(out["depth"], out["directions_norm"])[..., 0].cpu() / scale  # metres
            if held_out:
                k = index_of[Path(dataset.image_filenames[i]).resolve()]
                gt_rgb = torch.from_numpy(scene.rgb(k).astype(np.float32) / 255.0)
                gt_z = torch.from_numpy(scene.depth(k))
                per_view.append(
                    {**image_metrics(out["rgb"].cpu(), gt_rgb, getattr(model, "lpips", None)), **depth_metrics(z, gt_z)}
                )
            c2w = np.vstack([camera.camera_to_worlds[0].cpu().numpy(), [0, 0, 0, 1]]) @ OPENCV_TO_OPENGL
            K = camera.get_intrinsics_matrices()[0].cpu().numpy()
            keep = (out["accumulation"][..., 0].cpu() > 0.5).numpy()
            pts = backproject(np.where(keep, z.numpy() * scale, 0.0), K, c2w, stride=2 if held_out else 1)
            points.append(world_from_parser(pts, transform, scale))
    metrics = {k: float(np.mean([v[k] for v in per_view])) for k in per_view[0]}
    reference = scene.world_points(stride=2) if reference is None else reference
    metrics.update(surface_metrics(np.concatenate(points), reference))
    return metrics


@dataclass
class RunArgs:
    """One training run and its evaluation (run each in its own process, so peak memory is its own)."""

    method: Method
    scene: Path
    out: Path
    """JSON file for the result."""
    run_dir: Path | None = None
    """Folder for nerfstudio's outputs (config, checkpoint); default `<out's folder>/runs/<out's stem>`. The
    benchmark puts them under its workdir, so a result store in the repository holds only the JSONs."""
    prior: Path | None = None
    few_view: bool = False
    """Use the few-view preset of diffnerf (diffnerf-few-view) for the diffnerf variants."""
    reference: Path | None = None
    """True surface points (.npy, (N, 3), scene world frame); default: the scene's own depth."""
    iterations: int = 300
    rays_per_batch: int = 512
    small: bool = True
    """Use the CPU-sized model preset (diffnerf_ns.presets.small_model) for every method."""
    seed: int = 0
    depth_loss_mult: float | None = None
    """Override the model's depth-loss weight (defaults study)."""
    proposal_initial_sampler: Literal["piecewise", "uniform"] | None = None
    """Override the model's initial proposal sampler (defaults study)."""
    fields_lr_final: float | None = None
    """Override the final learning rate of the fields' exponential decay (defaults study)."""
    disable_scene_contraction: bool | None = None
    """Override the model's scene contraction (defaults study; False on diffnerf contracts space past its box)."""
    camera_optimizer_mode: Literal["off", "SO3xR3", "SE3"] | None = None
    """Override the model's pose refinement (the benchmark gives every method of a row the same)."""
    regulariser_every_n_steps: int | None = None
    """Override the regulariser's cadence (cost study; prior rows only)."""
    regulariser_patch_sample_fraction: float | None = None
    """Override the fraction of samples per ray the regulariser's patch rays use (cost study; prior rows only)."""
    depth_edge_band: int | None = None
    """Override diffnerf's depth-loss band around depth discontinuities (pixels; 0 = off; diffnerf rows only)."""
    depth_edge_weight: float | None = None
    """Override diffnerf's depth-loss weight inside that band (diffnerf rows only)."""

    def overridden(self, config: TrainerConfig) -> TrainerConfig:
        """The method's config with the study's overrides applied (none by default)."""
        changes = {
            k: v
            for k, v in (
                ("depth_loss_mult", self.depth_loss_mult),
                ("proposal_initial_sampler", self.proposal_initial_sampler),
                ("disable_scene_contraction", self.disable_scene_contraction),
                ("depth_edge_band", self.depth_edge_band),
                ("depth_edge_weight", self.depth_edge_weight),
            )
            if v is not None
        }
        if self.camera_optimizer_mode is not None:
            changes["camera_optimizer"] = dataclasses.replace(
                config.pipeline.model.camera_optimizer, mode=self.camera_optimizer_mode
            )
        regulariser = {
            k: v
            for k, v in (
                ("every_n_steps", self.regulariser_every_n_steps),
                ("patch_sample_fraction", self.regulariser_patch_sample_fraction),
            )
            if v is not None
        }
        if regulariser:
            changes["regulariser"] = dataclasses.replace(config.pipeline.model.regulariser, **regulariser)
        model = dataclasses.replace(config.pipeline.model, **changes)
        config = dataclasses.replace(config, pipeline=dataclasses.replace(config.pipeline, model=model))
        if self.fields_lr_final is not None:
            fields = config.optimizers["fields"]
            scheduler = dataclasses.replace(
                fields["scheduler"], lr_final=self.fields_lr_final, max_steps=self.iterations
            )
            config.optimizers = {**config.optimizers, "fields": {**fields, "scheduler": scheduler}}
        return config

    def main(self) -> dict:
        config = configure_run(
            self.overridden(method_config(self.method, self.prior, self.few_view)),
            self.scene,
            self.run_dir or self.out.parent / "runs" / self.out.stem,
            self.iterations,
            self.rays_per_batch,
            small=self.small,
        )
        config.machine = dataclasses.replace(config.machine, seed=self.seed)
        trainer, stats = train_like_ns_train(config)
        reference = np.load(self.reference) if self.reference is not None else None
        result = {
            "method": self.method,
            "scene": str(self.scene),
            "few_view": self.few_view,
            "camera_optimizer": config.pipeline.model.camera_optimizer.mode,
            "seed": self.seed,
            "iterations": self.iterations,
            "rays_per_batch": self.rays_per_batch,
            "seconds_per_iteration": stats.seconds / self.iterations,
            "rendered_rays": stats.rendered_rays,
            "rays_per_second": stats.rendered_rays / stats.seconds,
            "peak_memory_mb": stats.peak_memory_mb,
            "memory_kind": stats.memory_kind,
            "final_loss": float(np.mean(stats.losses[-10:])),
            **callback_state(trainer),
            **evaluate(trainer, self.scene, reference),
            "sources": loaded_sources(),  # last: the code this run executed, training and scoring (the cache's key)
        }
        self.out.parent.mkdir(parents=True, exist_ok=True)
        self.out.write_text(json.dumps(result, indent=2))
        print(json.dumps(result))
        return result


if __name__ == "__main__":
    tyro.cli(RunArgs).main()
