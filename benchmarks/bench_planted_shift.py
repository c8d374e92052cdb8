"""Does depth off the colour cost diffnerf colour? SUN3D fragment 2 with and without planted misregistration.

The 3DMatch-layout fixture's depth is shifted by `--shift` pixels and zoomed by `--scale` about the principal point
(nearest neighbour, holes kept) before conversion, as 7-Scenes ships depth from another camera as if registered:
Kinect v1's infrared camera has a focal length of about 585 px against about 525 px for its colour camera, so
depth content lies about 1.11x as far from the image centre as its colour (up to 35 px off at the border), which
no single shift removes. Each capture is converted with
the given poses twice: `--options.depth-alignment off` (what any converter gives) and the default (`auto`: the
misalignment is measured from edges and removed). Every method trains on a view of the same frames (every 8th
held out) through `benchmarks.nerf_harness` (`Trainer.train()`, as `ns-train` runs it), with the same budget and
pose refinement. Colour is scored on the held-out images; depth on the held-out frames' sensor depth as SUN3D
ships it (never the planted or the shifted copy), so every row is scored against the same pixels.

    python -m benchmarks.bench_planted_shift            # writes benchmarks/results/planted_shift.md
    python -m benchmarks.bench_planted_shift --shift 0 0 --scale 1.114 --no-shipped-rows \
        --workdir outputs/planted_scale --report benchmarks/results/planted_scale.md
    python -m benchmarks.bench_planted_shift --kinect-ir --no-shipped-rows --jobs 2 \
        --workdir outputs/planted_ir --report benchmarks/results/planted_ir_camera.md
    python -m benchmarks.bench_planted_shift --shift 0 0 --trajectory-scale 0.77 --jobs 1 \
        --workdir outputs/planted_path --report benchmarks/results/planted_path_scale.md
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import tyro

from benchmarks.bench_depth_camera import kinect_ir, plant_depth_camera
from benchmarks.bench_nerf import Bench, RunSpec
from benchmarks.nerf_scenes import FIXTURES
from data_converters.convert import ConvertOptions, convert_capture
from data_converters.depth_alignment import shift_depth
from data_converters.layouts.threedmatch import read_threedmatch
from data_converters.nerfstudio_scene import load_scene, split_view
from data_converters.trajectory_scale import scaled
from diffnerf_ns.data_split import EVAL_INTERVAL

FRAGMENT = "fragment-2-rgbd-frames"  # the fragment no prior trains on (diffnerf_ns.data_split)
PEERS = ("depth-nerfacto", "diffnerf-no-prior")
PATH_MODE = "auto, path rescaled"
"""The conversion of a planted path with `trajectory_scale='apply'` (the path the depth agrees with)."""


@dataclass
class PlantedShift:
    """SUN3D fragment 2, shipped and with depth shifted; depth-nerfacto and diffnerf on each conversion."""

    shift: tuple[int, int] = (3, 0)
    """Planted (dx, dy) in pixels: the depth image's content moves right / down."""
    scale: float = 1.0
    """Planted zoom of the depth image about the principal point (after the shift): depth content lies `scale`
    times as far from it as the colour's (7-Scenes: about 585 / 525 = 1.114)."""
    kinect_ir: bool = False
    """Plant instead a Kinect v1 IR camera (`bench_depth_camera.kinect_ir`: focal 585/525 of the colour's, principal
    point off, 2.5 cm baseline) and give its intrinsics as the capture's, as 7-Scenes users take 585 px for both
    cameras. That capture is converted with `off` (what users get) and with `camera` (`given_intrinsics='depth'`:
    depth registered with the fitted camera, colour intrinsics derived from it)."""
    trajectory_scale: float = 1.0
    """Plant instead a trajectory off in scale: every camera's offset from the first camera is scaled by this
    (rotations and depth kept), as odometry that under-estimates motion gives (the 7-Scenes segment of issue 19:
    path 23% short). Colour and depth then disagree on the scene's size; a loss that trusts depth keeps the
    sensor's geometry, one that follows colour shrinks the scene."""
    shipped_rows: bool = True
    """Also train on the capture as shipped (its depth-nerfacto and aligned diffnerf rows)."""
    jobs: int = 1
    """Runs at a time (one thread each)."""
    iterations: int = 300
    rays_per_batch: int = 512
    pose_refinement: str = "SO3xR3"
    """Every method's `--camera-optimizer-mode` (the dense rows of benchmarks/bench_nerf.py)."""
    seed: int = 0
    workdir: Path = Path("outputs/planted_shift")
    report: Path = Path("benchmarks/results/planted_shift.md")


def zoom_depth(depth: np.ndarray, scale: float, cx: float, cy: float) -> np.ndarray:
    """`depth` with its content `scale` times as far from (cx, cy), nearest neighbour (no depth blended across an
    edge); pixels that map outside the image become 0 (invalid)."""
    h, w = depth.shape
    u, v = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    map_u, map_v = cx + (u - cx) / scale, cy + (v - cy) / scale
    return cv2.remap(depth, map_u, map_v, cv2.INTER_NEAREST, borderMode=cv2.BORDER_CONSTANT, borderValue=0)


def plant(
    src: Path,
    out: Path,
    shift: tuple[int, int],
    scale: float = 1.0,
    ir_camera: bool = False,
    trajectory_scale: float = 1.0,
) -> Path:
    """A copy of the 3DMatch-layout fragment whose depth PNGs are shifted by `shift` pixels, then zoomed by `scale`
    about the principal point; or, with `ir_camera`, measured by the Kinect IR camera whose intrinsics it gives;
    and whose camera path is `trajectory_scale` times as long."""
    if (out / "camera-intrinsics.txt").exists():
        return out
    (out / FRAGMENT).mkdir(parents=True, exist_ok=True)
    K = np.loadtxt(src / "camera-intrinsics.txt")
    for path in sorted((src / FRAGMENT).iterdir()):
        if path.name.endswith(".depth.png") and ir_camera:
            depth = plant_depth_camera(cv2.imread(str(path), cv2.IMREAD_UNCHANGED) / 1000.0, K, kinect_ir(K))
            cv2.imwrite(str(out / FRAGMENT / path.name), np.round(depth * 1000).astype(np.uint16))
        elif path.name.endswith(".depth.png") and (shift != (0, 0) or scale != 1.0):
            depth = shift_depth(cv2.imread(str(path), cv2.IMREAD_UNCHANGED), *shift)
            if scale != 1.0:
                depth = zoom_depth(depth, scale, K[0, 2], K[1, 2])
            cv2.imwrite(str(out / FRAGMENT / path.name), depth)
        elif not path.name.endswith(".pose.txt") or trajectory_scale == 1.0:
            shutil.copy(path, out / FRAGMENT / path.name)
    if trajectory_scale != 1.0:
        names = sorted(path.name for path in (src / FRAGMENT).glob("*.pose.txt"))
        poses = scaled(np.stack([np.loadtxt(src / FRAGMENT / name) for name in names]), trajectory_scale)
        for name, pose in zip(names, poses, strict=True):
            np.savetxt(out / FRAGMENT / name, pose)
    if ir_camera:
        np.savetxt(out / "camera-intrinsics.txt", kinect_ir(K).depth_intrinsics(K)[0])
    else:
        shutil.copy(src / "camera-intrinsics.txt", out / "camera-intrinsics.txt")
    return out


def scored_view(scene: Path, truth: Path, out: Path) -> Path:
    """The split view of `scene` whose held-out frames carry `truth`'s depth (the shipped sensor depth)."""
    view = split_view(scene, out, None, EVAL_INTERVAL)
    meta = json.loads((view / "transforms.json").read_text())
    held_out = set(meta["val_filenames"])
    depth = view / "depth"
    if depth.is_symlink():
        depth.unlink()
    depth.mkdir(exist_ok=True)
    for frame in meta["frames"]:
        name = Path(frame["depth_file_path"]).name
        source = (truth if frame["file_path"] in held_out else scene) / "depth" / name
        link = depth / name
        if not link.exists():
            link.symlink_to(source.resolve())
    return view


def main(args: PlantedShift) -> None:
    work = args.workdir.resolve()
    src = FIXTURES / "sun3d_study_100"
    planted = (
        "Kinect IR camera, its intrinsics given"
        if args.kinect_ir
        else f"planted {args.shift}"
        + (f" x{args.scale:g}" if args.scale != 1.0 else "")
        + (f", path x{args.trajectory_scale:g}" if args.trajectory_scale != 1.0 else "")
    )
    captures = {
        "shipped": plant(src, work / "capture_shipped", (0, 0)),
        planted: plant(src, work / "capture_planted", args.shift, args.scale, args.kinect_ir, args.trajectory_scale),
    }
    misregistered = args.shift != (0, 0) or args.scale != 1.0
    rescaled = args.trajectory_scale != 1.0
    scenes: dict[tuple[str, str], Path] = {}
    alignment: dict[tuple[str, str], dict] = {}
    path_scale: dict[tuple[str, str], dict] = {}
    for name, folder in captures.items():
        capture = read_threedmatch(folder)
        modes = ("off", "camera") if args.kinect_ir and name == planted else ("off", "auto")
        for mode in (*modes, PATH_MODE) if rescaled and name == planted else modes:
            out = work / "scenes" / f"{folder.name}_{mode.replace(' ', '_')}"
            options = ConvertOptions(
                poses="given",
                depth_alignment="auto" if mode == PATH_MODE else mode,
                given_intrinsics="depth" if mode == "camera" else "colour",
                trajectory_scale="apply" if mode == PATH_MODE else "measure",
            )
            if not (out / "metadata.json").exists():
                convert_capture(capture, out, options, progress=False)
            scenes[name, mode] = out
            metadata = json.loads((out / "metadata.json").read_text())
            alignment[name, mode] = metadata["depth_alignment"]
            path_scale[name, mode] = metadata.get("trajectory_scale", {}).get(FRAGMENT, {})
    truth = scenes["shipped", "off"]
    reference = work / "reference.npy"
    if not reference.exists():
        np.save(reference, load_scene(truth).world_points(stride=4))
    bench = Bench(workdir=work, iterations=args.iterations, rays_per_batch=args.rays_per_batch, small=True)
    shipped = [("shipped", "off", "depth-nerfacto", ()), ("shipped", "auto", "diffnerf-no-prior", ())]
    if args.kinect_ir:
        planted_runs = [(planted, mode, method, ()) for mode in ("off", "camera") for method in PEERS]
    else:
        planted_runs = [
            (planted, "off", "depth-nerfacto", ()),
            (planted, "off", "diffnerf-no-prior", ()),
            # Where `auto` moved nothing its depth is the `off` conversion's: that row would repeat the one above.
            *([(planted, "auto", "diffnerf-no-prior", ())] if any(alignment[planted, "auto"]["applied_shift"]) else []),
            *(
                [(planted, "auto", "diffnerf-no-prior", ("--depth-edge-band", "3", "--depth-edge-weight", "0"))]
                if misregistered
                else []
            ),
            *([(planted, PATH_MODE, "diffnerf-no-prior", ())] if rescaled else []),
        ]
    runs = [*(shipped if args.shipped_rows else []), *planted_runs]
    started = time.time()
    # Views are made before the runs start: two runs on one scene must not build its view at the same time.
    views = {key: scored_view(scenes[key], truth, work / "views" / scenes[key].name) for key in scenes}

    labels = [method + ("-edge-band3" if extra else "") for _, _, method, extra in runs]

    def run(job: tuple[str, str, str, tuple[str, ...]], label: str) -> dict:
        name, mode, method, extra = job
        flags = ("--camera-optimizer-mode", args.pose_refinement, *extra)
        view, scene = views[name, mode], scenes[name, mode].name
        return bench.run(RunSpec(method, scene, "dense", view, reference, None, args.seed, flags, label))

    with ThreadPoolExecutor(args.jobs) as pool:
        results = list(pool.map(run, runs, labels))
    rows = []
    for (name, mode, _, _), label, result in zip(runs, labels, results, strict=True):
        a = alignment[name, mode]
        applied = f"camera x{a['camera']['scale']:.3f}" if mode == "camera" else a["applied_shift"]
        rows.append(
            f"| {name} | {mode} | {applied} | {label} | {result['psnr']:.2f} | {result['ssim']:.3f} | "
            f"{result['depth_abs_rel']:.3f} | {result['seconds_per_iteration']:.2f} |"
            + (" reused |" if result.get("reused") else " |")
        )
    measured = "\n".join(
        f"| {name} | {a.get('dx', float('nan')):+.2f}, {a.get('dy', float('nan')):+.2f} | {a.get('decision', '')} |"
        for (name, mode), a in alignment.items()
        if mode == "auto"
    )
    fitted = "\n".join(
        f"Fitted camera ({name}): {json.dumps(a['camera'])}; colour intrinsics written: {a['colour_intrinsics']}."
        for (name, mode), a in alignment.items()
        if mode == "camera"
    )
    checked = "\n".join(
        f"| {name} | {mode} | {c['scale']:.3f} | {c['disagreement_cm']:.2f} / {c['best_disagreement_cm']:.2f} | "
        f"{c['contrast']:.2f} | {c['decision']} |"
        for (name, mode), c in path_scale.items()
        if c
    )
    machine = f"{platform.platform()}, {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs"
    poses_note = " (their path scaled in the planted capture)" if args.trajectory_scale != 1.0 else ""
    what = "Camera path off in scale" if not misregistered and args.trajectory_scale != 1.0 else "Depth off the colour"
    text = f"""# {what}: SUN3D fragment 2, shipped and {planted}

Command: `python -m benchmarks.bench_planted_shift {" ".join(sys.argv[1:])}`

Machine: {machine}, Python {platform.python_version()}; {(time.time() - started) / 60:.0f} min of training and
scoring (reused runs not counted).

50 real 640x480 frames with the given poses{poses_note}; every {EVAL_INTERVAL}th frame held out;
{args.iterations} iterations x {args.rays_per_batch} rays, the harness's `small` model preset for every method,
seed {args.seed}, pose refinement {args.pose_refinement} for every method. depth-nerfacto is nerfstudio's, as users
run it. Depth is scored on the held-out frames' sensor depth as SUN3D ships it, for every row.

## Measured misalignment (conversion with `auto`; dx, dy in pixels)

| capture | dx, dy | decision |
|---|---|---|
{measured}

{fitted}

## Path scale check (metadata.json `trajectory_scale`: the factor on the camera path the depth agrees with best)

| capture | conversion | path factor | depth disagreement at 1 / at the factor (cm) | contrast | decision |
|---|---|---|---|---|---|
{checked}

## NeRF on each conversion

| capture | depth alignment | shift applied | method | PSNR | SSIM | depth AbsRel | s/it | |
|---|---|---|---|---|---|---|---|---|
{chr(10).join(rows)}
"""
    args.report.parent.mkdir(parents=True, exist_ok=True)
    args.report.write_text(text)
    print(text)


if __name__ == "__main__":
    main(tyro.cli(PlantedShift))
