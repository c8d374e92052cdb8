"""Where the prior's training frames come from: synthetic renders, the NYU labeled file, scenes, real captures.

Every source yields `TrainingFrame`s: RGB, a target depth (0 = unknown) and optionally the sensor's
`raw` observation, which becomes the conditioning. Synthetic frames have exact targets. Real frames
have none, so they train self-supervised (`self_supervised`): the target is the sensor's own depth and
the conditioning hides more of its valid pixels in realistic hole shapes, so the prior learns to
restore measured depth, scored only where the sensor measured. Large sources stream one frame at a
time, so the 2.8 GB labeled file is never held in memory.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from data_converters.capture import Capture
from data_converters.nerfstudio_scene import load_scene, to_nerfstudio_intrinsics
from data_converters.nyu.calibration import CROP_COLS, CROP_ROWS, cropped_rgb_intrinsics
from data_converters.synthetic.corpus import CORPUS_FILE, Split, corpus_frames, read_corpus
from data_converters.synthetic.demo_scene import scaled_intrinsics
from data_converters.synthetic.kinect_noise import KinectNoiseModel
from data_converters.synthetic.room import RoomScene, handheld_trajectory
from diffnerf_ns.data_split import sun3d_group
from diffnerf_ns.prior.holes import realistic_hole_mask


@dataclass
class TrainingFrame:
    """One RGB-D frame to crop from; `raw` is an optional real sensor observation of `depth`.

    `K` is the whole frame's intrinsics (nerfstudio pixel convention, centres at +0.5, as the Kinect model
    uses): frames without `raw` are corrupted with it, so shadows and noise have the sensor's real size.
    """

    rgb: np.ndarray  # (H, W, 3) uint8
    depth: np.ndarray  # (H, W) float32 metres, 0 = unknown
    name: str
    raw: np.ndarray | None = None  # (H, W) float32 metres, 0 = missing
    K: np.ndarray | None = None  # (3, 3); None: a Kinect field of view over the frame's width


def frames_from_arrays(
    rgbs: Sequence[np.ndarray],
    depths: Sequence[np.ndarray],
    raws: Sequence[np.ndarray] | None = None,
    K: np.ndarray | None = None,
) -> list[TrainingFrame]:
    """Wrap in-memory arrays (RGB uint8 or float in [0, 1], depth in metres; one shared K) as training frames."""
    frames = []
    for i, (rgb, depth) in enumerate(zip(rgbs, depths, strict=True)):
        rgb = np.asarray(rgb)
        if rgb.dtype != np.uint8:
            rgb = (np.clip(rgb, 0.0, 1.0) * 255 + 0.5).astype(np.uint8)
        raw = None if raws is None else np.asarray(raws[i], np.float32)
        frames.append(TrainingFrame(rgb, np.asarray(depth, np.float32), f"frame {i}", raw, K))
    return frames


def frames_from_scene(scene_dir: Path) -> list[TrainingFrame]:
    """All frames of a converted scene; its (raw, holed) depth is the target, crops avoid holes."""
    scene = load_scene(scene_dir)  # transforms.json intrinsics: nerfstudio's pixel convention already
    frames = []
    for i in range(len(scene.image_paths)):
        rgb, depth, K = scene.rgbd(i)  # at the depth map's resolution, as refinement sees the frame
        frames.append(TrainingFrame(rgb, depth, str(scene.depth_paths[i]), K=K))
    return frames


def synthetic_room_frames(
    num_frames: int, width: int, height: int, seed: int = 0, noise_model: KinectNoiseModel | None = None
) -> list[TrainingFrame]:
    """Renders of the demo room with exact depth; with `noise_model`, `raw` holds a Kinect corruption.

    Ground truth for tests and benchmarks; without a noise model the dataset corrupts each frame afresh.
    """
    scene, K = RoomScene.default(), scaled_intrinsics(width, height)
    rng = np.random.default_rng(seed)
    frames = []
    for i, c2w in enumerate(handheld_trajectory(num_frames, seed=seed)):
        rgb, depth = scene.render(K, c2w, height, width)
        rgb8 = (rgb * 255 + 0.5).astype(np.uint8)
        raw = None if noise_model is None else noise_model.corrupt(depth, rgb, rng, K=K)
        frames.append(TrainingFrame(rgb8, depth, f"synthetic room {seed}:{i}", raw, K))
    return frames


def iter_corpus(
    num_rooms: int,
    views_per_room: int,
    width: int = 160,
    height: int = 120,
    seed: int = 0,
    split: Split = "train",
    noise: KinectNoiseModel | None = None,
) -> Iterator[TrainingFrame]:
    """The procedural corpus (`data_converters.synthetic.corpus`): exact depth as target, Kinect raw as `raw`."""
    for f in corpus_frames(num_rooms, views_per_room, width, height, seed, split, noise):
        yield TrainingFrame(f.rgb, f.depth, f.name, f.raw, f.K)


def frames_from_corpus_dir(corpus_dir: Path) -> Iterator[TrainingFrame]:
    """A corpus rendered to disk (`diffnerf-make-corpus`), streamed room by room."""
    for f in read_corpus(corpus_dir):
        yield TrainingFrame(f.rgb, f.depth, f.name, f.raw, f.K)


def frames_from_labeled(path: Path, indices: Iterable[int] | None = None) -> Iterator[TrainingFrame]:
    """Stream `nyu_depth_v2_labeled.mat`, border cropped: filled `depths` as target, `rawDepths` as raw."""
    from data_converters.nyu.labeled import LabeledNYU  # h5py reader; only needed for the .mat

    K = to_nerfstudio_intrinsics(cropped_rgb_intrinsics())
    with LabeledNYU(path) as nyu:
        for f in nyu.iter_frames(indices):
            yield TrainingFrame(
                f.rgb[CROP_ROWS, CROP_COLS],
                f.depth[CROP_ROWS, CROP_COLS],
                f"{path}[{f.index}]",
                f.raw_depth[CROP_ROWS, CROP_COLS],
                K,
            )


def frames_from_capture(capture: Capture, groups: Iterable[str] | None = None) -> Iterator[TrainingFrame]:
    """Stream a parsed RGB-D capture (any layout reader's `Capture`); the sensor depth is the target, no raw.

    `groups` keeps only those fragments / sequences (e.g. SUN3D's training fragment).
    """
    keep = None if groups is None else set(groups)
    if keep is not None and not keep & {f.group for f in capture.frames}:
        known = sorted({f.group for f in capture.frames})
        raise ValueError(f"{capture.root}: no frames in groups {sorted(keep)}; the capture has {known}")
    K = to_nerfstudio_intrinsics(capture.K)
    for frame in capture.frames:
        if keep is None or frame.group in keep:
            depth = np.asarray(capture.load_depth_m(frame), dtype=np.float32)
            yield TrainingFrame(capture.load_rgb(frame), depth, f"{capture.root}/{frame.name}", K=K)


def sun3d_frames(root: Path, split: Literal["train", "test"] = "train") -> Iterator[TrainingFrame]:
    """The SUN3D study fixture (3DMatch layout), on the side of `diffnerf_ns.data_split` that `split` names."""
    from data_converters.layouts.threedmatch import read_threedmatch

    return frames_from_capture(read_threedmatch(Path(root)), [sun3d_group("prior" if split == "train" else "scored")])


def self_supervised(frames: Iterable[TrainingFrame], seed: int = 0) -> Iterator[TrainingFrame]:
    """Real frames without ground truth: target = the sensor's depth, raw = it with more valid pixels hidden.

    The sensor depth is `frame.raw` when the source has one (NYU `rawDepths`), else `frame.depth`.
    Each pass draws fresh hole shapes (`realistic_hole_mask`); the loss belongs on the target's valid pixels.
    """
    rng = np.random.default_rng(seed)
    for frame in frames:
        sensor = frame.raw if frame.raw is not None else frame.depth
        hidden = realistic_hole_mask(sensor, frame.rgb, rng)
        raw = np.where(hidden, 0.0, sensor)
        yield TrainingFrame(frame.rgb, sensor, f"{frame.name} (self-supervised)", raw, frame.K)


def frames_from_path(path: Path, indices: Sequence[int] | None = None) -> Iterator[TrainingFrame]:
    """The labeled .mat (optionally only `indices`), a rendered corpus, a converted scene or a folder of scenes."""
    path = Path(path)
    if path.suffix == ".mat":
        return frames_from_labeled(path, indices)
    if (path / CORPUS_FILE).is_file():
        return frames_from_corpus_dir(path)
    if (path / "transforms.json").is_file():
        return iter(frames_from_scene(path))
    scenes = sorted(p for p in path.iterdir() if (p / "transforms.json").is_file()) if path.is_dir() else []
    if not scenes:
        raise FileNotFoundError(
            f"{path}: not a labeled .mat, a rendered corpus ({CORPUS_FILE}), a converted scene (transforms.json) "
            "or a folder of converted scenes"
        )
    return (frame for scene in scenes for frame in frames_from_scene(scene))
