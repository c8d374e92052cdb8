"""Committed figures are written as 256-colour PNGs that still show what the figure drew."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from benchmarks.figures import save_figure  # noqa: E402


def test_a_saved_figure_is_a_smaller_palette_png_of_the_same_picture(tmp_path: Path) -> None:
    """Catches a no-op (an RGBA PNG as before), a wrong resolution (dpi dropped), a garbled palette (colours off),
    and a file bigger than matplotlib's own."""
    depth = np.random.default_rng(0).uniform(0.5, 7.0, (120, 160))
    fig, axes = plt.subplots(1, 2, figsize=(6, 2))
    axes[0].imshow(depth, cmap="turbo")
    axes[1].imshow(np.random.default_rng(1).uniform(0, 1, (120, 160, 3)))
    plain, small = tmp_path / "plain.png", tmp_path / "sub" / "small.png"
    fig.savefig(plain, dpi=80)
    save_figure(fig, small, dpi=80)
    plt.close(fig)
    reference, written = Image.open(plain), Image.open(small)
    assert written.mode == "P" and written.size == reference.size == (480, 160)

    def blocks(image: Image.Image) -> np.ndarray:  # dithering moves single pixels, not 4x4 means
        return np.asarray(image.convert("RGB"), float).reshape(40, 4, 120, 4, 3).mean(axis=(1, 3))

    error = np.abs(blocks(written) - blocks(reference))
    assert error.mean() < 2.0 and np.quantile(error, 0.99) < 16.0, (error.mean(), np.quantile(error, 0.99))
    assert small.stat().st_size < plain.stat().st_size
