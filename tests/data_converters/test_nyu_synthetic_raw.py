"""End to end on a synthetic NYU raw scene with known truth: sync counts, registered depth, poses, gravity."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pytest

from data_converters.nerfstudio_scene import load_scene
from data_converters.nyu import calibration as cal
from data_converters.resolve import ensure_nerfstudio_scene
from data_converters.synthetic.nyu_raw_writer import NYURawSpec, load_ground_truth, write_nyu_raw_scene
from diffnerf_ns.metrics import absolute_trajectory_error, relative_rotation_errors

pytestmark = pytest.mark.slow  # renders and converts a 640x480 NYU raw scene: 5.9 min measured on the shared 2-core CPU


@dataclass
class Converted:
    """The raw scene, its conversion (through the resolver, as `--data <raw folder>` does) and the truth."""

    raw_dir: Path
    out: Path
    meta: dict
    record: dict
    gt_c2w: np.ndarray  # ground truth of the written frames, in their order

    def gt_depth(self, depth_file: str) -> np.ndarray:
        path = Path(f"{self.raw_dir}_ground_truth") / "depth" / f"{Path(depth_file).stem}.png"
        return cv2.imread(str(path), cv2.IMREAD_UNCHANGED)[cal.CROP_ROWS, cal.CROP_COLS] / 1000.0


@pytest.fixture(scope="module")
def converted(tmp_path_factory: pytest.TempPathFactory) -> Converted:
    """A 61-pose hand-held scene (60 good frames, 6 planted RGB-less, 1 all-invalid), converted once."""
    root = tmp_path_factory.mktemp("nyu")
    gt = write_nyu_raw_scene(root / "living_room_0001", NYURawSpec(num_frames=61))
    out = ensure_nerfstudio_scene(gt.scene_dir, cache_dir=root / "cache")
    meta = json.loads((out / "metadata.json").read_text())
    record, poses = load_ground_truth(gt.gt_dir)
    order = [record["depth_files"].index(f["depth_file"]) for f in meta["frames"]]
    return Converted(gt.scene_dir, out, meta, record, poses[order])


def test_frame_counts_match_what_was_planted(converted: Converted) -> None:
    meta, record = converted.meta, converted.record
    assert len(record["depth_files"]) >= 60
    assert meta["sync"]["dropped_rgb_too_far"] == len(record["dropped_depth_files"]) == 6
    assert meta["dropped_counts"]["no_valid_depth"] == len(record["invalid_depth_files"]) == 1
    assert meta["dropped_counts"]["odometry_failed"] == 0
    assert sorted(meta["dropped"]) == sorted(record["dropped_depth_files"] + record["invalid_depth_files"])
    assert meta["frames_posed"] == len(record["depth_files"])
    assert meta["sync"]["dt_ms_max"] < 12.5  # the generator's RGB offsets are 3..12 ms
    # Keyframes only by default, spread over the whole path.
    written = [f["depth_file"] for f in meta["frames"]]
    assert 10 < len(written) < len(record["depth_files"]) and written[0] == record["depth_files"][0]
    assert record["depth_files"].index(written[-1]) > 0.9 * len(record["depth_files"])


def test_trajectory_accuracy(converted: Converted) -> None:
    est = load_scene(converted.out).c2w
    ate = absolute_trajectory_error(est, converted.gt_c2w)
    print(f"synthetic NYU raw: ATE {ate * 100:.2f} cm over {len(est)} keyframes")
    assert ate < 0.03
    assert relative_rotation_errors(est, converted.gt_c2w).max() < 1.0


def test_world_is_levelled_by_the_accelerometer(converted: Converted) -> None:
    est, gt = load_scene(converted.out).c2w, converted.gt_c2w
    z = np.array([0.0, 0.0, 1.0])
    # The world's up axis seen from each camera must agree with the truth (independent of yaw and origin).
    cos = np.einsum("nji,j,nki,k->n", est[:, :3, :3], z, gt[:, :3, :3], z)
    assert np.rad2deg(np.arccos(np.clip(cos, -1, 1))).max() < 1.0


def test_registered_depth_matches_ground_truth(converted: Converted) -> None:
    scene = load_scene(converted.out)
    errors, coverage = [], []
    for i, frame in enumerate(converted.meta["frames"]):
        truth, depth = converted.gt_depth(frame["depth_file"]), scene.depth(i)
        valid = (depth > 0) & (truth > 0)
        errors.append(np.abs(depth - truth)[valid])
        coverage.append(valid.mean())
    median = float(np.median(np.concatenate(errors)))
    print(f"synthetic NYU raw: registered depth median error {median * 100:.2f} cm")
    assert median < 0.02
    assert np.mean(coverage) > 0.7


def test_resolver_reuses_the_conversion(converted: Converted) -> None:
    out = converted.out
    assert out == out.parent.parent / "cache" / "living_room_0001_nerfstudio"
    assert ensure_nerfstudio_scene(out) == out  # a converted scene is itself
    stamp = (out / "transforms.json").stat().st_mtime_ns
    assert ensure_nerfstudio_scene(converted.raw_dir, cache_dir=out.parent) == out
    assert (out / "transforms.json").stat().st_mtime_ns == stamp  # reused, not converted again
    assert not list(out.glob(".work-*"))


def test_diffnerf_trains_on_the_raw_folder(converted: Converted, tmp_path: Path) -> None:
    """`ns-train diffnerf --data <raw NYU folder>`: the dataparser resolves the raw folder to its conversion."""
    import dataclasses

    import torch
    from nerfstudio.engine.trainer import Trainer

    from diffnerf_ns.diffnerf_config import diffnerf_method
    from diffnerf_ns.presets import configure_run

    config = configure_run(diffnerf_method.config, converted.raw_dir, tmp_path, iterations=3, rays_per_batch=64)
    dm = config.pipeline.datamanager
    dm.dataparser = dataclasses.replace(dm.dataparser, cache_dir=converted.out.parent)
    trainer = Trainer(config)
    trainer.setup()
    outputs = trainer.pipeline.datamanager.train_dataparser_outputs
    assert Path(outputs.image_filenames[0]).parent.parent == converted.out
    assert len(outputs.image_filenames) == len(converted.meta["frames"]) - len(converted.meta["frames"][::8])
    trainer.train()  # as ns-train trains: callbacks run
    assert all(torch.isfinite(p).all() for p in trainer.pipeline.model.parameters())
    assert torch.isfinite(outputs.scene_box.aabb).all()
