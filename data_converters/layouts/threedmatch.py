"""3DMatch / 7-Scenes / SUN3D layout: `frame-NNNNNN.{color.png|color.jpg, depth.png, pose.txt}` per fragment.

A capture root holds `camera-intrinsics.txt` (3x3 K, row by row) and one or more fragment or
sequence folders (`fragment-1-rgbd-frames/`, `seq-01/`, ...) whose poses share one world frame;
frames may also sit directly in the root. Depth PNGs are millimetres, 0 = invalid (7-Scenes also
writes 65535). Poses are 4x4 camera-to-world with OpenCV camera axes.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from data_converters.capture import Capture, CaptureFormatError, CaptureFrame
from data_converters.layouts.text import check_intrinsics, image_size, read_matrix

INTRINSICS_FILE = "camera-intrinsics.txt"
_COLOUR_RE = re.compile(r"^(frame-\d+)\.color\.(png|jpg)$")
_SEVEN_SCENES_K = "585 0 320\n0 585 240\n0 0 1"


def _natural_key(name: str) -> list:
    """'fragment-2' sorts before 'fragment-10'."""
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name)]


def _frame_stems(folder: Path) -> dict[str, Path]:
    """`frame-NNNNNN` -> its colour image, for the frames directly inside `folder`."""
    stems = {}
    for path in folder.iterdir():
        m = _COLOUR_RE.match(path.name)
        if m:
            stems[m.group(1)] = path
    return dict(sorted(stems.items(), key=lambda kv: _natural_key(kv[0])))


def is_threedmatch(root: Path) -> bool:
    """True when `root` or one of its sub-folders holds `frame-*.color.{png,jpg}` files."""
    root = Path(root)
    if not root.is_dir():
        return False
    folders = [root, *(p for p in root.iterdir() if p.is_dir())]
    return any(_frame_stems(f) for f in folders)


def _intrinsics(root: Path, groups: list[Path]) -> np.ndarray:
    """The capture's one camera: root's camera-intrinsics.txt, else the fragments' (which must agree)."""
    if (root / INTRINSICS_FILE).is_file():
        return check_intrinsics(read_matrix(root / INTRINSICS_FILE, 3, 3), root / INTRINSICS_FILE)
    found = [g / INTRINSICS_FILE for g in groups if (g / INTRINSICS_FILE).is_file()]
    if not found:
        raise CaptureFormatError(
            f"{root}: no {INTRINSICS_FILE} (3x3 K, row by row) in the capture folder or its fragments; "
            f"7-Scenes ships none, its Kinect is usually taken as:\n{_SEVEN_SCENES_K}"
        )
    Ks = [check_intrinsics(read_matrix(p, 3, 3), p) for p in found]
    for p, K in zip(found[1:], Ks[1:], strict=True):
        if not np.allclose(K, Ks[0]):
            raise CaptureFormatError(f"{p}: intrinsics differ from {found[0]}; one capture must have one camera")
    return Ks[0]


def read_threedmatch(root: Path) -> Capture:
    """Parse a 3DMatch / 7-Scenes / SUN3D capture; `frame.group` is the fragment folder name ('' for the root).

    Frame names are `<group>/<frame-NNNNNN>`, unique across fragments. Either every frame has a
    `.pose.txt` or none does (then poses are estimated).
    """
    root = Path(root)
    if not root.is_dir():
        raise CaptureFormatError(f"{root}: not a folder")
    folders = [root, *sorted((p for p in root.iterdir() if p.is_dir()), key=lambda p: _natural_key(p.name))]
    groups = [(f, stems) for f in folders if (stems := _frame_stems(f))]
    if not groups:
        raise CaptureFormatError(f"{root}: no frame-NNNNNN.color.png/.jpg files here or in its sub-folders")
    K = _intrinsics(root, [f for f, _ in groups])
    frames: list[CaptureFrame] = []
    for folder, stems in groups:
        group = "" if folder == root else folder.name
        missing_depth = [s for s in stems if not (folder / f"{s}.depth.png").is_file()]
        if missing_depth:
            raise CaptureFormatError(
                f"{folder}: {len(stems)} colour images but {len(stems) - len(missing_depth)} depth images; "
                f"first missing: {folder / (missing_depth[0] + '.depth.png')}"
            )
        posed = [s for s in stems if (folder / f"{s}.pose.txt").is_file()]
        if posed and len(posed) != len(stems):
            first = next(s for s in stems if s not in set(posed))
            raise CaptureFormatError(
                f"{folder}: {len(posed)} of {len(stems)} frames have a .pose.txt; first missing: "
                f"{folder / (first + '.pose.txt')} (give every pose or none, then poses are estimated)"
            )
        for stem, colour in stems.items():
            frames.append(
                CaptureFrame(
                    name=f"{group}/{stem}" if group else stem,
                    rgb_path=colour,
                    depth_path=folder / f"{stem}.depth.png",
                    # Non-finite entries (3DMatch's mark for lost tracking) are kept: conversion excludes them.
                    c2w=read_matrix(folder / f"{stem}.pose.txt", 4, 4) if posed else None,
                    group=group,
                )
            )
    if any(f.c2w is None for f in frames) and any(f.c2w is not None for f in frames):
        raise CaptureFormatError(f"{root}: some fragments have .pose.txt files and others not; give all or none")
    width, height = image_size(frames[0].rgb_path)
    return Capture(
        layout="threedmatch",
        root=root,
        K=K,
        width=width,
        height=height,
        depth_scale=1e-3,
        frames=frames,
        invalid_depth_values=(0, 65535),
    )
