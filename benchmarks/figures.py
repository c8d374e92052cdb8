"""Committed figures as 256-colour PNGs.

Every committed byte travels with the repository to the GPU machine, whose carry limit (64 MiB) the shipped prior,
the wheels and the prior's training frames share. Depth figures with a turbo colour map and photo panels compress
poorly as RGBA PNGs (0.5-0.7 MB each); an adaptive 256-colour palette keeps them readable at a third of the size.
"""

from __future__ import annotations

import io
from pathlib import Path

from matplotlib.figure import Figure
from PIL import Image


def save_figure(fig: Figure, path: Path, dpi: int) -> None:
    """Write `fig` to `path` as a PNG with an adaptive 256-colour palette (creating its folder)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    buffer.seek(0)
    path.parent.mkdir(parents=True, exist_ok=True)
    palette_png(Image.open(buffer), path)


def palette_png(image: Image.Image, path: Path) -> None:
    """Save `image` (any mode) as an optimised PNG with an adaptive 256-colour palette."""
    image.convert("RGB").quantize(256, method=Image.Quantize.MEDIANCUT).save(path, optimize=True)
