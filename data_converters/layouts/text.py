"""Parsing the small text files RGB-D layouts use (matrices, trajectories), with errors naming the file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from data_converters.capture import CaptureFormatError


def read_text(path: Path) -> str:
    """File contents as text; a missing or binary file is a format error naming it."""
    path = Path(path)
    if not path.is_file():
        raise CaptureFormatError(f"{path}: file is missing")
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise CaptureFormatError(f"{path}: not a text file ({err.reason} at byte {err.start})") from err


def parse_numbers(text: str, path: Path, line_no: int | None = None) -> np.ndarray:
    """Whitespace/comma separated floats; anything else is a format error naming the file (and line)."""
    where = f"{path}" + (f", line {line_no}" if line_no is not None else "")
    try:
        return np.array([float(t) for t in text.replace(",", " ").split()], dtype=np.float64)
    except ValueError as err:
        raise CaptureFormatError(f"{where}: expected numbers, {err}") from err


def read_matrix(path: Path, rows: int, cols: int) -> np.ndarray:
    """A `rows x cols` matrix written row by row (extra whitespace, comments with '#' ignored)."""
    lines = [line.split("#", 1)[0] for line in read_text(path).splitlines()]
    values = parse_numbers(" ".join(lines), path)
    if values.size != rows * cols:
        raise CaptureFormatError(
            f"{path}: expected a {rows}x{cols} matrix ({rows * cols} numbers), found {values.size}"
        )
    return values.reshape(rows, cols)


def check_intrinsics(K: np.ndarray, path: Path) -> np.ndarray:
    """A pinhole K with positive finite focal lengths and a zero-skew [0, 0, 1] last row."""
    if not np.isfinite(K).all() or K[0, 0] <= 0 or K[1, 1] <= 0 or not np.allclose(K[2], [0, 0, 1]):
        raise CaptureFormatError(f"{path}: not a pinhole intrinsics matrix: {K.tolist()}")
    return K


def image_size(path: Path) -> tuple[int, int]:
    """(width, height) from the image header only."""
    try:
        with Image.open(path) as image:
            return image.size
    except (OSError, UnidentifiedImageError) as err:
        raise CaptureFormatError(f"{path}: missing or not a readable image ({err})") from err
