"""Writing and reading RGB-D scenes in nerfstudio's `transforms.json` layout.

Every converter (synthetic, NYU raw, NYU labeled) ends here, so the on-disk contract lives in
one place: `images/*.png`, `depth/*.png` as 16-bit millimetres with 0 = invalid, OpenGL
camera-to-world poses, and a `metadata.json` that records where the frames came from.
The write is atomic: a scene folder either has a complete `transforms.json` or none.

`load_scene` reads any nerfstudio RGB-D scene, not only ours: intrinsics per frame where transforms.json has
no top-level ones (as `ns-process-data polycam` writes them), depth in the scene's unit
(`depth_unit_scale_factor`, else millimetres) and at its own resolution, which may differ from the image's.
Layers added by `write_frame_layers` (refined depth) are stored in the same unit and at the same resolution
as the frame's raw depth, so whatever reads the raw depth correctly reads them correctly too.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from PIL import Image

DEPTH_UNIT_SCALE = 1e-3  # depth PNGs store millimetres
OPENCV_TO_OPENGL = np.diag([1.0, -1.0, -1.0, 1.0])


@dataclass
class RGBDFrame:
    """One posed RGB-D frame in OpenCV camera axes."""

    rgb: np.ndarray  # (H, W, 3) uint8
    depth: np.ndarray  # (H, W) float metres, 0 or nan = invalid
    c2w: np.ndarray  # (4, 4) OpenCV camera-to-world
    name: str


def to_nerfstudio_intrinsics(K: np.ndarray) -> np.ndarray:
    """OpenCV intrinsics (pixel centres at integers) to nerfstudio's (centres at +0.5): shift cx, cy by 0.5."""
    K = np.asarray(K, dtype=np.float64).copy()
    K[:2, 2] += 0.5
    return K


def depth_to_png(depth_m: np.ndarray, unit: float = DEPTH_UNIT_SCALE) -> np.ndarray:
    """Metres to uint16 counts of `unit` metres (default millimetres); invalid and out-of-range become 0."""
    d = np.nan_to_num(np.asarray(depth_m, dtype=np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    counts = np.round(d * (1.0 / unit))  # 1 / 1e-3 is exactly 1000: millimetres round as they always did
    counts[(counts <= 0) | (counts > 65535)] = 0
    return counts.astype(np.uint16)


def depth_to_png_mm(depth_m: np.ndarray) -> np.ndarray:
    """Metres to uint16 millimetres; invalid and out-of-range become 0."""
    return depth_to_png(depth_m, DEPTH_UNIT_SCALE)


def read_depth_png(path: Path, unit: float = DEPTH_UNIT_SCALE) -> np.ndarray:
    """16-bit depth PNG storing counts of `unit` metres (default millimetres) to float32 metres (0 = invalid)."""
    arr = np.asarray(Image.open(path))
    if arr.dtype not in (np.uint16, np.int32) or arr.ndim != 2:
        raise ValueError(f"{path}: expected a single-channel 16-bit depth PNG, got {arr.dtype} {arr.shape}")
    return arr.astype(np.float32) * float(unit)  # float32 arithmetic, as nerfstudio's depth dataset reads it


def scene_depth_unit(meta: Mapping[str, Any]) -> float | None:
    """Metres per stored value of a scene's depth PNGs as its transforms.json declares it
    (`depth_unit_scale_factor`, which `write_scene` records), or None where it declares none (nerfstudio's own
    processing, e.g. `ns-process-data polycam`, writes millimetres and no key: its parser's default 1e-3)."""
    unit = meta.get("depth_unit_scale_factor")
    if unit is None:
        return None
    if not float(unit) > 0:
        raise ValueError(f"transforms.json: depth_unit_scale_factor must be > 0, got {unit}")
    return float(unit)


def intrinsics_at(K: np.ndarray, size: tuple[int, int], new_size: tuple[int, int]) -> np.ndarray:
    """nerfstudio-convention intrinsics (pixel centres at +0.5) of an image of `size` (height, width) resized
    to `new_size`: the image corner is the origin, so focal lengths and principal point all scale with it."""
    (h, w), (new_h, new_w) = size, new_size
    return np.diag([new_w / w, new_h / h, 1.0]) @ np.asarray(K, dtype=np.float64)


def write_scene(
    out_dir: Path,
    K: np.ndarray,
    width: int,
    height: int,
    frames: Iterable[RGBDFrame],
    metadata: dict[str, Any],
    extra_transforms: dict[str, Any] | None = None,
) -> Path:
    """Write frames as a nerfstudio RGB-D scene and return the path of `transforms.json`."""
    out_dir = Path(out_dir)
    (out_dir / "images").mkdir(parents=True, exist_ok=True)
    (out_dir / "depth").mkdir(parents=True, exist_ok=True)
    entries = []
    for frame in frames:
        if frame.rgb.shape[:2] != (height, width) or frame.depth.shape != (height, width):
            raise ValueError(
                f"frame {frame.name}: rgb {frame.rgb.shape} / depth {frame.depth.shape} "
                f"do not match the scene size {height}x{width}"
            )
        rgb_rel, depth_rel = f"images/{frame.name}.png", f"depth/{frame.name}.png"
        # zlib level 1: encoding 2-3x faster than the default 6, which dominated conversion; on SUN3D the colour
        # files grow 11% and the depth files 25%.
        Image.fromarray(frame.rgb).save(out_dir / rgb_rel, compress_level=1)
        Image.fromarray(depth_to_png_mm(frame.depth)).save(out_dir / depth_rel, compress_level=1)
        entries.append(
            {
                "file_path": rgb_rel,
                "depth_file_path": depth_rel,
                "transform_matrix": (frame.c2w @ OPENCV_TO_OPENGL).tolist(),
            }
        )
    if not entries:
        raise ValueError(f"{out_dir}: no frames to write")
    transforms = {
        "camera_model": "OPENCV",
        "fl_x": float(K[0, 0]),
        "fl_y": float(K[1, 1]),
        "cx": float(K[0, 2]),
        "cy": float(K[1, 2]),
        "w": int(width),
        "h": int(height),
        "k1": 0.0,
        "k2": 0.0,
        "p1": 0.0,
        "p2": 0.0,
        "depth_unit_scale_factor": DEPTH_UNIT_SCALE,
        "frames": entries,
        **(extra_transforms or {}),
    }
    (out_dir / "metadata.json").write_text(json.dumps(metadata, indent=2))
    tmp = out_dir / "transforms.json.tmp"
    tmp.write_text(json.dumps(transforms, indent=2))
    os.replace(tmp, out_dir / "transforms.json")
    return out_dir / "transforms.json"


def write_frame_layers(
    scene_dir: Path, folders: Mapping[str, str], layers: Iterable[Mapping[str, np.ndarray] | None]
) -> Path:
    """Add extra per-frame uint16 PNG layers (e.g. refined depth, confidence) to an existing scene.

    `folders` maps each new transforms.json frame key to the folder its PNGs go to; `layers` yields,
    for every frame in order, one uint16 image per key with the size of the frame's depth PNG (which may
    differ from its image's), or None for a frame that gets no layers (readers then use its raw depth).
    Depth layers must be stored in the scene's depth unit (`scene_depth_unit`, default millimetres), as
    readers apply one unit to raw and added depth alike. Files take the name of the frame's depth PNG.
    transforms.json is updated once, atomically, after every frame was written, so an interrupted run leaves
    the scene as it was. Returns the path of `transforms.json`.
    """
    scene_dir = Path(scene_dir)
    path = scene_dir / "transforms.json"
    meta = json.loads(path.read_text())
    frames = meta["frames"]
    for folder in folders.values():
        (scene_dir / folder).mkdir(exist_ok=True)
    written = 0
    for frame, images in zip(frames, layers, strict=False):
        written += 1
        if images is None:
            continue
        name = Path(frame["depth_file_path"]).name
        with Image.open(scene_dir / frame["depth_file_path"]) as depth_png:
            size = depth_png.size[::-1]  # (height, width): only the header is read
        for key, folder in folders.items():
            image = images[key]
            if image.dtype != np.uint16 or image.shape != size:
                raise ValueError(
                    f"{scene_dir}: layer {key} for {name} is {image.dtype} {image.shape}, "
                    f"not uint16 {size} like its depth PNG"
                )
            Image.fromarray(image).save(scene_dir / folder / name)
            frame[key] = f"{folder}/{name}"
    if written != len(frames):
        raise ValueError(f"{scene_dir}: got layers for {written} of {len(frames)} frames")
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(meta, indent=2))
    os.replace(tmp, path)
    return path


def backproject(depth: np.ndarray, K: np.ndarray, c2w: np.ndarray, stride: int = 1) -> np.ndarray:
    """World points (N, 3) of the valid pixels of a planar depth map seen by an OpenCV camera."""
    d = depth[::stride, ::stride]
    v, u = np.nonzero(d > 0)
    z = d[v, u].astype(np.float64)
    u, v = u * stride + 0.5, v * stride + 0.5
    cam = np.stack([(u - K[0, 2]) / K[0, 0] * z, (v - K[1, 2]) / K[1, 1] * z, z])
    return (c2w[:3, :3] @ cam + c2w[:3, 3:4]).T


def split_view(scene_dir: Path, out: Path, num_train: int | None, eval_interval: int) -> Path:
    """A view of a scene (its transforms.json with explicit split lists; images and depth linked, not copied):
    every `eval_interval`-th frame held out, and `num_train` training frames spread evenly over the rest
    (None = all of them). nerfstudio's parsers honour the lists, so every method sees the same split."""
    meta = json.loads((scene_dir / "transforms.json").read_text())
    names = [f["file_path"] for f in meta["frames"]]
    held_out = names[::eval_interval]
    rest = [n for n in names if n not in held_out]
    if num_train is None:
        train = rest
    else:
        train = [rest[i] for i in np.linspace(0, len(rest) - 1, num_train).round().astype(int)]
    out.mkdir(parents=True, exist_ok=True)
    for sub in ("images", "depth"):
        link = out / sub
        if not link.exists():
            link.symlink_to((scene_dir / sub).resolve())
    meta.update(train_filenames=train, val_filenames=held_out, test_filenames=held_out)
    path = out / "transforms.json"
    if path.exists():  # keep layers written into the view (refined depth of its training frames) if its split holds
        old = json.loads(path.read_text())
        if old.get("train_filenames") == train and len(old["frames"]) == len(meta["frames"]):
            for frame, kept in zip(meta["frames"], old["frames"], strict=True):
                if kept["file_path"] == frame["file_path"]:
                    frame.update({k: v for k, v in kept.items() if k not in frame})
        if old == meta:  # the same view: leave the file's bytes alone, as they key cached benchmark runs
            return out
    path.write_text(json.dumps(meta, indent=1))
    return out


INTRINSIC_KEYS = ("fl_x", "fl_y", "cx", "cy", "w", "h")


@dataclass
class LoadedScene:
    """A scene read back from disk, with OpenCV poses and metric depth.

    Intrinsics are per frame (`K_of`, `size_of`), in nerfstudio's pixel convention at the image's resolution;
    `K`, `width`, `height` are the scene-wide values and raise where frames differ. Depth maps keep their stored
    resolution, which may be lower than the image's: `rgbd` gives a frame with RGB and intrinsics at the depth's.
    """

    Ks: np.ndarray  # (N, 3, 3)
    sizes: np.ndarray  # (N, 2) image (height, width)
    c2w: np.ndarray  # (N, 4, 4) OpenCV
    image_paths: list[Path]
    depth_paths: list[Path]
    depth_unit: float = DEPTH_UNIT_SCALE
    """Metres per stored depth value."""

    def K_of(self, i: int) -> np.ndarray:
        return self.Ks[i].copy()

    def size_of(self, i: int) -> tuple[int, int]:
        """Image (height, width) of frame `i` as transforms.json states it."""
        h, w = self.sizes[i]
        return int(h), int(w)

    def _common(self, values: np.ndarray, what: str) -> np.ndarray:
        if not np.all(values == values[0]):
            raise ValueError(f"{what} differ between frames of this scene; use K_of(i) / size_of(i)")
        return values[0]

    @property
    def K(self) -> np.ndarray:
        """The intrinsics every frame shares (a ValueError where they differ)."""
        return self._common(self.Ks, "intrinsics").copy()

    @property
    def height(self) -> int:
        return int(self._common(self.sizes[:, 0], "image heights"))

    @property
    def width(self) -> int:
        return int(self._common(self.sizes[:, 1], "image widths"))

    def depth(self, i: int) -> np.ndarray:
        """Frame `i`'s depth in metres (0 = invalid), at the resolution it is stored at."""
        return read_depth_png(self.depth_paths[i], self.depth_unit)

    def depth_png(self, depth_m: np.ndarray) -> np.ndarray:
        """Metres to a uint16 layer in this scene's depth unit (the inverse of `depth`)."""
        return depth_to_png(depth_m, self.depth_unit)

    def depth_K(self, i: int, depth_shape: tuple[int, int] | None = None) -> np.ndarray:
        """Frame `i`'s intrinsics at its depth map's resolution (`depth_shape`, read from the file if None)."""
        if depth_shape is None:
            with Image.open(self.depth_paths[i]) as png:
                depth_shape = png.size[::-1]
        return intrinsics_at(self.Ks[i], self.size_of(i), depth_shape)

    def rgb(self, i: int) -> np.ndarray:
        return np.asarray(Image.open(self.image_paths[i]).convert("RGB"))

    def rgbd(self, i: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Frame `i` at its depth map's resolution: RGB (uint8, area-resized if the sizes differ), depth in
        metres, and the intrinsics at that size. A ValueError if the image is not the size transforms.json states."""
        rgb, depth = self.rgb(i), self.depth(i)
        if rgb.shape[:2] != self.size_of(i):
            raise ValueError(
                f"{self.image_paths[i]}: rgb {rgb.shape[:2]} does not match this frame's {self.size_of(i)} in "
                "transforms.json (the image files differ from the scene size it states)"
            )
        if depth.shape != rgb.shape[:2]:
            rgb = cv2.resize(rgb, depth.shape[::-1], interpolation=cv2.INTER_AREA)
        return rgb, depth, self.depth_K(i, depth.shape)

    def world_points(self, stride: int = 4) -> np.ndarray:
        """All frames' depth back-projected into the scene's world frame (metres)."""
        points = []
        for i in range(len(self.c2w)):
            depth = self.depth(i)
            points.append(backproject(depth, self.depth_K(i, depth.shape), self.c2w[i], stride))
        return np.concatenate(points)


def load_scene(scene_dir: Path) -> LoadedScene:
    """Read a scene written by `write_scene`, or any nerfstudio RGB-D scene with per-frame depth.

    Each intrinsic (`fl_x`, `fl_y`, `cx`, `cy`, `w`, `h`) comes from the top level of transforms.json where it is
    there, else from each frame, as nerfstudio's parser reads it (a top-level value wins over a frame's).
    Distortion is ignored: the scenes this project reads have none.
    """
    scene_dir = Path(scene_dir)
    path = scene_dir / "transforms.json"
    if not path.exists():
        raise FileNotFoundError(f"{path}: not found; is {scene_dir} a converted scene?")
    meta = json.loads(path.read_text())
    frames = meta["frames"]
    values = {}
    for key in INTRINSIC_KEYS:
        if key in meta:
            values[key] = np.full(len(frames), float(meta[key]))
            continue
        missing = [f["file_path"] for f in frames if key not in f]
        if missing:
            raise ValueError(f"{path}: {key} is neither at the top level nor in frame {missing[0]}")
        values[key] = np.array([float(f[key]) for f in frames])
    Ks = np.zeros((len(frames), 3, 3))
    Ks[:, 0, 0], Ks[:, 1, 1], Ks[:, 0, 2], Ks[:, 1, 2] = values["fl_x"], values["fl_y"], values["cx"], values["cy"]
    Ks[:, 2, 2] = 1.0
    unit = scene_depth_unit(meta)
    return LoadedScene(
        Ks=Ks,
        sizes=np.stack([values["h"], values["w"]], 1).astype(int),
        c2w=np.stack([np.asarray(f["transform_matrix"]) @ OPENCV_TO_OPENGL for f in frames]),
        image_paths=[scene_dir / f["file_path"] for f in frames],
        depth_paths=[scene_dir / f["depth_file_path"] for f in frames],
        depth_unit=DEPTH_UNIT_SCALE if unit is None else unit,
    )
