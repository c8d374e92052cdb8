"""Depth codec comparison: how many metres one code error means across the indoor range, on real patches.

The denoiser's error lives in code space, so a codec is good when a fixed code error is a small depth
error everywhere the data lives. Measured, not derived: resolution is the autograd derivative of each
candidate's encoder, round trips go through the real encoder/decoder in float32 and bfloat16 (the
mixed-precision training dtype). Candidates:

- disparity `0.4 / d - 1` (the previous codec, DiffusioNeRF's choice);
- log-depth over [0.3, 10] m (`diffnerf_ns.prior.rgbd_codec`, the chosen one);
- per-patch affine: `(d - centre) / half_range` per 48 px patch, scale carried by conditioning. Its
  resolution depends on the patch, so it is measured on real 48 px patches (SUN3D study, NYU labeled).

    python benchmarks/bench_codec.py
"""

from __future__ import annotations

import platform
import shlex
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import tyro
from PIL import Image

from diffnerf_ns.prior.rgbd_codec import decode_depth, encode_depth

CODE_ERROR = 0.01
DEPTHS = (0.301, 0.5, 1.0, 2.0, 3.0, 4.0, 6.0, 8.0, 9.99)
"""Just inside 0.3-10 m: at the clamp ends the derivative is one-sided."""


def disparity_encode(d: torch.Tensor) -> torch.Tensor:
    return 2.0 * (0.2 / d.clamp(min=0.2)) - 1.0


def disparity_decode(code: torch.Tensor) -> torch.Tensor:
    return 0.2 / ((code + 1.0) * 0.5).clamp(min=0.2 / 20.0, max=1.0)


GLOBAL: dict[str, tuple[Callable, Callable]] = {
    "disparity 0.4/d - 1 (previous)": (disparity_encode, disparity_decode),
    "log-depth 0.3-10 m (chosen)": (encode_depth, decode_depth),
}


def metres_per_code_error(encoder: Callable, depth: torch.Tensor) -> torch.Tensor:
    """CODE_ERROR / |d code / d depth|, by autograd through the encoder."""
    d = depth.clone().requires_grad_()
    (grad,) = torch.autograd.grad(encoder(d).sum(), d)
    return CODE_ERROR / grad.abs().clamp(min=1e-12)


def real_patches(fixtures: Path, patch: int = 48) -> list[np.ndarray]:
    """All non-overlapping 48 px patches with >= 90% valid depth from the real fixtures' depth PNGs."""
    paths = sorted((fixtures / "sun3d_study_100").glob("*/frame-*.depth.png"))[::5]
    paths.append(fixtures / "nyu_labeled_frame" / "depth.png")
    patches = []
    for path in paths:
        depth = np.asarray(Image.open(path)).astype(np.float32) / 1000.0
        for y in range(0, depth.shape[0] - patch + 1, patch):
            for x in range(0, depth.shape[1] - patch + 1, patch):
                p = depth[y : y + patch, x : x + patch]
                if (p > 0).mean() >= 0.9:
                    patches.append(p[p > 0])
    return patches


@dataclass
class Bench:
    fixtures: Path = Path(__file__).resolve().parents[1].parent / "shared" / "fixtures"
    out: Path = Path("benchmarks/results/codec.md")


def main(bench: Bench) -> None:
    grid = torch.tensor(DEPTHS)
    lines = [
        "# Depth codec comparison",
        f"Command: `{shlex.join(['python', Path(sys.argv[0]).as_posix(), *sys.argv[1:]])}`; "
        f"machine: {platform.platform()}; torch {torch.__version__}.",
        f"## Depth error (cm) that a code error of {CODE_ERROR} means, by depth",
        "| codec | " + " | ".join(f"{d:g} m" for d in DEPTHS) + " | share of code range for 1-4 m |",
        "|---|" + "---|" * (len(DEPTHS) + 1),
    ]
    for name, (enc, _) in GLOBAL.items():
        step = metres_per_code_error(enc, grid)
        share = float((enc(torch.tensor(1.0)) - enc(torch.tensor(4.0))).abs()) / 2.0
        lines.append(f"| {name} | " + " | ".join(f"{100 * float(s):.2f}" for s in step) + f" | {100 * share:.0f}% |")
    lines += [
        "",
        "## Round trip encode -> decode over 0.3-10 m (10 000 log-spaced depths)",
        "| codec | float32 max rel. error | bfloat16 max rel. error | bfloat16 max abs. error at 4-10 m (cm) |",
        "|---|---|---|---|",
    ]
    dense = torch.logspace(np.log10(0.3), 1.0, 10_000)
    far = dense >= 4.0
    for name, (enc, dec) in GLOBAL.items():
        f32 = ((dec(enc(dense)) - dense).abs() / dense).max()
        bf16_back = dec(enc(dense).bfloat16().float())
        bf16 = ((bf16_back - dense).abs() / dense).max()
        bf16_far = (bf16_back - dense).abs()[far].max()
        lines.append(f"| {name} | {float(f32):.1e} | {float(bf16):.2%} | {100 * float(bf16_far):.1f} |")

    patches = real_patches(bench.fixtures) if bench.fixtures.is_dir() else []
    if patches:
        lines += [
            "",
            f"## On real 48 px depth patches ({len(patches)} patches: SUN3D study every 5th frame + NYU labeled frame)",
            f"Depth error per pixel for a code error of {CODE_ERROR}, pooled over all valid pixels. "
            "Per-patch affine maps each patch's [min, max] to [-1, 1] (half range floored at 5 cm).",
            "| codec | median (cm) | 90th pct (cm) | median relative | 90th pct relative |",
            "|---|---|---|---|---|",
        ]
        depth = torch.from_numpy(np.concatenate(patches))
        rows = {name: metres_per_code_error(enc, depth) for name, (enc, _) in GLOBAL.items()}
        half = [max(0.5 * float(p.max() - p.min()), 0.05) for p in patches]
        rows["per-patch affine (scale in conditioning)"] = torch.cat(
            [torch.full((p.size,), CODE_ERROR * h) for p, h in zip(patches, half, strict=True)]
        )
        for name, err in rows.items():
            rel = err / depth
            q = torch.tensor([0.5, 0.9])
            e, r = torch.quantile(err, q), torch.quantile(rel, q)
            lines.append(f"| {name} | {100 * e[0]:.2f} | {100 * e[1]:.2f} | {100 * r[0]:.2f}% | {100 * r[1]:.2f}% |")
        lines.append(
            f"\nReal patch depths: median {float(depth.median()):.2f} m, "
            f"5-95% {float(torch.quantile(depth, 0.05)):.2f}-{float(torch.quantile(depth, 0.95)):.2f} m."
        )
    else:
        lines.append(f"\nReal patches: fixtures not found at {bench.fixtures}; not run.")
    bench.out.parent.mkdir(parents=True, exist_ok=True)
    bench.out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main(tyro.cli(Bench))
