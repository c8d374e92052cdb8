"""One owner for the split between frames that train a prior and frames that anything is scored on."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest

from benchmarks import bench_prior_refine, nerf_scenes
from diffnerf_ns import data_split
from diffnerf_ns.prior.sources import sun3d_frames


def _fragment(name: str) -> str:
    return next(part for part in Path(name).parts if part.startswith("fragment-"))


def test_prior_training_and_every_benchmark_sit_on_opposite_sides(fixtures_dir: Path) -> None:
    """Catches a benchmark scoring frames the prior trains on: the NeRF benchmark's SUN3D scene was the
    prior's training fragment, and a swapped side in `sun3d_frames` or the refinement bench would repeat it."""
    training = [f.name for f in sun3d_frames(fixtures_dir / "sun3d_study_100", "train")]
    assert {_fragment(n) for n in training} == {data_split.sun3d_group("prior")}
    cases, _ = bench_prior_refine.real_cases(fixtures_dir, 3)
    scored = [c.name.removeprefix("SUN3D ") for c in cases if c.name.startswith("SUN3D")]
    assert len(scored) == 3 and {_fragment(n) for n in scored} == {data_split.sun3d_group("scored")}
    assert inspect.signature(nerf_scenes.sun3d_scene).parameters["role"].default == "scored"
    data_split.check_disjoint([Path(n).name for n in training], [Path(n).name for n in scored])


def test_check_disjoint_names_the_shared_frame() -> None:
    """Catches a check that passes overlapping lists (an empty intersection test that never fires)."""
    data_split.check_disjoint(["a", "b"], ["c"])
    with pytest.raises(ValueError, match="first: b"):
        data_split.check_disjoint(["a", "b"], ["b", "c"])
