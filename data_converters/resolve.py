"""Turn whatever the user passed as `--data` into a converted nerfstudio scene folder.

Accepted: a converted scene (has `transforms.json`), the NYU labeled `.mat` plus a scene name, or a
capture folder of any supported layout, detected from its files. Captures are converted once into
a cache (`<name>_nerfstudio` beside the input, or in `cache_dir`) and reused while unchanged.
"""

from __future__ import annotations

from pathlib import Path

from data_converters.cache import default_output
from data_converters.capture import Capture, CaptureFormatError
from data_converters.convert import ConvertOptions, convert_capture
from data_converters.layouts import Layout
from data_converters.layouts.plain import is_plain, read_plain
from data_converters.layouts.record3d import is_record3d, read_record3d
from data_converters.layouts.redwood import is_redwood, read_redwood
from data_converters.layouts.scannet import is_scannet, read_scannet
from data_converters.layouts.threedmatch import is_threedmatch, read_threedmatch
from data_converters.layouts.tum import is_tum, read_tum
from data_converters.nyu.convert import convert_raw
from data_converters.nyu.labeled import export_labeled_scene
from data_converters.nyu.raw_reader import NYUFormatError, parse_filename


def _is_nyu_raw(folder: Path) -> bool:
    return any(f is not None and f.kind == "d" for f in map(parse_filename, folder.iterdir()))


def capture_name(data: Path) -> str:
    """Name of a capture's default output folder: the folder's name, or a capture file's stem (scene0000_00.sens)."""
    data = Path(data).resolve()
    return data.stem if data.is_file() else data.name


def detect_layout(data: Path) -> Layout:
    """The layout of `data`, checked from the most to the least specific signature."""
    data = Path(data)
    if not data.exists():
        raise CaptureFormatError(f"{data}: does not exist")
    if data.is_file():
        if data.suffix == ".mat":
            return "nyu-labeled"
        if is_scannet(data):
            return "scannet"
        raise CaptureFormatError(
            f"{data}: a file, but only the NYU labeled .mat or a ScanNet .sens is accepted as a single file"
        )
    if (data / "transforms.json").is_file():
        return "scene"
    for layout, test in (
        ("nyu-raw", _is_nyu_raw),
        ("scannet", is_scannet),
        ("record3d", is_record3d),
        ("tum", is_tum),
        ("threedmatch", is_threedmatch),
        ("redwood", is_redwood),
        ("plain", is_plain),
    ):
        if test(data):
            return layout
    raise CaptureFormatError(
        f"{data}: no known RGB-D layout; expected one of: NYU raw (d-*.pgm, r-*.ppm), TUM (rgb.txt, depth.txt), "
        "3DMatch/7-Scenes/SUN3D (frame-*.color.png, frame-*.depth.png), ScanNet (a .sens, or color/, depth/, pose/, "
        "intrinsic/), Record3D (metadata.json, rgb/, depth/*.exr), "
        "Redwood/ICL (color/, depth/, "
        "camera_*.json or *.log), plain (rgb/ or color/, depth/, intrinsics.txt), or a converted scene "
        "(transforms.json)"
    )


def read_capture(data: Path, layout: Layout = "auto", depth_unit: float = 1e-3) -> Capture:
    """Parse a capture folder of a generic layout (not NYU, which has its own registration pipeline)."""
    layout = detect_layout(data) if layout == "auto" else layout
    readers = {
        "tum": read_tum,
        "threedmatch": read_threedmatch,
        "redwood": read_redwood,
        "record3d": read_record3d,
        "scannet": read_scannet,
    }
    if layout == "plain":
        return read_plain(data, depth_unit=depth_unit)
    if layout not in readers:
        raise CaptureFormatError(f"{data}: layout '{layout}' is not a generic RGB-D capture")
    return readers[layout](data)


def ensure_nerfstudio_scene(
    data: Path,
    cache_dir: Path | None = None,
    scene_name: str | None = None,
    layout: Layout = "auto",
    options: ConvertOptions | None = None,
    depth_unit: float = 1e-3,
    out: Path | None = None,
) -> Path:
    """Return a folder with `transforms.json` for `data`, converting (once, into `out` or the cache) if needed."""
    data = Path(data)
    layout = detect_layout(data) if layout == "auto" else layout
    if layout == "scene":
        return data
    if layout == "nyu-labeled":
        if scene_name is None:
            raise NYUFormatError(f"{data}: a labeled .mat needs a scene name (e.g. kitchen_0028b)")
        return export_labeled_scene(data, scene_name, out or default_output(data, scene_name, cache_dir))
    out = out or default_output(data, capture_name(data), cache_dir)
    if layout == "nyu-raw":
        return convert_raw(data, out)
    return convert_capture(read_capture(data, layout, depth_unit), out, options)
