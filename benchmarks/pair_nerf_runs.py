"""Paired differences between two sides of stored bench_nerf runs: the same scene, setting and seed, one method
or one flag apart.

A seed moves a few-view room by up to several dB (docs/benchmarks.md), so a variant is
judged by its per-pair differences, not by the difference of two means. Each side is bench_nerf's flags plus one
method. Every run's stored result is found as bench_nerf finds it (`Bench.plan_jobs`, `Bench.result_path`), so
a run that is missing or stale is listed as such, never trained here.

    python -m benchmarks.pair_nerf_runs --flags="--scenes room1 room2 room3 sun3d --settings few3 few6 --seeds 0 1 2
        ... --store benchmarks/results/nerf_runs --prior diffnerf_ns/prior/pretrained" \\
        --a diffnerf-reg --a-flags="--regulariser-patch-sample-fraction 1.0" --b diffnerf-reg \\
        --report benchmarks/results/nerf_reg_frac05_paired.md
"""

from __future__ import annotations

import shlex
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
import tyro

from benchmarks.bench_nerf import Bench
from benchmarks.nerf_report import scene_group

Cell = tuple[str, str, int]
"""(scene, setting, seed)."""


@dataclass
class Pairing:
    """Pair side B's runs with side A's."""

    flags: str
    """bench_nerf flags both sides share (scenes, settings, seeds, budget, workdir, store, prior), without --methods;
    pass them as `--flags="..."` (a value that starts with `--` needs the `=`)."""
    a: str = "diffnerf-no-prior"
    """Side A's method (the reference)."""
    b: str = "diffnerf-reg"
    """Side B's method."""
    a_flags: str = ""
    """Further bench_nerf flags of side A only."""
    b_flags: str = ""
    """Further bench_nerf flags of side B only."""
    report: Path | None = None
    """Markdown report (printed either way)."""


class Pair(NamedTuple):
    cell: Cell
    a: dict
    b: dict

    @property
    def psnr_gain(self) -> float:
        """B's PSNR minus A's (dB)."""
        return self.b["psnr"] - self.a["psnr"]

    @property
    def abs_rel_ratio(self) -> float:
        """B's depth AbsRel over A's (below 1: B's depth is better)."""
        return self.b["depth_abs_rel"] / self.a["depth_abs_rel"]


def pair_runs(a: dict[Cell, dict | None], b: dict[Cell, dict | None]) -> tuple[list[Pair], list[str]]:
    """Pairs of cells both sides have a current result for, and a line per cell one side lacks."""
    pairs, missing = [], []
    for cell in sorted(set(a) | set(b)):
        lacking = [side for side, runs in (("A", a), ("B", b)) if runs.get(cell) is None]
        if lacking:
            missing.append(f"{cell[0]}/{cell[1]} seed {cell[2]}: no current run on side {' and '.join(lacking)}")
        else:
            pairs.append(Pair(cell, a[cell], b[cell]))
    return pairs, missing


def summary_row(name: str, pairs: list[Pair]) -> str:
    """Markdown row: pairs, mean (min, max) PSNR gain, how many gain, mean (median) AbsRel ratio, how many lower."""
    gain = np.array([p.psnr_gain for p in pairs])
    ratio = np.array([p.abs_rel_ratio for p in pairs])
    return (
        f"| {name} | {len(pairs)} | {gain.mean():+.2f} ({gain.min():+.2f}, {gain.max():+.2f}) | "
        f"{(gain > 0).sum()}/{len(pairs)} | {ratio.mean():.3f} ({np.median(ratio):.3f}) | "
        f"{(ratio < 1).sum()}/{len(pairs)} |"
    )


def summary_table(pairs: list[Pair]) -> str:
    """Per scene group and setting, then per group over settings, then all pairs."""
    by_setting: dict[str, list[Pair]] = {}
    by_group: dict[str, list[Pair]] = {}
    for p in pairs:
        group = scene_group(p.cell[0])
        by_setting.setdefault(f"{group} {p.cell[1]}", []).append(p)
        by_group.setdefault(f"{group}, every setting", []).append(p)
    rows = [summary_row(name, ps) for name, ps in (*by_setting.items(), *by_group.items(), ("all", pairs))]
    return (
        "| pairs of | n | PSNR B - A, dB: mean (min, max) | B higher | AbsRel B / A: mean (median) | B lower |\n"
        "|---|---|---|---|---|---|\n" + "\n".join(rows)
    )


def pair_table(pairs: list[Pair]) -> str:
    lines = [
        "| scene | setting | seed | A PSNR | B PSNR | B - A dB | A AbsRel | B AbsRel | B / A | s/it A, B |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for p in pairs:
        scene, setting, seed = p.cell
        lines.append(
            f"| {scene} | {setting} | {seed} | {p.a['psnr']:.2f} | {p.b['psnr']:.2f} | {p.psnr_gain:+.2f} | "
            f"{p.a['depth_abs_rel']:.3f} | {p.b['depth_abs_rel']:.3f} | {p.abs_rel_ratio:.2f} | "
            f"{p.a['seconds_per_iteration']:.2f}, {p.b['seconds_per_iteration']:.2f} |"
        )
    return "\n".join(lines)


def side(method: str, flags: str) -> str:
    return f"`{method}`" + (f" with `{flags}`" if flags else "")


def stored_runs(flags: list[str], method: str) -> dict[Cell, dict | None]:
    """Each cell's current stored result for `method` under bench_nerf `flags` (None: missing or stale)."""
    bench = tyro.cli(Bench, args=[*flags, "--methods", method])
    _, _, jobs, _ = bench.plan_jobs()
    return {(j.scene, j.setting, j.seed): bench.cached(bench.result_path(j)[1]) for j in jobs}


def main(pairing: Pairing) -> None:
    shared = shlex.split(pairing.flags)
    if "--methods" in shared:
        sys.exit("pair_nerf_runs: --flags must not name --methods; each side's method is --a / --b")
    a = stored_runs(shared + shlex.split(pairing.a_flags), pairing.a)
    b = stored_runs(shared + shlex.split(pairing.b_flags), pairing.b)
    pairs, missing = pair_runs(a, b)
    if not pairs:
        sys.exit("pair_nerf_runs: no cell has a current run on both sides:\n" + "\n".join(missing))
    command = "python -m benchmarks.pair_nerf_runs " + " ".join(shlex.quote(x) for x in sys.argv[1:])
    text = (
        f"# Paired runs: B = {side(pairing.b, pairing.b_flags)} against A = {side(pairing.a, pairing.a_flags)}\n\n"
        f"Command: `{command}`\n\n"
        "Stored bench_nerf results, found as bench_nerf finds them (same flags, inputs, prior, packages and "
        "project sources); nothing was trained by this command. Each pair is one scene, setting and seed.\n\n"
        f"{summary_table(pairs)}\n\n{pair_table(pairs)}\n"
        + ("\nNot paired:\n" + "\n".join(f"- {m}" for m in missing) + "\n" if missing else "")
    )
    print(text)
    if pairing.report is not None:
        pairing.report.write_text(text)


if __name__ == "__main__":
    main(tyro.cli(Pairing))
