"""Run by test_ddp.py in a fresh interpreter: diffnerf trained by 2 CPU processes (gloo) the way `ns-train` does.

    python tests/integration/ddp_training.py SCENE PRIOR OUT ITERATIONS

nerfstudio 1.1.5's own multi-device code runs: `_distributed_worker` (gloo process group, LOCAL_PROCESS_GROUP,
the closing barrier), its `train_loop` steps (seed + rank, `TrainerConfig.setup`, `Trainer.setup`, `Trainer.train`)
and `VanillaPipeline`'s DDP wrapping with `world_size=2`. Only nerfstudio's two CUDA-only spots are patched:
- `_distributed_worker` asserts `torch.cuda.is_available()` and `num_devices <= torch.cuda.device_count()`
  (what stops `ns-train ... --machine.device-type cpu --machine.num-devices 2` with "cuda is not available"):
  they answer "yes, 2 devices" only until the worker hands over to the training function;
- the pipeline passes `device_ids=[local_rank]` to `DistributedDataParallel`, which a CPU module refuses:
  `CpuDDP` drops them for CPU modules (the `dist.barrier(device_ids=...)` after it works under gloo as is).
The plugin (model, regulariser, refined-depth batches, training callbacks) runs unpatched.

Each rank writes OUT/rank{r}.pt: its model's state dict before and after training, its losses and the patches
its regulariser drew; rank 0 also loads the checkpoint it saved the way ns-eval / ns-viewer do (`eval_setup`).
"""

from __future__ import annotations

import dataclasses
import pickle
import socket
import sys
from datetime import timedelta
from pathlib import Path

import torch
import torch.multiprocessing as mp
from torch.nn.parallel import DistributedDataParallel

WORLD_SIZE = 2


class CpuDDP(DistributedDataParallel):
    """nerfstudio's `DDP(model, device_ids=[local_rank], ...)`, minus the device ids a CPU module refuses."""

    def __init__(self, module: torch.nn.Module, device_ids: list[int] | None = None, **kwargs) -> None:
        on_cpu = all(p.device.type == "cpu" for p in module.parameters())
        super().__init__(module, device_ids=None if on_cpu else device_ids, **kwargs)


def make_config(scene: Path, prior: Path, out: Path, iterations: int):
    """`ns-train diffnerf --data SCENE --pipeline.model.regulariser.prior-path PRIOR --machine.num-devices 2`, small."""
    from nerfstudio.configs.base_config import MachineConfig

    from diffnerf_ns.diffnerf_config import diffnerf_method
    from diffnerf_ns.presets import configure_run

    config = configure_run(diffnerf_method.config, scene, out, iterations=iterations, rays_per_batch=64)
    config.timestamp = "ddp"  # both ranks build it: one run folder
    config.machine = MachineConfig(device_type="cpu", num_devices=WORLD_SIZE)
    model = config.pipeline.model
    regulariser = dataclasses.replace(model.regulariser, prior_path=prior)
    config.pipeline = dataclasses.replace(config.pipeline, model=dataclasses.replace(model, regulariser=regulariser))
    return config


def state_of(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}


def train_and_record(local_rank: int, world_size: int, config, global_rank: int = 0) -> None:
    """nerfstudio's `train_loop`, line for line, with a record of what each rank did."""
    from nerfstudio.scripts.train import _set_random_seed

    _set_random_seed(config.machine.seed + global_rank)
    trainer = config.setup(local_rank=local_rank, world_size=world_size)
    trainer.setup()

    pipeline = trainer.pipeline
    reg = pipeline.model.regulariser
    record: dict = {"rank": global_rank, "ddp": isinstance(pipeline._model, DistributedDataParallel)}
    record["initial"] = state_of(pipeline.model)
    record["refined_frames"] = sum(f is not None for f in pipeline.datamanager.train_dataset.confidence_filenames or [])
    record["patches"], record["losses"] = [], []
    sample, train_iteration = reg.sample, trainer.train_iteration

    def recording_sample():
        s = sample()
        record["patches"].append((reg.step, s.index, s.camera.camera_to_worlds.detach().cpu().clone()))
        return s

    def recording_iteration(step: int):
        loss, loss_dict, metrics_dict = train_iteration(step)
        record["losses"].append({k: float(v.detach()) for k, v in loss_dict.items()})
        return loss, loss_dict, metrics_dict

    reg.sample, trainer.train_iteration = recording_sample, recording_iteration
    trainer.train()

    record["final"] = state_of(pipeline.model)
    record["regulariser_step"] = reg.step
    if global_rank == 0:  # the checkpoint rank 0 saved, loaded in one process as ns-eval / ns-viewer do
        from nerfstudio.utils.eval_utils import eval_setup

        _, loaded, ckpt, _ = eval_setup(config.get_base_dir() / "config.yml")
        record["loaded"], record["checkpoints"] = state_of(loaded.model), sorted(p.name for p in ckpt.parent.iterdir())
    torch.save(record, Path(config.output_dir) / f"rank{global_rank}.pt")


REAL_CUDA_QUERIES = (torch.cuda.is_available, torch.cuda.device_count)


def train_loop_on_cpu(local_rank: int, world_size: int, config, global_rank: int = 0) -> None:
    """Called by nerfstudio's worker once the process group is up: CUDA queries answer truthfully again."""
    torch.cuda.is_available, torch.cuda.device_count = REAL_CUDA_QUERIES
    train_and_record(local_rank, world_size, config, global_rank)


def worker(local_rank: int, scene: str, prior: str, out: str, iterations: int, dist_url: str) -> None:
    """One spawned process: nerfstudio's `_distributed_worker`, past its CUDA asserts, with CPU-friendly DDP."""
    torch.set_num_threads(1)  # two ranks share the cores
    # Built here rather than in the parent (saves the parent ~20 s of imports); ns-train pickles it to its workers.
    config = pickle.loads(pickle.dumps(make_config(Path(scene), Path(prior), Path(out), iterations)))
    if local_rank == 0:
        config.save_config()  # what ns-train's main() does before launching

    from nerfstudio.pipelines import base_pipeline
    from nerfstudio.scripts.train import _distributed_worker

    base_pipeline.DDP = CpuDDP
    torch.cuda.is_available, torch.cuda.device_count = (lambda: True), (lambda: WORLD_SIZE)
    _distributed_worker(
        local_rank,
        train_loop_on_cpu,
        WORLD_SIZE,
        WORLD_SIZE,
        0,
        dist_url,
        config,
        timeout=timedelta(minutes=5),
        device_type="cpu",
    )


def main(scene: str, prior: str, out: str, iterations: str) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:  # nerfstudio's _find_free_port
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    args = (scene, prior, out, int(iterations), f"tcp://127.0.0.1:{port}")
    mp.spawn(worker, args=args, nprocs=WORLD_SIZE, join=True)  # what nerfstudio's launch() does


if __name__ == "__main__":
    main(*sys.argv[1:])
