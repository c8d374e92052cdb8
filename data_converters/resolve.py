"""Turn whatever the user passed as `--data` into a converted nerfstudio scene folder.

Accepted: a converted scene (has `transforms.json`), a raw NYU scene folder (converted once into
a cache and reused), or the labeled `.mat` plus a scene name (that scene is exported once).
"""

from __future__ import annotations

from pathlib import Path

from data_converters.cache import default_output
from data_converters.nyu.convert import convert_raw
from data_converters.nyu.labeled import export_labeled_scene
from data_converters.nyu.raw_reader import NYUFormatError, list_raw_scene


def ensure_nerfstudio_scene(data: Path, cache_dir: Path | None = None, scene_name: str | None = None) -> Path:
    """Return a folder with `transforms.json` for `data`, converting (once) if needed."""
    data = Path(data)
    if (data / "transforms.json").is_file():
        return data
    if data.suffix == ".mat":
        if scene_name is None:
            raise NYUFormatError(f"{data}: a labeled .mat needs a scene name (e.g. kitchen_0028b)")
        return export_labeled_scene(data, scene_name, default_output(data, scene_name, cache_dir))
    if not data.exists():
        raise NYUFormatError(f"{data}: does not exist")
    list_raw_scene(data)  # raises a clear error if this is not an NYU raw scene folder
    return convert_raw(data, default_output(data, data.name, cache_dir))
