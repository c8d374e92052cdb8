"""The regulariser cost benchmark times the cadences it names: each variant renders the patches its cadence asks."""

from __future__ import annotations

from pathlib import Path

from benchmarks.bench_reg_cost import CADENCES, CostArgs

PATCH_RAYS = 48 * 48
"""Rays of one patch of the shipped prior (48 px)."""


def test_each_cadence_renders_its_share_of_patches(demo_scene: Path, tmp_path: Path) -> None:
    """Catches cadence flags that never reach the trainer (every variant would render a patch on every step and
    time the same thing), a no-prior baseline that regularises, and a timed window that is not a multiple of the
    cadences (every 4th step would then be over- or under-counted)."""
    rays = 32
    args = CostArgs(
        rays_per_batch=(rays,), warmup=1, iterations=4, repeats=1, scene=demo_scene, workdir=tmp_path,
        out=tmp_path / "cost.md",
    )  # fmt: skip
    rows = args.main()
    assert [row[1] for row in rows] == [None, *CADENCES]
    for _, cadence, seconds, ratio, rays_per_it, _ in rows:
        expected = rays + (0 if cadence is None else PATCH_RAYS / cadence[0])
        assert rays_per_it == expected, (cadence, rays_per_it)
        assert seconds > 0 and ratio > 0
    assert rows[0][3] == 1.0
    assert "| 32 | diffnerf-few-view | 2 | 1.0 |" in (tmp_path / "cost.md").read_text()
