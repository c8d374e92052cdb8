"""Method and dataparser registrations (nerfstudio entry points).

Four methods share one model: `diffnerf` (dense RGB-D; refined depth where the scene has it, regulariser
opt-in), `diffnerf-few-view` (3-9 views; both prior stages on) and their exact ablations with both prior
stages off, `diffnerf-no-prior` (dense) and `diffnerf-few-view-no-prior`, which the benchmark compares against.
"""

from __future__ import annotations

import dataclasses
from typing import Literal

from nerfstudio.cameras.camera_optimizers import CameraOptimizerConfig
from nerfstudio.configs.base_config import MachineConfig, ViewerConfig
from nerfstudio.data.datamanagers.base_datamanager import VanillaDataManager, VanillaDataManagerConfig
from nerfstudio.engine.optimizers import AdamOptimizerConfig
from nerfstudio.engine.schedulers import ExponentialDecaySchedulerConfig
from nerfstudio.engine.trainer import TrainerConfig
from nerfstudio.pipelines.base_pipeline import VanillaPipelineConfig
from nerfstudio.plugins.types import MethodSpecification

from diffnerf_ns.data.rgbd_dataparser import RgbdDataParserConfig
from diffnerf_ns.data.rgbd_dataset import RGBDDataset
from diffnerf_ns.device import default_device
from diffnerf_ns.models.diffnerf_model import DiffNerfModelConfig
from diffnerf_ns.models.patch_regulariser import PatchRegulariserConfig

HAS_CUDA = default_device() == "cuda"
"""Sizes and precision of the registered configs follow the machine that builds them."""


@dataclasses.dataclass
class DiffNerfTrainerConfig(TrainerConfig):
    """nerfstudio's TrainerConfig, checking `--data` before `ns-train` writes the run folder's config.yml.

    `ns-train` saves the config before any data is read, so a bad `--data` used to end in a traceback with an
    empty run folder left behind; this is the last hook before that save.
    """

    def save_config(self) -> None:
        datamanager = self.pipeline.datamanager
        parser = datamanager.dataparser
        if isinstance(parser, RgbdDataParserConfig):
            data = datamanager.data if datamanager.data is not None else parser.data
            problem = dataclasses.replace(parser, data=data).data_problem()
            if problem is not None:
                raise SystemExit(f"ns-train {self.method_name}: {problem}")
        super().save_config()


def _trainer(
    method_name: str,
    model: DiffNerfModelConfig,
    max_num_iterations: int = 30000,
    depth_source: Literal["raw", "refined"] = "refined",
) -> TrainerConfig:
    return DiffNerfTrainerConfig(
        method_name=method_name,
        steps_per_eval_batch=500,
        steps_per_save=2000,
        max_num_iterations=max_num_iterations,
        mixed_precision=HAS_CUDA,
        machine=MachineConfig(device_type="cuda" if HAS_CUDA else "cpu"),
        pipeline=VanillaPipelineConfig(
            datamanager=VanillaDataManagerConfig(
                _target=VanillaDataManager[RGBDDataset],
                dataparser=RgbdDataParserConfig(depth_source=depth_source),
                train_num_rays_per_batch=4096,
                eval_num_rays_per_batch=4096,
            ),
            model=model,
        ),
        optimizers={
            "proposal_networks": {"optimizer": AdamOptimizerConfig(lr=1e-2, eps=1e-15), "scheduler": None},
            "fields": {
                "optimizer": AdamOptimizerConfig(lr=1e-2, eps=1e-15),
                "scheduler": ExponentialDecaySchedulerConfig(lr_final=1e-3, max_steps=max_num_iterations),
            },
            "camera_opt": {
                "optimizer": AdamOptimizerConfig(lr=1e-3, eps=1e-15),
                "scheduler": ExponentialDecaySchedulerConfig(lr_final=1e-4, max_steps=5000),
            },
        },
        viewer=ViewerConfig(num_rays_per_chunk=1 << 15 if HAS_CUDA else 1 << 12),
        vis="viewer",
    )


_model = DiffNerfModelConfig(
    # Rays rendered at once in eval/viewer/export; 2^15 (nerfacto's) needs several GB of host memory on CPU.
    eval_num_rays_per_chunk=1 << 15 if HAS_CUDA else 1 << 12,
    camera_optimizer=CameraOptimizerConfig(mode="SO3xR3"),
)


def _without_prior(config: TrainerConfig, method_name: str) -> TrainerConfig:
    """The exact ablation of a preset: the same config with both prior stages (refined depth, regulariser) off."""
    model = config.pipeline.model
    regulariser = dataclasses.replace(model.regulariser, enabled=False, prior_path=None)
    datamanager = dataclasses.replace(config.pipeline.datamanager)
    datamanager.dataparser = dataclasses.replace(datamanager.dataparser, depth_source="raw")
    pipeline = dataclasses.replace(
        config.pipeline, datamanager=datamanager, model=dataclasses.replace(model, regulariser=regulariser)
    )
    return dataclasses.replace(config, method_name=method_name, pipeline=pipeline)


_diffnerf = _trainer("diffnerf", _model)
_few_view = _trainer(
    "diffnerf-few-view",
    dataclasses.replace(
        _model,
        # Few views: too little overlap to refine poses; the regulariser is on with DiffusioNeRF's recipe, so a
        # quarter of the patches are ground-truth crops (depth only) and the rest come from jittered, unseen poses.
        camera_optimizer=CameraOptimizerConfig(mode="off"),
        regulariser=PatchRegulariserConfig(enabled=True),
    ),
    max_num_iterations=10000,
)

diffnerf_method = MethodSpecification(
    config=_diffnerf,
    description="DiffusioNeRF-style depth-supervised NeRF for indoor RGB-D (NYU Depth V2): prior-refined depth "
    "where the scene has it; --pipeline.model.regulariser.enabled True adds the diffusion-prior regulariser.",
)

diffnerf_few_view_method = MethodSpecification(
    config=_few_view,
    description="diffnerf preset for 3-9 input views: diffusion-prior regulariser on, no pose refinement.",
)

diffnerf_no_prior_method = MethodSpecification(
    config=_without_prior(_diffnerf, "diffnerf-no-prior"),
    description="diffnerf without the diffusion prior: raw depth, no regulariser (dense ablation).",
)

diffnerf_few_view_no_prior_method = MethodSpecification(
    config=_without_prior(_few_view, "diffnerf-few-view-no-prior"),
    description="diffnerf-few-view without the diffusion prior: raw depth, no regulariser (few-view ablation).",
)
