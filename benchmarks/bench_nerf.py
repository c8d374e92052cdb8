"""Does the diffusion prior help, and how does diffnerf compare with depth-nerfacto as users run it?

Input is what the product gets, scored against truth the methods never see:
- `room1..3`: three different synthetic rooms and hand-held trajectories, written in NYU raw format with the
  Kinect model (quantised disparity, noise, holes, misregistration, timestamps) and converted by the
  project's own `diffnerf-convert-nyu raw` (registered, holey depth; estimated poses). Held-out frames are
  replaced by the generator's clean render at the true pose (clean RGB and depth); the true surface is the
  clean depth of every frame, moved into the estimated world frame by a rigid alignment of camera centres.
- `sun3d`: the real SUN3D study fixture through the 3DMatch reader: the scored fragment of
  `diffnerf_ns.data_split` (fragment 2: no prior trains on it; `nerf.md`'s run predates that and used fragment 1),
  with its given poses; held-out
  frames keep their sensor RGB and depth (scored on valid pixels); the reference surface is a TSDF fusion of
  all 100 frames.
- `icl`: the 5-frame ICL-NUIM fixture (given poses, rendered depth).

Settings: `dense` (all training frames), `few3` and `few6` (3 / 6 training views); every 8th frame held out.
Rows: depth-nerfacto exactly as `ns-train depth-nerfacto --data <scene>`; depth-nerfacto given diffnerf's box,
depth weight and sampler; Open3D TSDF fusion of the same training frames; diffnerf without prior, on refined
depth, with the regulariser, and both. Every NeRF gets the same iterations, rays per batch and model-size
preset, and is trained by `benchmarks/nerf_harness.py` (nerfstudio's `Trainer.train()`), one process per run,
`--jobs` runs at a time. Writes `benchmarks/results/nerf.md` and `benchmarks/results/nerf.png`.

    python -m benchmarks.bench_nerf                      # the full CPU benchmark
    python -m benchmarks.bench_nerf --scenes room1 --settings dense --iterations 10 --methods depth-nerfacto \
        diffnerf-no-prior tsdf-fusion --report /tmp/smoke.md   # smoke test
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import cv2
import numpy as np
import torch
import tyro
from PIL import Image

from benchmarks.fingerprint import code_fingerprint, config_fingerprint, folder_fingerprint, git_commit
from data_converters.nerfstudio_scene import RGBDFrame, backproject, load_scene, split_view, write_scene
from data_converters.nyu.convert import RawOptions, convert_raw
from data_converters.synthetic.nyu_raw_writer import NYURawSpec, load_ground_truth, write_nyu_raw_scene
from data_converters.synthetic.room import Box, RoomScene
from diffnerf_ns.data_split import EVAL_INTERVAL, Role, sun3d_group
from diffnerf_ns.metrics import absolute_trajectory_error, align_rigid, surface_metrics
from diffnerf_ns.prior.refine import REFINED_LAYERS

FIXTURES = Path(__file__).resolve().parents[2] / "shared" / "fixtures"
PEER = "depth-nerfacto"
NERF_METHODS = (
    "depth-nerfacto",
    "depth-nerfacto-matched",
    "diffnerf-no-prior",
    "diffnerf-refined",
    "diffnerf-reg",
    "diffnerf-both",
)
PRIOR_METHODS = ("diffnerf-refined", "diffnerf-reg", "diffnerf-both")
COLUMNS = (  # (result key, header, format)
    ("psnr", "PSNR", ".2f"),
    ("ssim", "SSIM", ".3f"),
    ("depth_abs_rel", "AbsRel", ".3f"),
    ("depth_rmse", "RMSE m", ".3f"),
    ("chamfer", "Chamfer m", ".3f"),
    ("fscore", "F@5cm", ".3f"),
    ("seconds_per_iteration", "s/it", ".2f"),
    ("rays_per_second", "rays/s", ".0f"),
    ("peak_memory_mb", "peak MB", ".0f"),
)
RATIOS = ("depth_abs_rel", "chamfer", "seconds_per_iteration")
PoseRefinement = Literal["off", "SO3xR3", "SE3"]


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


def tsdf_points(K: np.ndarray, frames: list[tuple[np.ndarray, np.ndarray, np.ndarray]], voxel: float) -> np.ndarray:
    """Open3D TSDF fusion (tensor VoxelBlockGrid) of (rgb uint8, depth m, c2w OpenCV) frames; surface points."""
    import open3d as o3d
    import open3d.core as o3c

    grid = o3d.t.geometry.VoxelBlockGrid(
        attr_names=("tsdf", "weight", "color"), attr_dtypes=(o3c.float32,) * 3, attr_channels=(1, 1, 3),
        voxel_size=voxel, block_resolution=8, block_count=100_000,
    )
    intrinsic = o3c.Tensor(K, o3c.float64)
    for rgb, depth, c2w in frames:
        d = o3d.t.geometry.Image(o3c.Tensor(np.ascontiguousarray(depth, np.float32)))
        c = o3d.t.geometry.Image(o3c.Tensor(np.ascontiguousarray(rgb, np.float32) / 255.0))
        extrinsic = o3c.Tensor(np.linalg.inv(c2w), o3c.float64)
        blocks = grid.compute_unique_block_coordinates(d, intrinsic, extrinsic, 1.0, 8.0)
        grid.integrate(blocks, d, c, intrinsic, extrinsic, 1.0, 8.0)
    return grid.extract_point_cloud(weight_threshold=1.0).point.positions.numpy()


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


def tsdf_row(view: Path, reference: np.ndarray) -> dict[str, float]:
    """TSDF fusion of the view's training frames, scored like the NeRFs."""
    scene = load_scene(view)
    train = set(json.loads((view / "transforms.json").read_text())["train_filenames"])
    frames = [
        (scene.rgb(i), scene.depth(i), scene.c2w[i])
        for i, p in enumerate(scene.image_paths)
        if p.relative_to(view).as_posix() in train
    ]
    start = time.perf_counter()
    points = tsdf_points(scene.K, frames, voxel=0.02)
    return {**surface_metrics(points, reference), "seconds": time.perf_counter() - start}


def prior_note(prior: Path) -> str:
    """Which prior the prior rows used (content fingerprint), and how long it trained (its `train_*.json`)."""
    note = f"Prior: `{prior}` (fingerprint {folder_fingerprint(prior)})"
    config, stats = prior / "train_config.json", prior / "train_stats.json"
    if config.exists() and stats.exists():
        c, s = json.loads(config.read_text()), json.loads(stats.read_text())
        note += (
            f", {c['patch_size']} px patches, UNet {tuple(c['block_out_channels'])}, trained {s['steps']} steps "
            f"x batch {c['batch_size']} in {s['seconds'] / 60:.1f} min on {s['device']} on "
            f"{', '.join(Path(d).name for d in c['data'])}"
        )
    return note + "."


def reuse_note(runs: list[dict], where: Path) -> str:
    """How many runs this invocation trained, and when and at which commit the reused ones were trained."""
    reused = [r for r in runs if r.get("reused")]
    note = (
        f"Runs: {len(runs) - len(reused)} trained by this invocation, {len(reused)} reused from earlier ones in "
        f"`{where}` (same fingerprint: harness flags and budget, code, input files, prior)"
    )
    if reused:
        origins = sorted({f"{r.get('commit', 'unknown commit')} ({r.get('finished', 'unknown date')})" for r in reused})
        note += f", trained at {', '.join(origins)}"
    return note + ". Each result JSON carries its fingerprint and commit."


def summarise(values: list[float], fmt: str) -> str:
    """`mean ± std` over scenes (just the value for one)."""
    if not values:
        return "—"
    if len(values) == 1:
        return format(values[0], fmt)
    return f"{format(float(np.mean(values)), fmt)} ± {format(float(np.std(values)), fmt)}"


@dataclass
class Bench:
    """Build the scenes, run every method on every scene and setting, write the table and the plot."""

    scenes: tuple[str, ...] = ("room1", "room2", "room3", "sun3d", "icl")
    settings: tuple[str, ...] = ("dense", "few3", "few6")
    methods: tuple[str, ...] = (*NERF_METHODS, "tsdf-fusion")
    iterations: int = 300
    rays_per_batch: int = 512
    seeds: tuple[int, ...] = (0,)
    small: bool = True
    """CPU-sized model for every method (presets.small_model); --no-small on a GPU."""
    downscale: int = 4
    """Image size divisor (640x480-class input -> 140x106 / 160x120)."""
    jobs: int = 2
    """Runs in parallel, one process each (one thread each)."""
    workdir: Path = Path("outputs/bench_nerf")
    prior: Path | None = None
    """Prior folder for the prior rows; default: train a CPU-sized one on a development room (not a benchmark
    room) with `diffnerf-prior train`, bounded by --prior-minutes."""
    prior_minutes: float = 10.0
    dense_pose_refinement: PoseRefinement = "SO3xR3"
    """Pose refinement of every method in the dense rows (nerfstudio's and diffnerf's default)."""
    few_view_pose_refinement: PoseRefinement = "off"
    """Pose refinement of every method in the few-view rows (diffnerf-few-view's: too little overlap to refine)."""
    regulariser_every_n_steps: int | None = None
    """Override the regulariser's `every_n_steps` in the prior rows (cost study); None keeps the preset's."""
    report: Path = Path("benchmarks/results/nerf.md")

    def bench_scenes(self) -> dict[str, BenchScene]:
        rooms = benchmark_rooms()
        out = {}
        for name in self.scenes:
            if name in rooms:
                out[name] = synthetic_scene(name, *rooms[name], self.workdir, self.downscale)
            elif name == "sun3d":
                out[name] = sun3d_scene(self.workdir, self.downscale)
            elif name == "icl":
                out[name] = icl_scene(self.workdir)
            else:
                raise SystemExit(f"unknown scene {name!r}: choose from {[*rooms, 'sun3d', 'icl']}")
        return out

    def prior_dir(self) -> Path:
        """The prior for the prior rows; trains a small one on a development room if none is given."""
        if self.prior is not None:
            return self.prior
        out = self.workdir / "prior"
        if not (out / "model_index.json").exists() and not (out / "unet").is_dir():
            dev = synthetic_scene("dev_room", *development_room(), self.workdir / "development", self.downscale)
            cmd = [
                sys.executable, "-m", "diffnerf_ns.prior.cli", "train", "--data", str(dev.scene_dir), "--out",
                str(out), "--patch-size", "24", "--block-out-channels", "32", "64", "128", "--layers-per-block",
                "1", "--no-attention", "--steps", "3000", "--batch-size", "16", "--lr", "1e-3", "--warmup-steps",
                "100", "--ema-decay", "0.995", "--max-minutes", str(self.prior_minutes),
            ]
            print(f"[{time.strftime('%H:%M:%S')}] training the development prior: {' '.join(cmd)}", flush=True)
            subprocess.run(cmd, check=True, env=self.env(threads=2))
        return out

    def refine(self, view: Path, prior: Path) -> None:
        """Stage 1 on a view's training frames (the only ones supervised with it), through the prior's CLI; redone
        when the prior or the code changed."""
        meta = json.loads((view / "transforms.json").read_text())
        train = set(meta["train_filenames"])
        stamp = view / "refined_with.json"
        key = {"prior": folder_fingerprint(prior), "code": code_fingerprint()}
        done = all(k in f for f in meta["frames"] if f["file_path"] in train for k in REFINED_LAYERS)
        if done and stamp.exists() and json.loads(stamp.read_text()) == key:  # layers are written last
            return
        cmd = [sys.executable, "-m", "diffnerf_ns.prior.cli", "refine", "--scene", str(view), "--prior", str(prior),
               "--train-only"]
        print(f"[{time.strftime('%H:%M:%S')}] refining the {len(train)} training frames of {view}", flush=True)
        subprocess.run(cmd, check=True, env=self.env(threads=2), stdout=subprocess.DEVNULL)
        stamp.write_text(json.dumps(key))

    def env(self, threads: int) -> dict[str, str]:
        return {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}

    def run(self, method: str, scene: str, setting: str, view: Path, reference: Path, prior: Path | None,
            seed: int, extra: tuple[str, ...] = (), label: str | None = None) -> dict:
        """One harness process; `extra`: further harness flags, named `label`.

        The result file is keyed by a fingerprint of everything the run depends on (harness flags and budget, the
        code, the files the run reads, the prior), so only a run this checkout would reproduce is reused; a reused
        result says so (`reused`).
        """
        args = [
            "--method", method, "--scene", str(view), "--iterations", str(self.iterations), "--rays-per-batch",
            str(self.rays_per_batch), "--reference", str(reference), "--seed", str(seed),
            "--small" if self.small else "--no-small", *(["--few-view"] if setting.startswith("few") else []),
            *(["--prior", str(prior)] if prior else []), *extra,
        ]
        layers = ("images", "depth", *(REFINED_LAYERS.values() if method in ("diffnerf-refined", "diffnerf-both")
                                       else ()))
        fingerprint = config_fingerprint({
            "args": args, "code": code_fingerprint(), "inputs": folder_fingerprint(view, layers),
            "prior": folder_fingerprint(prior) if prior else None,
        })
        out = self.workdir / "runs" / scene / setting / f"{label or method}.seed{seed}.{fingerprint}.json"
        if out.exists():
            return {**json.loads(out.read_text()), "reused": True}
        out.parent.mkdir(parents=True, exist_ok=True)
        cmd = [sys.executable, "-m", "benchmarks.nerf_harness", *args, "--out", str(out)]
        print(f"[{time.strftime('%H:%M:%S')}] {scene}/{setting}: {label or method} (seed {seed})", flush=True)
        log = out.with_suffix(".log")
        with log.open("w") as f:
            done = subprocess.run(cmd, env=self.env(threads=1), stdout=f, stderr=subprocess.STDOUT)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed (exit {done.returncode}); see {log}")
        result = {
            **json.loads(out.read_text()), "fingerprint": fingerprint, "commit": git_commit(),
            "finished": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        }
        out.write_text(json.dumps(result, indent=2))
        return {**result, "reused": False}

    def pose_refinement(self, setting: str) -> PoseRefinement:
        return self.dense_pose_refinement if setting == "dense" else self.few_view_pose_refinement

    def extra_flags(self, method: str, setting: str) -> tuple[str, ...]:
        """The row's pose refinement for every method; the cost study's regulariser cadence for prior rows."""
        flags = ("--camera-optimizer-mode", self.pose_refinement(setting))
        if self.regulariser_every_n_steps is not None and method in ("diffnerf-reg", "diffnerf-both"):
            flags += ("--regulariser-every-n-steps", str(self.regulariser_every_n_steps))
        return flags

    def main(self) -> None:
        started = time.time()
        torch.set_num_threads(2)
        scenes = self.bench_scenes()
        uses_prior = any(m in PRIOR_METHODS for m in self.methods)
        prior = self.prior_dir() if uses_prior else None
        refined = any(m in ("diffnerf-refined", "diffnerf-both") for m in self.methods)
        jobs = []
        for name, scene in scenes.items():
            num_frames = len(load_scene(scene.scene_dir).c2w)
            for setting in self.settings:
                num_train = None if setting == "dense" else int(setting.removeprefix("few"))
                if num_train is not None and 2 * num_train > num_frames - len(range(0, num_frames, EVAL_INTERVAL)):
                    continue  # ICL has 4 training frames: dense is already few-view there
                view = split(scene.scene_dir, self.workdir / "views" / name / setting, num_train)
                if refined:
                    self.refine(view, prior)
                for method in self.methods:
                    if method != "tsdf-fusion":
                        for seed in self.seeds:
                            extra = self.extra_flags(method, setting)
                            jobs.append((method, name, setting, view, scene.reference, prior, seed, extra))
        results: dict[tuple[str, str], dict[str, list[dict]]] = {}
        with ThreadPoolExecutor(self.jobs) as pool:
            futures = [(job, pool.submit(self.run, *job)) for job in jobs]
            for (method, name, setting, *_), future in futures:
                results.setdefault((name, setting), {}).setdefault(method, []).append(future.result())
        if "tsdf-fusion" in self.methods:
            for (name, setting), rows in results.items():
                view = self.workdir / "views" / name / setting
                rows["tsdf-fusion"] = [tsdf_row(view, np.load(scenes[name].reference))]
        self.write(scenes, results, time.time() - started, prior)

    def command(self) -> str:
        args = [
            f"--scenes {' '.join(self.scenes)}", f"--settings {' '.join(self.settings)}",
            f"--methods {' '.join(self.methods)}", f"--iterations {self.iterations}",
            f"--rays-per-batch {self.rays_per_batch}", f"--seeds {' '.join(map(str, self.seeds))}",
            "--small" if self.small else "--no-small", f"--downscale {self.downscale}", f"--jobs {self.jobs}",
            f"--workdir {self.workdir}", f"--report {self.report}",
            f"--dense-pose-refinement {self.dense_pose_refinement}",
            f"--few-view-pose-refinement {self.few_view_pose_refinement}",
            *([f"--regulariser-every-n-steps {self.regulariser_every_n_steps}"] if self.regulariser_every_n_steps
              else []),
            f"--prior {self.prior}" if self.prior else f"--prior-minutes {self.prior_minutes}",
        ]
        return "python -m benchmarks.bench_nerf " + " ".join(args)

    def write(self, scenes: dict[str, BenchScene], results: dict, seconds: float, prior: Path | None) -> None:
        device = torch.cuda.get_device_name() if torch.cuda.is_available() else f"CPU ({os.cpu_count()} cores)"
        groups = {  # table row group -> scenes averaged in it
            "synthetic rooms": [s for s in scenes if s.startswith("room")],
            **{s: [s] for s in scenes if not s.startswith("room")},
        }
        lines = [
            "# diffnerf vs depth-nerfacto on Kinect-corrupted input: does the diffusion prior help?",
            "",
            f"Command: `{self.command()}`  ",
            f"Machine: {platform.machine()} {device}, Python "
            f"{platform.python_version()}, torch {torch.__version__}; {self.jobs} runs in parallel, one thread each. "
            f"Wall time {seconds / 60:.0f} min.  ",
            f"Budget: {self.iterations} iterations x {self.rays_per_batch} rays per batch for every NeRF "
            f"(patch rays of the regulariser come on top and are counted in rays/s); model-size preset "
            f"{'small (CPU)' if self.small else 'default'} for every method; seeds {list(self.seeds)}. "
            f"Held out: every {EVAL_INTERVAL}th frame.  ",
            "Scenes: " + "; ".join(f"`{k}`: {v.note}" for k, v in scenes.items()) + ".  ",
            *([prior_note(prior) + "  "] if prior else []),
            "Cells: mean ± std over the scenes (and seeds) of the group. Depth: planar z in metres on the held-out "
            "views against clean truth (synthetic) or the sensor's valid pixels (SUN3D). Chamfer (m) and F-score "
            "at 5 cm: all views' rendered depth against the true surface (synthetic: clean geometry aligned to the "
            "estimated world frame; SUN3D: TSDF of all 100 frames). Ratios: mean of per-scene ratios against "
            f"`{PEER}` as users run it (PSNR: difference in dB). s/it and rays/s count every rendered ray; peak "
            "memory is the run's process peak RSS on CPU, CUDA max allocated on GPU.",
            "",
            "| scenes | setting | pose refinement | method | " + " | ".join(h for _, h, _ in COLUMNS)
            + " | PSNR Δ dB | AbsRel × | Chamfer × | s/it × |",
            "|" + "---|" * (len(COLUMNS) + 8),
        ]
        for group, members in groups.items():
            for setting in self.settings:
                per_scene = {s: results[(s, setting)] for s in members if (s, setting) in results}
                if not per_scene:
                    continue
                for method in self.methods:
                    runs = [(s, r) for s, rows in per_scene.items() for r in rows.get(method, [])]
                    if not runs:
                        continue
                    cells = [summarise([r[k] for _, r in runs if k in r], f) for k, _, f in COLUMNS]
                    peer = {s: rows[PEER][0] for s, rows in per_scene.items() if PEER in rows}
                    diffs = [r["psnr"] - peer[s]["psnr"] for s, r in runs if s in peer and "psnr" in r]
                    cells.append(summarise(diffs, "+.2f"))
                    for k in RATIOS:
                        cells.append(
                            summarise([r[k] / peer[s][k] for s, r in runs if s in peer and k in r and peer[s][k]],
                                      ".2f")
                        )
                    row = [group, setting, self.pose_refinement(setting), method, *cells]
                    lines.append("| " + " | ".join(row) + " |")
        runs = [r for rows in results.values() for method_runs in rows.values() for r in method_runs]
        lines += ["", reuse_note(runs, self.workdir / "runs"), ""]
        plot = self.report.with_suffix(".png")
        self.plot(groups["synthetic rooms"] or list(scenes), results, plot)
        lines.append(f"![key comparison]({plot.name})")
        self.report.parent.mkdir(parents=True, exist_ok=True)
        self.report.write_text("\n".join(lines) + "\n")
        print("\n".join(lines))

    def plot(self, members: list[str], results: dict, path: Path) -> None:
        """Held-out PSNR and depth AbsRel per method and setting (mean ± std over `members`)."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        methods = [m for m in self.methods if m != "tsdf-fusion"]
        fig, axes = plt.subplots(1, 2, figsize=(12, 4))
        width = 0.8 / max(len(methods), 1)
        for ax, key, label in ((axes[0], "psnr", "held-out PSNR (dB), higher is better"),
                               (axes[1], "depth_abs_rel", "held-out depth AbsRel, lower is better")):
            for j, method in enumerate(methods):
                means, stds = [], []
                for setting in self.settings:
                    v = [r[key] for s in members for r in results.get((s, setting), {}).get(method, [])]
                    means.append(np.mean(v) if v else np.nan)
                    stds.append(np.std(v) if v else 0.0)
                x = np.arange(len(self.settings)) + (j - (len(methods) - 1) / 2) * width
                ax.bar(x, means, width, yerr=stds, label=method, capsize=2)
            ax.set_xticks(np.arange(len(self.settings)), self.settings)
            ax.set_title(label)
        axes[1].set_yscale("log")  # the peer's metre-scale errors would flatten every other bar
        axes[0].legend(fontsize=7)
        fig.suptitle(f"{', '.join(members)}: {self.iterations} it x {self.rays_per_batch} rays (mean ± std)")
        fig.tight_layout()
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=110)


if __name__ == "__main__":
    tyro.cli(Bench).main()
