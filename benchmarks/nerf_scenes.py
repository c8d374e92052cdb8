"""The NeRF benchmark's scenes: each a base scene (held-out frames hold the truth) and a reference surface.

Three synthetic rooms go through the product's own NYU raw path (Kinect model, converter, estimated poses);
SUN3D and ICL-NUIM come from the study fixtures with their given poses. A fourth room and the other SUN3D fragment
are for development (training the benchmark's prior, studying defaults), never scored.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from benchmarks.tsdf_fusion import tsdf_points
from data_converters.nerfstudio_scene import RGBDFrame, backproject, load_scene, split_view, write_scene
from data_converters.nyu.convert import RawOptions, convert_raw
from data_converters.synthetic.nyu_raw_writer import NYURawSpec, load_ground_truth, write_nyu_raw_scene
from data_converters.synthetic.room import Box, RoomScene
from diffnerf_ns.data_split import EVAL_INTERVAL, Role, sun3d_group
from diffnerf_ns.metrics import absolute_trajectory_error, align_rigid

FIXTURES = Path(__file__).resolve().parents[2] / "shared" / "fixtures"


def benchmark_rooms() -> dict[str, tuple[RoomScene, NYURawSpec]]:
    """Three different rooms and trajectories (never used to develop or tune anything)."""
    spec = dict(num_frames=48, stalls=(20, 40), invalid_depth_frames=(30,))
    return {
        "room1": (RoomScene.default(), NYURawSpec(seed=1, arc_degrees=80.0, **spec)),
        "room2": (
            RoomScene(
                room_lo=(-2.0, -1.8, 0.0),
                room_hi=(2.0, 1.8, 2.5),
                light=(-0.4, 0.2, 2.3),
                boxes=[
                    Box((0.6, 1.0, 0.0), (1.7, 1.75, 0.75), (0.5, 0.35, 0.2), 8.0),  # desk
                    Box((-1.9, 0.2, 0.0), (-0.5, 1.75, 0.5), (0.75, 0.6, 0.55), 4.0),  # bed
                    Box((1.4, -0.6, 0.0), (1.95, 0.8, 2.1), (0.85, 0.85, 0.8), 10.0),  # wardrobe
                    Box((0.9, 0.4, 0.0), (1.3, 0.8, 0.9), (0.3, 0.5, 0.6), 6.0),  # chair
                    Box((-0.3, 1.7, 1.2), (0.4, 1.78, 1.7), (0.08, 0.08, 0.1), 3.0),  # dark picture
                ],
            ),
            NYURawSpec(seed=2, arc_degrees=100.0, **spec),
        ),
        "room3": (
            RoomScene(
                room_lo=(-3.0, -2.2, 0.0),
                room_hi=(3.0, 2.6, 2.9),
                light=(0.8, 0.5, 2.7),
                boxes=[
                    Box((-1.5, 0.8, 0.0), (1.5, 1.6, 0.72), (0.6, 0.6, 0.62), 12.0),  # long table
                    Box((-2.9, 1.0, 0.0), (-2.4, 2.5, 2.0), (0.45, 0.3, 0.2), 14.0),  # bookshelf
                    Box((0.2, -0.2, 0.0), (0.5, 0.1, 2.9), (0.9, 0.88, 0.85), 5.0),  # column
                    Box((2.0, -1.0, 0.0), (2.9, 0.2, 1.1), (0.3, 0.45, 0.35), 7.0),  # cabinet
                    Box((-0.4, 1.5, 0.72), (0.4, 1.55, 1.2), (0.05, 0.05, 0.06), 3.0),  # dark monitor
                ],
            ),
            NYURawSpec(seed=3, arc_degrees=120.0, **spec),
        ),
    }


@dataclass
class BenchScene:
    """A base scene (all frames; held-out frames hold the truth) and its true surface in the scene's frame."""

    scene_dir: Path
    reference: Path
    """(N, 3) .npy of the reference surface in the scene's world frame."""
    note: str


def downscale(rgb: np.ndarray, depth: np.ndarray, K: np.ndarray, factor: int) -> tuple[np.ndarray, ...]:
    """Area-averaged RGB, nearest depth (no mixing across edges), intrinsics scaled (nerfstudio convention)."""
    h, w = depth.shape
    size = (w // factor, h // factor)
    K_small = np.diag([size[0] / w, size[1] / h, 1.0]) @ K
    return (
        cv2.resize(rgb, size, interpolation=cv2.INTER_AREA),
        cv2.resize(depth, size, interpolation=cv2.INTER_NEAREST),
        K_small,
    )


def synthetic_scene(name: str, room: RoomScene, spec: NYURawSpec, work: Path, factor: int) -> BenchScene:
    """Generate NYU raw, convert it with the project's converter, write the benchmark scene with truth."""
    out = work / "scenes" / name
    if (out / "reference.npy").exists():
        return BenchScene(out, out / "reference.npy", (out / "note.txt").read_text())
    raw = work / "raw" / name
    if not (Path(f"{raw}_ground_truth") / "ground_truth.json").exists():
        write_nyu_raw_scene(raw, spec, room=room)
    converted = convert_raw(raw, work / "converted" / name, RawOptions(keyframes_only=False))
    record, gt_poses = load_ground_truth(Path(f"{raw}_ground_truth"))
    true_of = {f: gt_poses[i] for i, f in enumerate(record["depth_files"])}
    scene = load_scene(converted)
    written = json.loads((converted / "metadata.json").read_text())["frames"]  # in the scene's frame order
    true_c2w = np.stack([true_of[f["depth_file"]] for f in written])
    to_true = align_rigid(scene.c2w, true_c2w)  # estimated world -> true world
    frames, truth_points = [], []
    for i in range(len(scene.c2w)):
        rgb, depth, K = downscale(scene.rgb(i), scene.depth(i), scene.K, factor)
        h, w = depth.shape
        clean_rgb, clean_depth = room.render(K, true_c2w[i], h, w)
        truth_points.append(backproject(clean_depth, K, true_c2w[i], stride=2))
        if i % EVAL_INTERVAL == 0:  # held out: the clean truth, seen from the true pose
            rgb, depth = (clean_rgb * 255 + 0.5).astype(np.uint8), clean_depth.astype(np.float32)
        frames.append(RGBDFrame(rgb, depth, scene.c2w[i], f"frame_{i:05d}"))
    write_scene(out, K, w, h, iter(frames), {"source": str(converted), "held_out": "clean truth at the true pose"})
    true_world = np.concatenate(truth_points)
    reference = (true_world - to_true[:3, 3]) @ to_true[:3, :3]  # true world -> estimated (scene) world
    np.save(out / "reference.npy", reference)
    note = (
        f"{len(scene.c2w)} frames converted from {spec.num_frames} (+stalls), {w}x{h}; "
        f"pose ATE {absolute_trajectory_error(scene.c2w, true_c2w) * 100:.1f} cm"
    )
    (out / "note.txt").write_text(note)
    return BenchScene(out, out / "reference.npy", note)


def development_room() -> tuple[RoomScene, NYURawSpec]:
    """A fourth layout and path, for training the benchmark's default prior and for studying defaults."""
    room = RoomScene(
        room_lo=(-2.6, -2.4, 0.0),
        room_hi=(2.2, 2.2, 2.7),
        light=(0.0, 0.0, 2.5),
        boxes=[
            Box((-2.5, 0.9, 0.0), (-1.2, 2.1, 0.45), (0.55, 0.25, 0.2), 6.0),  # low sofa
            Box((0.4, 1.5, 0.0), (2.1, 2.1, 0.9), (0.75, 0.72, 0.6), 9.0),  # sideboard
            Box((-0.5, 0.5, 0.0), (0.3, 1.1, 0.45), (0.35, 0.3, 0.25), 13.0),  # coffee table
            Box((1.7, -0.8, 0.0), (2.15, 0.3, 1.6), (0.2, 0.3, 0.5), 5.0),  # tall cabinet
        ],
    )
    return room, NYURawSpec(seed=101, arc_degrees=110.0, num_frames=48, stalls=(20, 40), invalid_depth_frames=(30,))


def sun3d_scene(work: Path, factor: int, role: Role = "scored") -> BenchScene:
    """One SUN3D fragment (given poses) at 1/factor size; reference surface: TSDF fusion of all 100 frames.

    The benchmark scores the fragment no prior trains on; development studies take the other
    (`diffnerf_ns.data_split`).
    """
    from data_converters.layouts.threedmatch import read_threedmatch  # the any-RGB-D reader

    out = work / "scenes" / f"sun3d_{sun3d_group(role)}"
    if (out / "reference.npy").exists():
        return BenchScene(out, out / "reference.npy", (out / "note.txt").read_text())
    capture = read_threedmatch(FIXTURES / "sun3d_study_100")
    K_ns = capture.K.copy()
    K_ns[:2, 2] += 0.5  # Capture uses OpenCV pixel centres; scenes use nerfstudio's (+0.5)

    def load(f) -> tuple[np.ndarray, np.ndarray]:
        rgb = np.asarray(Image.open(f.rgb_path).convert("RGB"))
        depth = np.asarray(Image.open(f.depth_path), np.float32) * capture.depth_scale
        depth[np.isin(np.asarray(Image.open(f.depth_path)), capture.invalid_depth_values)] = 0.0
        return rgb, depth

    everything = [(*load(f), f.c2w) for f in capture.frames]
    reference = tsdf_points(K_ns, everything, voxel=0.02)
    first = sun3d_group(role)
    frames = []
    for f, (rgb, depth, c2w) in zip(capture.frames, everything, strict=True):
        if f.group == first:
            rgb_s, depth_s, K = downscale(rgb, depth, K_ns, factor)
            frames.append(RGBDFrame(rgb_s, depth_s, c2w, f.name.replace("/", "_")))
    h, w = frames[0].depth.shape
    write_scene(out, K, w, h, iter(frames), {"source": str(capture.root), "held_out": "sensor RGB-D"})
    np.save(out / "reference.npy", reference)
    note = f"fragment {first}: {len(frames)} frames, {w}x{h}; reference: TSDF of all {len(everything)} frames"
    (out / "note.txt").write_text(note)
    return BenchScene(out, out / "reference.npy", note)


def icl_scene(work: Path, width: int = 160, height: int = 120) -> BenchScene:
    """The ICL-NUIM fixture (given poses) downscaled; reference surface: its own depth of all 5 frames."""
    out = work / "scenes" / "icl"
    if (out / "reference.npy").exists():
        return BenchScene(out, out / "reference.npy", (out / "note.txt").read_text())
    src = FIXTURES / "icl_nuim_5"
    cam = json.loads((src / "camera_primesense.json").read_text())
    K = np.asarray(cam["intrinsic_matrix"]).reshape(3, 3).T  # stored column-major
    K[:2, 2] += 0.5  # OpenCV -> nerfstudio pixel centres
    lines = (src / "trajectory.log").read_text().split("\n")
    poses = [np.loadtxt(lines[5 * i + 1 : 5 * i + 5]) for i in range(5)]
    frames = []
    for i, c2w in enumerate(poses):
        rgb = np.asarray(Image.open(src / "color" / f"{i:05d}.jpg").convert("RGB"))
        depth = np.asarray(Image.open(src / "depth" / f"{i:05d}.png"), np.float32) / 1000.0
        rgb_s, depth_s, K_s = downscale(rgb, depth, K, cam["width"] // width)
        frames.append(RGBDFrame(rgb_s, depth_s, c2w, f"frame_{i:05d}"))
    h, w = frames[0].depth.shape
    write_scene(out, K_s, w, h, iter(frames), {"source": str(src), "held_out": "rendered RGB-D"})
    np.save(out / "reference.npy", load_scene(out).world_points(stride=2))
    note = f"5 frames, {w}x{h}, given poses"
    (out / "note.txt").write_text(note)
    return BenchScene(out, out / "reference.npy", note)


def split(base: Path, out: Path, num_train: int | None) -> Path:
    """The benchmark's view of a scene: every EVAL_INTERVAL-th frame held out, `num_train` training frames."""
    return split_view(base, out, num_train, EVAL_INTERVAL)
