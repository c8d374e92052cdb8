"""Meshes from RGB-D captures: `diffnerf-export-mesh` against TSDF fusion of the sensor depth and depth-nerfacto's
`ns-export tsdf`, scored against the true surface; the export defaults are chosen here.

Scenes (`benchmarks.nerf_scenes`): three synthetic rooms written in NYU raw format with the Kinect model (noise,
quantisation, holes) and converted by the product's own converter (estimated poses), and the scored SUN3D fragment
(real Kinect depth, given poses, 640x480). Every 8th frame is held out; everything else trains and is fused.

Rows, all from the same training frames and poses:
- `tsdf-fusion`: Open3D TSDF fusion of the converted raw depth (`benchmarks.tsdf_fusion.fuse_tsdf_mesh`, 2 cm);
- `diffnerf`: `ns-train diffnerf` (the registered config, this budget) exported by `diffnerf-export-mesh` with its
  defaults; the study rows vary one export setting each (depth source, truncation, weight threshold, views);
- `depth-nerfacto`: `ns-train depth-nerfacto` as users run it, exported by nerfstudio's `ns-export tsdf` with the
  room's box (mapped into its frame) at 2 cm, rendered at 1/`peer_downscale`.

Scores: accuracy (mean distance mesh -> truth), completeness (truth -> mesh), F-score at 5 cm, and completeness
inside the sensor's holes: true-surface points a training view sees where its converted depth is missing (rooms:
exact geometry at the true pose; SUN3D: the reference mesh, a TSDF of all 100 frames, ray-cast into the view). On
SUN3D, where no true surface exists, each mesh is also rendered into the held-out views and scored against their
raw sensor depth (AbsRel over the pixels it covers, and the fraction of valid pixels it covers).

    python -m benchmarks.bench_mesh                         # the full CPU benchmark (writes results/mesh.md, .png)
    python -m benchmarks.bench_mesh --rooms room1 --no-sun3d --iterations 20 --report /tmp/mesh_smoke.md
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import tyro

from benchmarks.fingerprint import (
    config_fingerprint,
    folder_fingerprint,
    git_commit,
    loaded_sources,
    package_versions,
    sources_unchanged,
)
from data_converters.nerfstudio_scene import backproject, load_scene
from diffnerf_ns.export_mesh import MeshSettings
from diffnerf_ns.metrics import depth_metrics, subset_completeness, surface_metrics

REPO = Path(__file__).resolve().parents[1]
DEFAULT = "diffnerf"
"""The row `diffnerf-export-mesh` gives with its defaults."""


@dataclass
class Truth:
    """A scene's reference surface and its part inside the training views' sensor holes (scene world frame)."""

    surface: np.ndarray
    holes: np.ndarray
    hole_fraction: float
    """Fraction of the training views' pixels that see the true surface but have no sensor depth."""


def training_frames(view: Path) -> tuple[list[int], list[int]]:
    """Indices (in the scene's frame order) of the view's training and held-out frames."""
    meta = json.loads((view / "transforms.json").read_text())
    train = set(meta["train_filenames"])
    names = [f["file_path"] for f in meta["frames"]]
    return [i for i, n in enumerate(names) if n in train], [i for i, n in enumerate(names) if n not in train]


def room_truth(name: str, work: Path, view: Path, factor: int) -> Truth:
    """Exact geometry of a synthetic room: the scene's reference, and its clean depth at the true poses of the
    training views where the converted depth has holes, moved into the estimated world frame."""
    from benchmarks.nerf_scenes import downscale
    from data_converters.synthetic.nyu_raw_writer import load_ground_truth
    from diffnerf_ns.metrics import align_rigid

    cache = work / "truth" / f"{name}_holes.npz"
    surface = np.load(work / "scenes" / name / "reference.npy")
    if cache.exists():
        z = np.load(cache)
        return Truth(surface, z["holes"], float(z["fraction"]))
    room, _ = all_rooms()[name]
    converted = work / "converted" / name
    record, gt_poses = load_ground_truth(Path(f"{work / 'raw' / name}_ground_truth"))
    true_of = {f: gt_poses[i] for i, f in enumerate(record["depth_files"])}
    written = json.loads((converted / "metadata.json").read_text())["frames"]
    true_c2w = np.stack([true_of[f["depth_file"]] for f in written])
    full = load_scene(converted)
    to_true = align_rigid(full.c2w, true_c2w)  # as `synthetic_scene` aligns its reference
    scene = load_scene(view)
    train, _ = training_frames(view)
    holes, seen, missing = [], 0, 0
    for i in train:
        _, raw, K = downscale(full.rgb(i), full.depth(i), full.K, factor)
        h, w = raw.shape
        _, clean = room.render(K, true_c2w[i], h, w)
        assert np.allclose(raw, scene.depth(i), atol=1e-3), "the view's depth is not the converted depth"
        hole = (clean > 0) & (raw <= 0)
        seen, missing = seen + int((clean > 0).sum()), missing + int(hole.sum())
        holes.append(backproject(np.where(hole, clean, 0.0), K, true_c2w[i]))
    points = (np.concatenate(holes) - to_true[:3, 3]) @ to_true[:3, :3]
    cache.parent.mkdir(parents=True, exist_ok=True)
    np.savez(cache, holes=points, fraction=missing / max(seen, 1))
    return Truth(surface, points, missing / max(seen, 1))


def all_rooms() -> dict:
    """The three scored rooms, and `dev_room` (the development room: export settings were tried on it first)."""
    from benchmarks.nerf_scenes import benchmark_rooms, development_room

    return {**benchmark_rooms(), "dev_room": development_room()}


def sun3d_reference_mesh(work: Path) -> Path:
    """A TSDF mesh of all 100 SUN3D frames (the surface `sun3d_scene`'s reference points come from)."""
    out = work / "truth" / "sun3d_reference.ply"
    if out.exists():
        return out
    import open3d as o3d
    from PIL import Image

    from benchmarks.nerf_scenes import FIXTURES
    from benchmarks.tsdf_fusion import fuse_tsdf_mesh
    from data_converters.layouts.threedmatch import read_threedmatch

    capture = read_threedmatch(FIXTURES / "sun3d_study_100")
    K = capture.K.copy()
    K[:2, 2] += 0.5  # as `sun3d_scene`
    frames = []
    for f in capture.frames:
        stored = np.asarray(Image.open(f.depth_path))
        depth = stored.astype(np.float32) * capture.depth_scale
        depth[np.isin(stored, capture.invalid_depth_values)] = 0.0
        frames.append((np.asarray(Image.open(f.rgb_path).convert("RGB")), depth, f.c2w))
    out.parent.mkdir(parents=True, exist_ok=True)
    o3d.io.write_triangle_mesh(str(out), fuse_tsdf_mesh(K, frames, voxel=0.02))
    return out


def sun3d_truth(work: Path, scene_dir: Path, view: Path) -> Truth:
    """SUN3D: the reference (TSDF of all 100 frames); hole points where it is seen by a training view that has no
    sensor depth there."""
    import open3d as o3d

    from diffnerf_ns.export_mesh import mesh_depth

    cache = work / "truth" / "sun3d_holes.npz"
    surface = np.load(scene_dir / "reference.npy")
    if cache.exists():
        z = np.load(cache)
        return Truth(surface, z["holes"], float(z["fraction"]))
    reference = o3d.io.read_triangle_mesh(str(sun3d_reference_mesh(work)))
    scene = load_scene(view)
    train, _ = training_frames(view)
    holes, seen, missing = [], 0, 0
    for i in train:
        raw = scene.depth(i)
        ref = mesh_depth(reference, scene.K, scene.c2w[i], scene.height, scene.width)
        hole = (ref > 0) & (raw <= 0)
        seen, missing = seen + int((ref > 0).sum()), missing + int(hole.sum())
        holes.append(backproject(np.where(hole, ref, 0.0), scene.K, scene.c2w[i], stride=2))
    points = np.concatenate(holes)
    np.savez(cache, holes=points, fraction=missing / max(seen, 1))
    return Truth(surface, points, missing / max(seen, 1))


def mesh_points(mesh, count: int = 200_000) -> np.ndarray:
    """Points spread uniformly over the mesh's area (a mesh is scored by its surface, not its vertices)."""
    if len(mesh.triangles) == 0:
        return np.zeros((0, 3))
    return np.asarray(mesh.sample_points_uniformly(count).points)


def score_mesh(mesh, truth: Truth, view: Path | None = None) -> dict[str, float]:
    """Surface scores against the truth; with `view` (SUN3D), depth of the mesh in the held-out views too."""
    import open3d as o3d

    o3d.utility.random.seed(0)
    points = mesh_points(mesh)
    out = surface_metrics(points, truth.surface)
    holes = subset_completeness(points, truth.holes)
    out.update(hole_completeness=holes["completeness"], hole_recall=holes["recall"], triangles=len(mesh.triangles))
    if view is not None:
        out.update(heldout_depth(mesh, view))
    return out


def heldout_depth(mesh, view: Path) -> dict[str, float]:
    """The mesh rendered into the held-out views against their raw sensor depth (valid pixels only)."""
    from diffnerf_ns.export_mesh import mesh_depth

    scene = load_scene(view)
    _, held_out = training_frames(view)
    preds, gts = [], []
    for i in held_out:
        preds.append(mesh_depth(mesh, scene.K, scene.c2w[i], scene.height, scene.width))
        gts.append(scene.depth(i))
    pred, gt = (torch.from_numpy(np.stack(x)) for x in (preds, gts))
    covered = (pred > 0) & (gt > 0)
    out = {"heldout_coverage": float(covered.sum() / (gt > 0).sum())}
    if covered.any():
        m = depth_metrics(pred, gt, valid=covered)
        out.update(heldout_abs_rel=m["depth_abs_rel"], heldout_rmse=m["depth_rmse"])
    return out


def run_config(method: str, view: Path, out: Path, iterations: int, rays: int):
    """The TrainerConfig `ns-train <method>` gives, pointed at `view` with the benchmark's budget (CPU preset)."""
    from benchmarks.nerf_harness import method_config
    from diffnerf_ns.diffnerf_config import diffnerf_method
    from diffnerf_ns.presets import configure_run

    config = diffnerf_method.config if method == "diffnerf" else method_config(method, None)
    return configure_run(config, view, out, iterations, rays, small=True)


def train_and_collect(
    method: str, view: str, out: str, iterations: int, rays: int, threads: int, collects: list[dict]
) -> None:
    """One subprocess: train like `ns-train`, then (diffnerf) render the views each export setting fuses, saved as
    .npz beside the run, with what rendering cost."""
    from benchmarks.nerf_harness import train_like_ns_train
    from diffnerf_ns.export_mesh import MeshSettings, collect_views

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    np.random.seed(0)
    config = run_config(method, Path(view), Path(out), iterations, rays)
    trainer, stats = train_like_ns_train(config)
    box = trainer.pipeline.datamanager.train_dataparser_outputs.scene_box.aabb.tolist()
    record = {"seconds": stats.seconds, "config": str(config.get_base_dir()), "scene_box": box}
    Path(out, "train.json").write_text(json.dumps(record))
    for spec in collects:
        settings = MeshSettings(**{k: tuple(v) if isinstance(v, list) else v for k, v in spec["settings"].items()})
        start = time.perf_counter()
        views, info = collect_views(trainer.pipeline, settings, log=lambda *_: None)
        info["collect_seconds"] = time.perf_counter() - start
        arrays = {}
        for j, v in enumerate(views):
            arrays.update(
                {f"rgb{j}": v.rgb, f"depth{j}": v.depth, f"K{j}": v.K, f"c2w{j}": v.c2w, f"rendered{j}": v.rendered}
            )
        np.savez_compressed(Path(out) / f"{spec['name']}.npz", count=len(views), **arrays)
        Path(out, f"{spec['name']}.json").write_text(json.dumps(info))
    Path(out, "sources.json").write_text(json.dumps(loaded_sources()))  # what training and rendering imported


def load_views(path: Path):
    from diffnerf_ns.export_mesh import DepthView

    z = np.load(path)
    return [
        DepthView(z[f"rgb{j}"], z[f"depth{j}"], z[f"K{j}"], z[f"c2w{j}"], bool(z[f"rendered{j}"]))
        for j in range(int(z["count"]))
    ]


@dataclass(frozen=True)
class Variant:
    """One diffnerf export: the views it fuses (`collect`, a name of `COLLECTS`) and the fusion settings."""

    collect: str
    truncation: float = MeshSettings.truncation
    weight_threshold: float = MeshSettings.weight_threshold
    method: str = MeshSettings.method
    sensor_only: bool = False
    """Fuse only the training views' own depth (the export's fusion without the model: isolates what it adds)."""
    seen_through: bool = MeshSettings.seen_through_margin is not None
    """Drop rendered points that a training view's sensor depth sees through (`drop_seen_through`)."""


COLLECTS = {  # name -> MeshSettings fields that decide which views are rendered
    "sensor-filled_ds4": {"depth": "sensor-filled", "downscale": 4},
    "sensor-filled_ds4_any-spread": {"depth": "sensor-filled", "downscale": 4, "max_depth_spread": None},
    "sensor-filled_ds2": {"depth": "sensor-filled", "downscale": 2},
    "sensor-filled_ds4_dataset-poses": {"depth": "sensor-filled", "downscale": 4, "poses": "dataset"},
    "rendered_ds8": {"depth": "rendered", "downscale": 8},
    "rendered_ds8_between1": {"depth": "rendered", "downscale": 8, "views_between": 1},
}
VARIANTS = {  # row name -> export; DEFAULT is `MeshSettings()` (checked in `Bench.main`)
    DEFAULT: Variant("sensor-filled_ds4"),
    "diffnerf, every rendered hole pixel (no spread or free-space test)": Variant(
        "sensor-filled_ds4_any-spread", seen_through=False
    ),
    "diffnerf trunc 8 cm": Variant("sensor-filled_ds4", truncation=0.08),
    "diffnerf seen once (weight > 0.5)": Variant("sensor-filled_ds4", weight_threshold=0.5),
    "diffnerf holes rendered at 1/2 res": Variant("sensor-filled_ds2"),
    "diffnerf dataset poses": Variant("sensor-filled_ds4_dataset-poses"),
    "diffnerf poisson": Variant("sensor-filled_ds4", method="poisson"),
    "diffnerf rendered depth only (1/8 res)": Variant("rendered_ds8"),
    "diffnerf rendered, + 1 view between (1/8 res)": Variant("rendered_ds8_between1"),
    "sensor depth only, diffnerf's fusion settings": Variant("sensor-filled_ds4", sensor_only=True),
}


@dataclass
class Bench:
    rooms: tuple[str, ...] = ("room1", "room2", "room3")
    """Scored rooms; `dev_room` is the development room (not scored in the report's command)."""
    sun3d: bool = True
    room_factor: int = 2
    """Rooms at 1/room_factor of the converted 561x427 (280x213)."""
    sun3d_factor: int = 1
    """SUN3D at 1/sun3d_factor of 640x480 (1: the export-time target's size)."""
    iterations: int = 300
    rays_per_batch: int = 1024
    voxel: float = 0.02
    peer_downscale: int = 8
    """depth-nerfacto's `ns-export tsdf --downscale-factor` (its default 2 takes hours per scene on this CPU)."""
    threads: int = 1
    """torch/OpenMP threads per process (2 threads on 2 shared cores ran 11x slower here: 7.2 vs 0.65 s/it)."""
    variants: tuple[str, ...] = tuple(VARIANTS)
    sun3d_variants: tuple[str, ...] = (
        DEFAULT,
        "diffnerf, every rendered hole pixel (no spread or free-space test)",
        "diffnerf rendered depth only (1/8 res)",
    )
    """Export variants on SUN3D (each rendered one costs minutes at 640x480)."""
    workdir: Path = Path("outputs/bench_mesh")
    report: Path = Path("benchmarks/results/mesh.md")

    def say(self, text: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {text}", flush=True)

    def env(self) -> dict[str, str]:
        t = str(self.threads)
        return {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": t, "MKL_NUM_THREADS": t}

    def run_dir(self, method: str, scene: str, view: Path, collects: list[dict]) -> Path:
        """Train and return the run folder; reused when its key (inputs, budget, the exports asked for, packages)
        matches and every project source the run imported is unchanged (as `bench_nerf` caches its runs)."""
        key = config_fingerprint({
            "method": method, "iterations": self.iterations, "rays": self.rays_per_batch, "threads": self.threads,
            "inputs": folder_fingerprint(view, ("images", "depth")), "collects": collects,
            "packages": package_versions(),
        })  # fmt: skip
        out = self.workdir / "runs" / scene / f"{method}.{key}"
        done_file = out / "done.json"
        if done_file.exists() and sources_unchanged(json.loads(done_file.read_text()).get("sources", {})):
            return out
        out.mkdir(parents=True, exist_ok=True)
        self.say(
            f"{scene}: training {method} ({self.iterations} it x {self.rays_per_batch} rays)"
            + (f", then rendering {', '.join(c['name'] for c in collects)}" if collects else "")
        )
        args = (method, str(view), str(out), self.iterations, self.rays_per_batch, self.threads, collects)
        code = f"from benchmarks.bench_mesh import train_and_collect; train_and_collect(*{args!r})"
        with (out / "log.txt").open("w") as log:
            done = subprocess.run(
                [sys.executable, "-c", code], env=self.env(), stdout=log, stderr=subprocess.STDOUT, cwd=REPO
            )
        if done.returncode != 0:
            raise RuntimeError(f"{method} on {scene} failed; see {out / 'log.txt'}")
        sources = json.loads((out / "sources.json").read_text())
        done_file.write_text(
            json.dumps({"commit": git_commit(), "finished": time.strftime("%F %T"), "sources": sources})
        )
        return out

    def peer_mesh(self, run: Path, box_world: np.ndarray, scene: str):
        """depth-nerfacto's `ns-export tsdf` (texture from the TSDF, so geometry only), with the room's box mapped
        into its frame and 2 cm voxels; the mesh is returned in the scene's world frame, and the export's seconds."""
        import open3d as o3d

        config = Path(json.loads((run / "train.json").read_text())["config"]) / "config.yml"
        meta = json.loads((config.parent / "dataparser_transforms.json").read_text())
        T, s = np.asarray(meta["transform"]), float(meta["scale"])
        corners = np.array([[x, y, z] for x in box_world[:, 0] for y in box_world[:, 1] for z in box_world[:, 2]])
        inner = s * (corners @ T[:, :3].T + T[:, 3])
        lo, hi = inner.min(0), inner.max(0)
        resolution = np.ceil((hi - lo) / (self.voxel * s)).astype(int)
        out = run / "ns_export_tsdf"
        record = run / "ns_export_tsdf.json"
        if not record.exists():
            # `ns-export` itself, run offline: nerfacto's constructor downloads AlexNet for LPIPS otherwise.
            code = (
                "import sys; from diffnerf_ns.compat import offline_lpips; "
                "from nerfstudio.scripts.exporter import entrypoint; sys.argv[0] = 'ns-export'; "
                "cm = offline_lpips(); cm.__enter__(); entrypoint()"
            )
            cmd = [
                sys.executable, "-c", code, "tsdf", "--load-config", str(config), "--output-dir",
                str(out), "--texture-method", "tsdf", "--downscale-factor", str(self.peer_downscale),
                "--resolution", *map(str, resolution), "--batch-size", "2", "--use-bounding-box", "True",
                "--bounding-box-min", *map(str, lo), "--bounding-box-max", *map(str, hi),
            ]  # fmt: skip
            self.say(f"{scene}: ns-export tsdf of depth-nerfacto (resolution {' '.join(map(str, resolution))})")
            start = time.perf_counter()
            with (run / "ns_export_log.txt").open("w") as log:
                done = subprocess.run(cmd, env=self.env(), stdout=log, stderr=subprocess.STDOUT, cwd=REPO)
            if done.returncode != 0:
                raise RuntimeError(f"ns-export tsdf failed; see {run / 'ns_export_log.txt'}")
            shown = ["ns-export", *cmd[3:]]
            record.write_text(json.dumps({"seconds": time.perf_counter() - start, "command": " ".join(shown)}))
        mesh = o3d.io.read_triangle_mesh(str(out / "tsdf_mesh.ply"))
        v = np.asarray(mesh.vertices)
        mesh.vertices = o3d.utility.Vector3dVector((v / s - T[:, 3]) @ T[:, :3])
        return mesh, json.loads(record.read_text())["seconds"]

    def diffnerf_rows(self, run: Path, truth: Truth, names: tuple[str, ...], sun3d_view: Path | None) -> dict:
        from diffnerf_ns.export_mesh import crop_to_box, drop_seen_through, fuse_views, poisson_mesh

        rows = {}
        frame = world_frame_of(run)
        for name in names:
            v = VARIANTS[name]
            views = [w for w in load_views(run / f"{v.collect}.npz") if not (v.sensor_only and w.rendered)]
            info = json.loads((run / f"{v.collect}.json").read_text())
            start = time.perf_counter()
            if v.seen_through:
                views = drop_seen_through(views, MeshSettings.seen_through_margin, MeshSettings.seen_through_per_metre)
            if v.method == "tsdf":
                mesh = fuse_views(views, self.voxel, v.truncation, frame.diagonal(), v.weight_threshold)
            else:
                mesh = poisson_mesh(views, self.voxel)
            mesh = crop_to_box(mesh, frame)
            seconds = info["collect_seconds"] + time.perf_counter() - start
            rows[name] = {
                **score_mesh(mesh, truth, sun3d_view),
                "seconds": seconds,
                "rendered_rays": 0 if v.sensor_only else info["rendered_rays"],
                "mesh": mesh,
            }
        return rows

    def scene_rows(self, name: str, view: Path, truth: Truth, sun3d: bool) -> dict:
        from benchmarks.tsdf_fusion import fuse_tsdf_mesh

        rows = {}
        scene = load_scene(view)
        train, _ = training_frames(view)
        start = time.perf_counter()
        frames = [(scene.rgb(i), scene.depth(i), scene.c2w[i]) for i in train]
        fusion = fuse_tsdf_mesh(scene.K, frames, voxel=self.voxel)
        rows["tsdf-fusion"] = {
            **score_mesh(fusion, truth, view if sun3d else None),
            "seconds": time.perf_counter() - start,
            "mesh": fusion,
        }
        names = self.sun3d_variants if sun3d else self.variants
        collects = sorted({VARIANTS[n].collect for n in names})
        specs = [{"name": c, "settings": COLLECTS[c]} for c in collects]
        run = self.run_dir("diffnerf", name, view, specs)
        rows.update(self.diffnerf_rows(run, truth, names, view if sun3d else None))
        box = world_frame_of(run).world_box()
        corners = np.asarray(box.get_box_points())
        box_world = np.stack([corners.min(0), corners.max(0)])
        peer = self.run_dir("depth-nerfacto", name, view, [])
        mesh, seconds = self.peer_mesh(peer, box_world, name)
        rows["depth-nerfacto + ns-export tsdf"] = {
            **score_mesh(mesh, truth, view if sun3d else None),
            "seconds": seconds,
            "mesh": mesh,
        }
        if sun3d:
            rows["_cli"] = self.time_cli(run, name)
        return rows

    def time_cli(self, run: Path, scene: str) -> dict:
        """Wall time of `diffnerf-export-mesh` with its defaults, as a user runs it (loading included)."""
        record = run / "cli_export.json"
        if not record.exists():
            config = Path(json.loads((run / "train.json").read_text())["config"]) / "config.yml"
            cmd = [
                str(REPO / ".venv" / "bin" / "diffnerf-export-mesh"),
                "--load-config",
                str(config),
                "--output-dir",
                str(run / "cli_export"),
            ]
            self.say(f"{scene}: timing {' '.join(cmd)}")
            start = time.perf_counter()
            done = subprocess.run(cmd, env=self.env(), capture_output=True, text=True, cwd=REPO)
            if done.returncode != 0:
                raise RuntimeError(done.stdout[-2000:] + done.stderr[-2000:])
            info = json.loads((run / "cli_export" / "mesh.json").read_text())
            record.write_text(
                json.dumps(
                    {
                        "wall_seconds": time.perf_counter() - start,
                        "command": " ".join(cmd),
                        "views": info["views"],
                        "rendered_rays": info["rendered_rays"],
                    }
                )
            )
        return json.loads(record.read_text())

    def main(self) -> None:
        from benchmarks.nerf_scenes import split, sun3d_scene, synthetic_scene

        default, settings = VARIANTS[DEFAULT], MeshSettings()
        assert all(getattr(settings, k) == v for k, v in COLLECTS[default.collect].items()), "DEFAULT != defaults"
        assert (default.truncation, default.weight_threshold) == (settings.truncation, settings.weight_threshold)
        started = time.time()
        torch.set_num_threads(self.threads)
        rooms = all_rooms()
        results, notes, truths = {}, {}, {}
        for name in self.rooms:
            self.say(f"{name}: scene")
            scene = synthetic_scene(name, *rooms[name], self.workdir, self.room_factor)
            view = split(scene.scene_dir, self.workdir / "views" / name / "dense", None)
            truths[name] = room_truth(name, self.workdir, view, self.room_factor)
            notes[name] = scene.note
            results[name] = self.scene_rows(name, view, truths[name], sun3d=False)
        if self.sun3d:
            self.say("sun3d: scene")
            scene = sun3d_scene(self.workdir, self.sun3d_factor)
            view = split(scene.scene_dir, self.workdir / "views" / "sun3d" / "dense", None)
            truths["sun3d"] = sun3d_truth(self.workdir, scene.scene_dir, view)
            notes["sun3d"] = scene.note
            results["sun3d"] = self.scene_rows("sun3d", view, truths["sun3d"], sun3d=True)
        self.write(results, notes, truths, time.time() - started)

    def command(self) -> str:
        return (
            f"python -m benchmarks.bench_mesh --rooms {' '.join(self.rooms)} "
            f"{'--sun3d' if self.sun3d else '--no-sun3d'}"
            f" --room-factor {self.room_factor} --sun3d-factor {self.sun3d_factor} --iterations {self.iterations}"
            f" --rays-per-batch {self.rays_per_batch} --voxel {self.voxel} --peer-downscale {self.peer_downscale}"
            f" --threads {self.threads} --workdir {self.workdir} --report {self.report}"
        )

    def write(self, results: dict, notes: dict, truths: dict, seconds: float) -> None:
        cpu = f"CPU ({os.cpu_count()} cores)"
        rooms = [s for s in results if s != "sun3d"]
        lines = [
            "# Meshes from RGB-D: diffnerf-export-mesh vs TSDF fusion vs depth-nerfacto's ns-export tsdf",
            "",
            f"Command: `{self.command()}`  ",
            f"Machine: {platform.machine()} {cpu}, Python {platform.python_version()}, torch {torch.__version__}, "
            f"{self.threads} threads, shared with other jobs. Wall time {seconds / 60:.0f} min. "
            f"Commit {git_commit()}.  ",
            f"Training: {self.iterations} iterations x {self.rays_per_batch} rays, CPU model preset "
            "(`diffnerf_ns.presets.small_model`) for both NeRFs; every 8th frame held out, all others trained on and "
            f"fused, at the same poses. Voxels {self.voxel * 100:.0f} cm for every mesh.  ",
            "Scenes: "
            + "; ".join(
                f"`{k}`: {v} (sensor holes: {truths[k].hole_fraction:.1%} of the true surface's "
                "pixels in the training views)"
                for k, v in notes.items()
            )
            + ".  ",
            "Rows: `tsdf-fusion`: Open3D TSDF of the converted raw depth. `diffnerf`: `diffnerf-export-mesh` defaults "
            f"(sensor depth where measured, the model's depth rendered at 1/{MeshSettings.downscale} resolution in "
            f"the holes where the model is sure of one surface: median and expected depth within "
            f"{MeshSettings.max_depth_spread * 100:.0f} cm, and no training view's sensor depth seeing through the "
            f"point; truncation {MeshSettings.truncation * 100:.0f} cm; voxels seen at least twice; refined "
            "poses); the rows below it change one setting. Fusion uses Open3D's defaults (truncation 8 voxels = "
            f"{8 * self.voxel * 100:.0f} cm), as users run it; the row `sensor depth only, diffnerf's fusion settings` "
            "separates what the export's settings give from what the model adds. "
            f"`depth-nerfacto + ns-export tsdf`: nerfstudio's exporter with the room's box, rendered at "
            f"1/{self.peer_downscale} resolution.  ",
            "Scores (cm; F at 5 cm): accuracy = mean distance of the mesh's surface to the truth, completeness = of "
            "the truth to the mesh; hole completeness / hole recall: over true-surface points a training view sees "
            "where its sensor depth is missing. Synthetic rooms: exact geometry (aligned to the estimated poses); "
            "SUN3D: reference = TSDF of all 100 frames of the capture (both fragments), so it favours fusion; there "
            "the meshes are also rendered into the held-out views and scored against their raw sensor depth. Export s: "
            "rendering + fusion (fusion's: fusion).",
            "",
        ]
        cols = [
            ("accuracy", "acc cm", 100, ".2f"),
            ("completeness", "comp cm", 100, ".2f"),
            ("fscore", "F@5cm", 1, ".3f"),
            ("hole_completeness", "hole comp cm", 100, ".1f"),
            ("hole_recall", "hole recall@5cm", 1, ".3f"),
            ("seconds", "export s", 1, ".0f"),
        ]
        groups = {"synthetic rooms (mean ± std)": rooms} if rooms else {}
        if "sun3d" in results:
            groups["sun3d"] = ["sun3d"]
        for group, members in groups.items():
            extra = (
                [("heldout_abs_rel", "held-out AbsRel", 1, ".4f"), ("heldout_coverage", "held-out coverage", 1, ".3f")]
                if group == "sun3d"
                else []
            )
            header = ["scenes", "method", *[c[1] for c in cols + extra]]
            if group != "sun3d":
                header += ["F vs fusion", "acc × fusion"]
            lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
            methods = [m for m in results[members[0]] if not m.startswith("_")]
            for method in methods:
                cells = []
                for key, _, mult, fmt in cols + extra:
                    vals = [results[s][method][key] * mult for s in members if key in results[s][method]]
                    cells.append(summary(vals, fmt))
                if group != "sun3d":
                    fusion = {s: results[s]["tsdf-fusion"] for s in members}
                    cells.append(summary([results[s][method]["fscore"] - fusion[s]["fscore"] for s in members], "+.3f"))
                    cells.append(
                        summary([results[s][method]["accuracy"] / fusion[s]["accuracy"] for s in members], ".2f")
                    )
                lines.append("| " + " | ".join([group.split(" (")[0], method, *cells]) + " |")
            lines.append("")
        lines += self.target_lines(results, rooms)
        if "sun3d" in results:
            cli = results["sun3d"]["_cli"]
            lines += [
                "",
                f"Export time, 640x480 SUN3D fragment ({cli['views']} training views): `diffnerf-export-mesh` "
                f"with its defaults took {cli['wall_seconds']:.0f} s wall ({cli['wall_seconds'] / 60:.1f} min, "
                f"loading included; {cli['rendered_rays']} rays rendered).",
            ]
        plot = self.report.with_suffix(".png")
        self.plot(results, plot)
        lines += ["", f"![true surface, fusion, diffnerf and depth-nerfacto meshes]({plot.name})", ""]
        self.report.parent.mkdir(parents=True, exist_ok=True)
        self.report.write_text("\n".join(lines))
        print("\n".join(lines))
        (self.workdir / "results.json").write_text(
            json.dumps(
                {
                    s: {m: {k: v for k, v in r.items() if k != "mesh"} for m, r in rows.items()}
                    for s, rows in results.items()
                },
                indent=1,
                default=float,
            )
        )

    def target_lines(self, results: dict, rooms: list[str]) -> list[str]:
        """The issue's targets, met or missed, per scene."""
        lines = ["Targets:", ""]
        for s in rooms:
            d, f = results[s][DEFAULT], results[s]["tsdf-fusion"]
            lines.append(
                f"- {s}: F@5cm {d['fscore']:.3f} vs fusion {f['fscore']:.3f} "
                f"({'met' if d['fscore'] >= f['fscore'] else 'MISSED'}); accuracy {d['accuracy'] * 100:.2f} cm = "
                f"{d['accuracy'] / f['accuracy']:.2f}x fusion's "
                f"({'met' if d['accuracy'] <= 1.2 * f['accuracy'] else 'MISSED'}"
                f", target <= 1.2x); hole completeness {d['hole_recall']:.3f} vs {f['hole_recall']:.3f} recall "
                f"({'met' if d['hole_recall'] > f['hole_recall'] else 'MISSED'})"
            )
        if "sun3d" in results:
            d, f = results["sun3d"][DEFAULT], results["sun3d"]["tsdf-fusion"]
            cli = results["sun3d"]["_cli"]
            lines.append(
                f"- sun3d: held-out AbsRel {d.get('heldout_abs_rel', float('nan')):.4f} vs fusion "
                f"{f.get('heldout_abs_rel', float('nan')):.4f} "
                f"({'met' if d.get('heldout_abs_rel', 1) <= f.get('heldout_abs_rel', 0) else 'MISSED'}); hole recall "
                f"{d['hole_recall']:.3f} vs {f['hole_recall']:.3f} "
                f"({'met' if d['hole_recall'] > f['hole_recall'] else 'MISSED'}); export "
                f"{cli['wall_seconds'] / 60:.1f} min ({'met' if cli['wall_seconds'] <= 300 else 'MISSED'}, target <= 5)"
            )
        return lines

    def plot(self, results: dict, path: Path) -> None:
        """Depth of one held-out view of the first scene: truth, raw sensor depth of the nearest training view (its
        holes), and each mesh rendered into the held-out view."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        from diffnerf_ns.export_mesh import mesh_depth

        scene_name = next(iter(results))
        view = self.workdir / "views" / scene_name / "dense"
        scene = load_scene(view)
        train, held = training_frames(view)
        k = held[1] if len(held) > 1 else held[0]
        near = min(train, key=lambda i: abs(i - k))
        panels = [
            (f"truth (held-out view {k})", scene.depth(k)),
            (f"sensor depth, training view {near}", scene.depth(near)),
        ]
        for method in ("tsdf-fusion", DEFAULT, "depth-nerfacto + ns-export tsdf"):
            mesh = results[scene_name][method]["mesh"]
            panels.append((method, mesh_depth(mesh, scene.K, scene.c2w[k], scene.height, scene.width)))
        valid = panels[0][1][panels[0][1] > 0]
        lo, hi = np.percentile(valid, 1), np.percentile(valid, 99)
        fig, axes = plt.subplots(1, len(panels), figsize=(3.2 * len(panels), 3))
        for ax, (title, depth) in zip(axes, panels, strict=True):
            cmap = plt.get_cmap("viridis").copy()
            cmap.set_bad("black")
            ax.imshow(np.ma.masked_where(depth <= 0, depth), vmin=lo, vmax=hi, cmap=cmap)
            ax.set_title(title, fontsize=8)
            ax.axis("off")
        fig.suptitle(
            f"{scene_name}: depth (m) of each surface seen from a held-out view; black = no surface", fontsize=9
        )
        fig.tight_layout()
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=110)


def world_frame_of(run: Path):
    """The run's dataparser frame and scene box (recorded when it trained; no model needed)."""
    from diffnerf_ns.export_mesh import WorldFrame

    record = json.loads((run / "train.json").read_text())
    meta = json.loads((Path(record["config"]) / "dataparser_transforms.json").read_text())
    return WorldFrame(np.asarray(meta["transform"]), float(meta["scale"]), np.asarray(record["scene_box"]))


def summary(values: list[float], fmt: str) -> str:
    values = [v for v in values if np.isfinite(v)]
    if not values:
        return "—"
    if len(values) == 1:
        return format(values[0], fmt)
    return f"{format(float(np.mean(values)), fmt)} ± {format(float(np.std(values)), fmt.lstrip('+'))}"


if __name__ == "__main__":
    tyro.cli(Bench).main()
