"""A procedural corpus of indoor RGB-D frames with exact depth, for training and benchmarking depth priors.

Each room is drawn from its own seed: its size and shape (boxes, L-shapes and alcoves cut by solid
wall blocks), furniture (rotated boxes, tables on legs or pedestals, shelves with openings, sofas,
cylinders, slanted and thin boards, wall panels), procedural textures (wood, tiles, wallpaper
stripes, multi-scale sines), albedos from near-black to white, and lights. Views are random
camera poses in the room's free space. Every frame is ray-cast exactly (vectorised numpy, one core)
and comes with its albedo and normals, and with what a Kinect would have stored, from
`data_converters.synthetic.kinect_noise`.

Rooms of split "train" and split "heldout" come from disjoint seed streams, so benchmarks can score
on rooms that never appeared in training.

Rooms and views are drawn in `corpus_rooms` and ray-cast in `corpus_render`; this module turns them into
frames and writes and reads corpora on disk.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path

import numpy as np
from tqdm import tqdm

from data_converters.nerfstudio_scene import depth_to_png_mm
from data_converters.nyu.calibration import raw_to_metres
from data_converters.synthetic.corpus_rooms import Split, make_room, room_rng, sample_view, view_rng
from data_converters.synthetic.demo_scene import scaled_intrinsics
from data_converters.synthetic.kinect_noise import KinectNoiseModel


@dataclass
class CorpusFrame:
    """One corpus frame: exact geometry, and what a Kinect registered to the RGB camera would have stored."""

    rgb: np.ndarray  # (H, W, 3) uint8
    depth: np.ndarray  # (H, W) float32 metres, exact planar depth
    raw_disparity: np.ndarray  # (H, W) uint16 11-bit Kinect disparity, RAW_INVALID = missing
    albedo: np.ndarray  # (H, W, 3) float32 in [0, 1]
    normals: np.ndarray  # (H, W, 3) float32, camera frame (OpenCV axes)
    K: np.ndarray  # (3, 3) nerfstudio pixel convention (centres at +0.5)
    c2w: np.ndarray  # (4, 4) OpenCV camera-to-world
    split: str
    room: int
    view: int

    @property
    def raw(self) -> np.ndarray:
        """The corrupted depth in metres (float32, 0 = missing), by the NYU toolbox conversion."""
        return raw_to_metres(self.raw_disparity)

    @property
    def name(self) -> str:
        return f"corpus {self.split} room {self.room} view {self.view}"


def corpus_frames(
    num_rooms: int,
    views_per_room: int,
    width: int = 160,
    height: int = 120,
    seed: int = 0,
    split: Split = "train",
    noise: KinectNoiseModel | None = None,
    max_near_fraction: float = 0.3,
) -> Iterator[CorpusFrame]:
    """Rendered, Kinect-corrupted frames, room by room; deterministic in (seed, split, room, view).

    Views where more than `max_near_fraction` of the image is closer than the Kinect's minimum range
    are redrawn. `noise` defaults to `default_noise(width)`.
    """
    for r in range(num_rooms):
        yield from room_frames(r, views_per_room, width, height, seed, split, noise, max_near_fraction)


def room_frames(
    room_index: int,
    views_per_room: int,
    width: int = 160,
    height: int = 120,
    seed: int = 0,
    split: Split = "train",
    noise: KinectNoiseModel | None = None,
    max_near_fraction: float = 0.3,
) -> Iterator[CorpusFrame]:
    """The views of one room (rooms are independent, so they can be rendered in parallel)."""
    noise = noise or default_noise(width)
    K = scaled_intrinsics(width, height)
    room = make_room(room_rng(seed, split, room_index))
    for v in range(views_per_room):
        rng = view_rng(seed, split, room_index, v)
        for _ in range(20):
            c2w = sample_view(room, rng)
            view = room.render(K, c2w, height, width)
            if (view.depth < noise.min_range_m).mean() <= max_near_fraction:
                break
        raw = noise.corrupt_raw(view.depth, view.rgb, rng, K=K, albedo=view.albedo, normals=view.normals)
        rgb8 = (view.rgb * 255 + 0.5).astype(np.uint8)
        yield CorpusFrame(rgb8, view.depth, raw, view.albedo, view.normals, K, c2w, split, room_index, v)


def default_noise(width: int) -> KinectNoiseModel:
    """The corpus's Kinect model: depth registered to the RGB camera, misregistered by ~1 px at 640 px width."""
    return KinectNoiseModel.registered_to_rgb(misregistration_px=width / 640)


CORPUS_FILE = "corpus.json"
CORPUS_FORMAT = "diffnerf-ns corpus v1"


def _write_room(out_dir: Path, room: int, views_per_room: int, width: int, height: int, seed: int, split: Split) -> str:
    """Render one room and write its shard; returns the file name."""
    views = list(room_frames(room, views_per_room, width, height, seed, split))
    name = f"{split}_room_{room:05d}.npz"
    np.savez_compressed(  # ~40 KB per 160x120 frame
        out_dir / name,
        rgb=np.stack([f.rgb for f in views]),
        depth_mm=np.stack([depth_to_png_mm(f.depth) for f in views]),
        raw_disparity=np.stack([f.raw_disparity for f in views]),
        albedo=np.stack([np.round(f.albedo * 255).astype(np.uint8) for f in views]),
        normals=np.stack([np.round(f.normals * 127).astype(np.int8) for f in views]),
        K=views[0].K,
        c2w=np.stack([f.c2w for f in views]),
        view=np.array([f.view for f in views]),
    )
    return name


def write_corpus(
    out_dir: Path,
    num_rooms: int,
    views_per_room: int,
    width: int = 160,
    height: int = 120,
    seed: int = 0,
    split: Split = "train",
    workers: int = 1,
    progress: bool = True,
) -> Path:
    """Render a corpus to `out_dir`: one `.npz` per room, then `corpus.json` (written last: a complete corpus).

    With `workers > 1` rooms render in parallel processes; the shards are identical either way.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / CORPUS_FILE).unlink(missing_ok=True)
    job = partial(
        _write_room, out_dir, views_per_room=views_per_room, width=width, height=height, seed=seed, split=split
    )
    bar = partial(tqdm, total=num_rooms, desc=f"rendering {split} corpus (rooms)", disable=not progress)
    if workers > 1:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            files = list(bar(pool.map(job, range(num_rooms))))
    else:
        files = list(bar(map(job, range(num_rooms))))
    spec = {"format": CORPUS_FORMAT, "seed": seed, "split": split, "num_rooms": num_rooms}
    spec |= {"views_per_room": views_per_room, "width": width, "height": height, "files": files}
    spec["noise"] = asdict(default_noise(width))
    spec["depth"] = "depth_mm: exact planar depth, uint16 mm; raw_disparity: 11-bit Kinect raw, 2047 = missing"
    (out_dir / CORPUS_FILE).write_text(json.dumps(spec, indent=2))
    return out_dir


def read_corpus(corpus_dir: Path) -> Iterator[CorpusFrame]:
    """Stream a corpus written by `write_corpus`, room by room."""
    corpus_dir = Path(corpus_dir)
    spec_path = corpus_dir / CORPUS_FILE
    if not spec_path.is_file():
        raise FileNotFoundError(f"{spec_path}: missing; {corpus_dir} is not a (complete) corpus from write_corpus")
    spec = json.loads(spec_path.read_text())
    if spec.get("format") != CORPUS_FORMAT:
        raise ValueError(f"{spec_path}: format {spec.get('format')!r}, expected {CORPUS_FORMAT!r}")
    for name in spec["files"]:
        room = int(name.rsplit("_", 1)[1].split(".")[0])
        with np.load(corpus_dir / name) as data:
            for i, view in enumerate(data["view"]):
                yield CorpusFrame(
                    data["rgb"][i], data["depth_mm"][i].astype(np.float32) / 1000.0, data["raw_disparity"][i],
                    data["albedo"][i].astype(np.float32) / 255.0, data["normals"][i].astype(np.float32) / 127.0,
                    data["K"], data["c2w"][i], spec["split"], room, int(view),
                )  # fmt: skip
