"""diffnerf under torch DDP: 2 CPU processes (gloo) through nerfstudio's own multi-device code path.

`ns-train diffnerf --machine.num-devices 2` wraps the model in DistributedDataParallel (`pipeline._model`; the
plugin's model is then `pipeline._model.module`, reached through `pipeline.model`), seeds every rank differently
and saves from rank 0 only. The helper (`ddp_training.py`) runs that path with only nerfstudio's CUDA-only spots
patched, in a fresh interpreter: gloo processes forked from a pytest process that had started torch's thread pools
hung before (see tests/prior/test_prior_multiprocess.py).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from data_converters.nerfstudio_scene import depth_to_png_mm, read_depth_png

SCRIPT = Path(__file__).with_name("ddp_training.py")
ITERATIONS = 3


def with_refined_layers(scene: Path, out: Path) -> Path:
    """A copy of `scene` whose even frames have 'refined' depth (+3 cm) and a half-trusted confidence map."""
    shutil.copytree(scene, out)
    meta = json.loads((out / "transforms.json").read_text())
    (out / "depth_refined").mkdir()
    (out / "depth_confidence").mkdir()
    for i, frame in enumerate(meta["frames"][::2]):
        name = Path(frame["depth_file_path"]).name
        depth = read_depth_png(out / frame["depth_file_path"])
        Image.fromarray(depth_to_png_mm(depth + 0.03)).save(out / "depth_refined" / name)
        conf = np.full(depth.shape, 65535 if i % 2 else 16384, np.uint16)
        Image.fromarray(conf).save(out / "depth_confidence" / name)
        frame["refined_depth_file_path"] = f"depth_refined/{name}"
        frame["depth_confidence_file_path"] = f"depth_confidence/{name}"
    (out / "transforms.json").write_text(json.dumps(meta))
    return out


@pytest.fixture(scope="module")
def ddp_run(demo_scene: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, dict]:
    """Both ranks' records after ITERATIONS steps of 2-process training with a toy 16 px prior."""
    from diffnerf_ns.prior.model import RGBDPrior

    root = tmp_path_factory.mktemp("ddp")
    scene = with_refined_layers(demo_scene, root / "scene")
    torch.manual_seed(0)
    prior = RGBDPrior.create(patch_size=16, block_out_channels=(8, 16), layers_per_block=1, attention=False)
    prior.save_pretrained(root / "prior")
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, str(SCRIPT), str(scene), str(root / "prior"), str(root / "out"), str(ITERATIONS)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    print(f"2-process training: {time.perf_counter() - start:.1f} s")
    assert done.returncode == 0, done.stderr[-4000:]
    return tuple(torch.load(root / "out" / f"rank{r}.pt", weights_only=False) for r in (0, 1))


@pytest.mark.skipif(sys.platform == "win32", reason="gloo process groups need a POSIX host")
def test_ddp_ranks_train_plugin_and_end_with_identical_parameters(ddp_run: tuple[dict, dict]) -> None:
    """Both ranks train diffnerf (regulariser with a prior, refined-depth confidence, callbacks) behind DDP and end
    with the same parameters, while each saw its own rays. Catches a crash once the model sits behind `.module`
    (callbacks, `get_param_groups`, the regulariser reached through the wrapper), ranks diverging because a loss
    bypasses DDP's gradient all-reduce (a render whose parameters DDP never sees, or a model trained outside the
    wrapper), a collective one rank skips (a hang or a gloo error), a regulariser that stops or falls behind on a
    rank, and a DDP checkpoint (`_model.module.*` keys) that ns-eval / ns-viewer cannot load."""
    rank0, rank1 = ddp_run
    for rank in (rank0, rank1):
        assert rank["ddp"] and rank["refined_frames"] == 9  # 9 of the 21 training frames (the eval split is raw)
        assert len(rank["losses"]) == ITERATIONS and rank["regulariser_step"] == ITERATIONS - 1
        assert [step for step, _, _ in rank["patches"]] == list(range(ITERATIONS))  # the step callback ran
        assert all(np.isfinite(list(losses.values())).all() for losses in rank["losses"])
        assert all(losses["prior_depth_loss"] != 0 for losses in rank["losses"])
    # Different batches on the two ranks (nerfstudio seeds rank r with seed + r), so agreement is not trivial.
    assert rank0["losses"][0]["rgb_loss"] != rank1["losses"][0]["rgb_loss"]
    # DDP broadcasts rank 0's initial parameters; training moves them; the all-reduce keeps the ranks together.
    moved = []
    for name, value in rank0["final"].items():
        assert torch.equal(rank0["initial"][name], rank1["initial"][name]), name
        gap = float((value.double() - rank1["final"][name].double()).abs().max()) if value.numel() else 0.0
        assert gap <= 1e-6, f"{name}: ranks differ by up to {gap:.2e}"
        assert torch.equal(rank0["loaded"][name], value), name
        moved += [name] if not torch.equal(value, rank0["initial"][name]) else []
    assert {"field.mlp_base.model.0.hash_table", "camera_optimizer.pose_adjustment"} <= set(moved), moved
    # One checkpoint, from rank 0 (every rank saving would race on one file).
    assert rank0["checkpoints"] == [f"step-{ITERATIONS - 1:09d}.ckpt"]


def test_ddp_ranks_draw_their_own_regulariser_patches(ddp_run: tuple[dict, dict]) -> None:
    """Under DDP each rank should score its own patches, as it renders its own rays: N devices then regularise
    N patches per step. Catches every rank drawing the same patch (N times the work for one patch's gradient)."""
    rank0, rank1 = ddp_run
    same = [
        i0 == i1 and torch.equal(c0, c1)
        for (_, i0, c0), (_, i1, c1) in zip(rank0["patches"], rank1["patches"], strict=True)
    ]
    print(f"patches identical on both ranks, per step: {same}")
    assert not all(same)
