"""Phone LiDAR scenes made by nerfstudio's `ns-process-data`: what its output keeps, and what it drops.

`ns-process-data polycam --use-depth` copies Polycam's 16-bit millimetre depth maps (256x192 beside 1024x768
keyframes), upscaled 4x with nearest neighbour and then cropped by `--crop-border-pixels` like the images, so the
parser's default `depth_unit_scale_factor` (1e-3) gives metres. Intrinsics are per frame (no top-level ones).
It drops the confidence map that Polycam exports beside each depth map (ARKit's levels: 0 low, 1 medium,
2 high). When the export was a zip, `ns-process-data` extracted it inside the scene folder, so the maps are still
there; when it was a folder (`--data` accepts both), they stay in that folder, which transforms.json does not
name: it is looked for beside the scene (or linked into it by the user) and used only if its depth maps,
processed as nerfstudio processes them, are the scene's. `polycam_confidence` maps nerfstudio's `frame_NNNNN`
names back to the export's files and writes each map with its depth map's geometry to `confidence/`, as the
weight level / 2 in uint16 (65535 = 1), the encoding of the refined-depth confidence.

`ns-process-data record3d` (nerfstudio 1.1.5) keeps no depth at all: a Record3D export is read directly instead
(`data_converters.layouts.record3d`).
"""

from __future__ import annotations

import json
import logging
import os
import re
from pathlib import Path

import numpy as np
from PIL import Image

LOG = logging.getLogger(__name__)
CONFIDENCE_DIR = "confidence"
ARKIT_HIGH = 2
"""ARKit's highest confidence level; a level's weight is level / ARKIT_HIGH."""
_FRAME = re.compile(r"frame_(\d{5,})$")

DEPTHLESS_HINT = (
    "Phone captures: nerfstudio's `ns-process-data record3d` keeps no depth, so pass the Record3D export folder "
    "itself (metadata.json, rgb/, depth/) as --data; run `ns-process-data polycam` with --use-depth."
)


def check_scene_has_depth(scene_dir: Path) -> None:
    """Raise a ValueError that names the frames and the phone-capture fix if any frame of a scene has no depth."""
    path = Path(scene_dir) / "transforms.json"
    frames = json.loads(path.read_text())["frames"]
    missing = [f["file_path"] for f in frames if "depth_file_path" not in f]
    if missing:
        raise ValueError(
            f"{path}: {len(missing)} of {len(frames)} frame(s) have no depth_file_path (first: {missing[0]}); "
            f"diffnerf needs RGB-D input and never invents depth. {DEPTHLESS_HINT}"
        )


def _has_confidence(keyframes: Path) -> bool:
    return (keyframes / CONFIDENCE_DIR).is_dir() and (keyframes / "depth").is_dir()


def _copied_depth(scene_dir: Path) -> list[Path]:
    """The depth maps `ns-process-data polycam --use-depth` wrote (`depth/frame_NNNNN.png`), in order."""
    return sorted(p for p in (Path(scene_dir) / "depth").glob("frame_*") if _FRAME.match(p.stem))


def _selected_depth(scene_dir: Path, keyframes: Path) -> list[Path] | None:
    """The export's depth maps that nerfstudio copied, in order: it keeps `get_image_filenames(depth_dir,
    max_dataset_size)`, reproduced from how many it copied; None if the counts cannot match."""
    from nerfstudio.process_data.process_data_utils import get_image_filenames

    copied = _copied_depth(scene_dir)
    if not copied:
        return None
    selected, _ = get_image_filenames(keyframes / "depth", len(copied))
    return selected if len(selected) == len(copied) else None


def _is_source_of(scene_dir: Path, keyframes: Path) -> bool:
    """Whether the scene's first depth map is the export's matching one upscaled and cropped as nerfstudio does."""
    from nerfstudio.process_data.process_data_utils import POLYCAM_UPSCALING_TIMES

    selected = _selected_depth(scene_dir, keyframes)
    if selected is None:
        return False
    processed = np.asarray(Image.open(_copied_depth(scene_dir)[0]))
    expected = like_processed_depth(
        np.asarray(Image.open(selected[0])), processed.shape[:2], 2**POLYCAM_UPSCALING_TIMES
    )
    return expected is not None and expected.dtype == processed.dtype and np.mean(expected != processed) <= 0.01


def find_polycam_export(scene_dir: Path) -> Path | None:
    """The `keyframes/` folder, with confidence maps, of the Polycam export a scene was processed from.

    Inside the scene first: a zip input is extracted there, and a folder export linked or copied into the scene
    is found the same way. Else beside it, for a folder input (`ns-process-data polycam --data export/`): the
    scene's siblings and their subfolders, taking only an export whose depth maps are the scene's.
    """
    scene_dir = Path(scene_dir)
    inside = [c for c in [scene_dir / "keyframes", *sorted(scene_dir.glob("*/keyframes"))] if _has_confidence(c)]
    if len(inside) > 1:
        LOG.warning("%s: several Polycam exports inside (%s); not guessing whose confidence to use", scene_dir, inside)
        return None
    if inside:
        return inside[0]
    if not _copied_depth(scene_dir):  # not a scene from `ns-process-data polycam --use-depth`: nothing to look for
        return None
    parent, own = scene_dir.parent, scene_dir.resolve()
    beside = [
        c
        for c in [*sorted(parent.glob("*/keyframes")), *sorted(parent.glob("*/*/keyframes"))]
        if own not in c.resolve().parents and _has_confidence(c) and _is_source_of(scene_dir, c)
    ]
    if len(beside) > 1:
        LOG.warning("%s: several Polycam exports beside it match (%s); not guessing", scene_dir, beside)
        return None
    return beside[0] if beside else None


def confidence_weights(levels: np.ndarray) -> np.ndarray:
    """Float weights in [0, 1]: ARKit levels 0/1/2 as level / 2; an 8-bit map with larger values as value / 255."""
    levels = np.asarray(levels)
    if levels.ndim == 3:
        levels = levels[..., 0]
    top = ARKIT_HIGH if levels.max(initial=0) <= ARKIT_HIGH else np.iinfo(np.uint8).max
    return np.clip(levels.astype(np.float32) / top, 0.0, 1.0)


def like_processed_depth(source: np.ndarray, processed_shape: tuple[int, int], upscale: int) -> np.ndarray | None:
    """`source` (at Polycam's depth size) as `copy_and_upscale_polycam_depth_maps_list` made the depth: upscaled
    `upscale`x with nearest neighbour, then the same border cropped from every side. None if no such crop fits."""
    (hs, ws), (hd, wd) = processed_shape, source.shape[:2]
    crop_y, crop_x = upscale * hd - hs, upscale * wd - ws
    if crop_x != crop_y or crop_x < 0 or crop_x % 2:
        return None
    c = crop_x // 2
    return np.repeat(np.repeat(source, upscale, axis=0), upscale, axis=1)[c : c + hs, c : c + ws]


def _processed_confidence(depth_path: Path, source_depth: Path, source_conf: Path, upscale: int) -> np.ndarray | None:
    """uint16 confidence with the geometry of nerfstudio's depth map `depth_path`, or None (with a warning) if the
    export's depth map, put through the same upscale and crop, is not the scene's: the mapping would be wrong."""
    processed = np.asarray(Image.open(depth_path))
    raw_depth, levels = np.asarray(Image.open(source_depth)), np.asarray(Image.open(source_conf))
    if levels.shape[:2] != raw_depth.shape[:2]:
        LOG.warning("%s: confidence %s is not the size of depth %s", source_conf, levels.shape, raw_depth.shape)
        return None
    expected = like_processed_depth(raw_depth, processed.shape[:2], upscale)
    if expected is None or np.mean(expected != processed) > 0.01:
        LOG.warning(
            "%s does not match %s upscaled %dx and cropped; not using its confidence", depth_path, source_depth, upscale
        )
        return None
    weights = like_processed_depth(confidence_weights(levels), processed.shape[:2], upscale)
    return np.round(weights * np.iinfo(np.uint16).max).astype(np.uint16)


def polycam_confidence(scene_dir: Path, meta: dict) -> list[Path | None] | None:
    """Per frame of `meta` (the scene's transforms.json), a confidence PNG with its depth map's geometry, written
    once into `<scene>/confidence/`; None when the scene has no extracted Polycam export with confidence maps.

    nerfstudio names depth maps `frame_{i + 1:05d}` after the i-th of the export's depth files that it selected
    (`get_image_filenames(depth_dir, max_dataset_size)`); the selection is reproduced from how many it copied.
    """
    from nerfstudio.process_data.process_data_utils import POLYCAM_UPSCALING_TIMES

    scene_dir = Path(scene_dir)
    export = find_polycam_export(scene_dir)
    if export is None:
        return None
    selected = _selected_depth(scene_dir, export)
    if selected is None:
        LOG.warning("%s: its depth maps do not match the export %s's; not using its confidence", scene_dir, export)
        return None
    conf_by_stem = {p.stem: p for p in (export / CONFIDENCE_DIR).iterdir() if p.suffix.lower() == ".png"}
    out_dir = scene_dir / CONFIDENCE_DIR
    out_dir.mkdir(exist_ok=True)
    result: list[Path | None] = []
    for frame in meta["frames"]:
        depth = scene_dir / frame.get("depth_file_path", "")
        match = _FRAME.match(depth.stem)
        index = int(match.group(1)) - 1 if match else -1
        source = selected[index] if 0 <= index < len(selected) else None
        conf = conf_by_stem.get(source.stem) if source is not None else None
        if conf is None or not depth.is_file():
            result.append(None)
            continue
        out = out_dir / f"{depth.stem}.png"
        if not out.is_file() or out.stat().st_mtime_ns < max(depth.stat().st_mtime_ns, conf.stat().st_mtime_ns):
            image = _processed_confidence(depth, source, conf, 2**POLYCAM_UPSCALING_TIMES)
            if image is None:
                result.append(None)
                continue
            tmp = out.with_suffix(".tmp.png")
            Image.fromarray(image).save(tmp)
            os.replace(tmp, out)
        result.append(out)
    return result if any(p is not None for p in result) else None
