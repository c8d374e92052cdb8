"""Size presets shared by the tests, the CPU demo and the benchmarks, so peers get identical budgets."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TypeVar

from nerfstudio.configs.base_config import MachineConfig
from nerfstudio.engine.trainer import TrainerConfig
from nerfstudio.models.nerfacto import NerfactoModelConfig

from diffnerf_ns.device import default_device

ModelConfigT = TypeVar("ModelConfigT", bound=NerfactoModelConfig)


def small_model(model: ModelConfigT) -> ModelConfigT:
    """A nerfacto-family model small enough to train on two CPU cores (hash table 2^15, 8 levels)."""
    return dataclasses.replace(
        model,
        log2_hashmap_size=15,
        num_levels=8,
        max_res=256,
        hidden_dim=32,
        hidden_dim_color=32,
        num_nerf_samples_per_ray=32,
        num_proposal_samples_per_ray=(64, 32),
        proposal_net_args_list=[
            {"hidden_dim": 16, "log2_hashmap_size": 14, "num_levels": 5, "max_res": 128, "use_linear": False},
            {"hidden_dim": 16, "log2_hashmap_size": 14, "num_levels": 5, "max_res": 256, "use_linear": False},
        ],
        eval_num_rays_per_chunk=4096,
    )


def configure_run(
    config: TrainerConfig, data: Path, output_dir: Path, iterations: int, rays_per_batch: int, small: bool = True
) -> TrainerConfig:
    """A copy of a method's TrainerConfig pointed at `data`, logging to files, with the given budget."""
    config = dataclasses.replace(
        config,
        output_dir=output_dir,
        vis="tensorboard",
        max_num_iterations=iterations,
        machine=MachineConfig(device_type=default_device()),
        mixed_precision=config.mixed_precision and default_device() == "cuda",
    )
    config.steps_per_save = iterations
    config.steps_per_eval_batch = iterations + 1
    config.steps_per_eval_image = iterations + 1
    config.steps_per_eval_all_images = iterations + 1
    dm = dataclasses.replace(config.pipeline.datamanager, data=data, train_num_rays_per_batch=rays_per_batch)
    dm.dataparser = dataclasses.replace(dm.dataparser, data=data)
    model = small_model(config.pipeline.model) if small else config.pipeline.model
    config.pipeline = dataclasses.replace(config.pipeline, datamanager=dm, model=model)
    config.set_timestamp()
    return config
