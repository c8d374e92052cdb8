"""Conversion caching: a converted scene is reused only if it came from the same input and options.

A scene folder counts as complete only when its `transforms.json` exists (written last, atomically)
and its metadata carries the fingerprint of the current request.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

CONVERTER_VERSION = 1


def fingerprint(sources: Path | Sequence[Path], options: dict[str, Any]) -> str:
    """Hash of the source paths, their sizes and modification times, the options and the converter version.

    Pass every input file of a capture (not only its folder): editing one image leaves the folder's
    own size and time unchanged.
    """
    paths = [sources] if isinstance(sources, (str, Path)) else list(sources)
    stats = []
    for path in paths:
        path = Path(path).resolve()
        stat = path.stat()
        stats.append([str(path), stat.st_size, stat.st_mtime_ns])
    key = json.dumps([stats, options, CONVERTER_VERSION], sort_keys=True, default=str)
    return hashlib.sha1(key.encode()).hexdigest()[:16]


def is_cached(out_dir: Path, fp: str) -> bool:
    """True when `out_dir` holds a complete scene converted with fingerprint `fp`."""
    meta = Path(out_dir) / "metadata.json"
    if not (Path(out_dir) / "transforms.json").is_file() or not meta.is_file():
        return False
    try:
        return json.loads(meta.read_text()).get("fingerprint") == fp
    except json.JSONDecodeError:
        return False


def invalidate(out_dir: Path) -> None:
    """Remove a previous scene's outputs so a partial rewrite can never look complete."""
    out_dir = Path(out_dir)
    (out_dir / "transforms.json").unlink(missing_ok=True)
    (out_dir / "metadata.json").unlink(missing_ok=True)
    for sub in ("images", "depth"):
        shutil.rmtree(out_dir / sub, ignore_errors=True)


def default_output(data: Path, name: str, cache_dir: Path | None = None) -> Path:
    """Where a converted scene goes: `<cache_dir or data's folder>/<name>_nerfstudio`."""
    base = Path(cache_dir) if cache_dir is not None else Path(data).resolve().parent
    return base / f"{name}_nerfstudio"
