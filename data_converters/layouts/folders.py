"""Colour/depth image folders shared by the Redwood/ICL and plain layouts: finding and pairing them."""

from __future__ import annotations

import re
from pathlib import Path

from data_converters.capture import CaptureFormatError

COLOUR_DIRS = ("color", "colour", "rgb", "image", "images")
DEPTH_DIRS = ("depth",)
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


def natural_key(name: str) -> list:
    """'frame-2' sorts before 'frame-10' (file lists are rarely zero-padded consistently)."""
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name)]


def find_dir(root: Path, names: tuple[str, ...]) -> Path | None:
    """The first of `names` that is a sub-folder of `root`."""
    return next((root / n for n in names if (root / n).is_dir()), None)


def list_images(folder: Path) -> list[Path]:
    """Image files of a folder in natural order."""
    files = [p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".")]
    return sorted(files, key=lambda p: natural_key(p.name))


def colour_and_depth_dirs(root: Path) -> tuple[Path, Path]:
    """`root`'s colour and depth folders, or a format error saying which is missing."""
    colour, depth = find_dir(root, COLOUR_DIRS), find_dir(root, DEPTH_DIRS)
    if colour is None or depth is None:
        raise CaptureFormatError(
            f"{root}: expected a colour folder ({'/'.join(COLOUR_DIRS)}) and a depth folder beside it; "
            f"found {'no colour folder' if colour is None else colour.name}"
            f"{' and no depth folder' if depth is None else ''}"
        )
    return colour, depth


def pair_images(colour_dir: Path, depth_dir: Path) -> list[tuple[Path, Path]]:
    """(colour, depth) pairs: by equal file stem when the stems match, else by position with equal counts."""
    colour, depth = list_images(colour_dir), list_images(depth_dir)
    if not colour or not depth:
        raise CaptureFormatError(f"{colour_dir if not colour else depth_dir}: no .png/.jpg images")
    depth_by_stem = {p.stem: p for p in depth}
    if len(depth_by_stem) == len(depth) and all(p.stem in depth_by_stem for p in colour) and len(colour) == len(depth):
        return [(p, depth_by_stem[p.stem]) for p in colour]
    if len(colour) != len(depth):
        raise CaptureFormatError(
            f"{colour_dir.parent}: {len(colour)} colour images in {colour_dir.name}/ but {len(depth)} depth images "
            f"in {depth_dir.name}/, and their names do not pair up (give equal counts or matching names)"
        )
    return list(zip(colour, depth, strict=True))
