"""Which real frames may train a prior, and which frames anything is scored on: the one place that decides.

A figure means nothing if the prior behind it saw the frames it is scored on. So every prior (the shipped
one, the development checkpoint, anything `benchmarks/train_default_prior.py` trains) draws real frames from
the `PRIOR` side only, and every benchmark (depth refinement, the NeRF benchmark, meshes) scores on the
`SCORED` side only. Development studies that choose defaults (`benchmarks/study_defaults.py`) use the
`PRIOR` side too: tuning on scored frames is tuning to the benchmark.

- SUN3D study fixture (3DMatch layout, two fragments of one room): fragment 1 trains, fragment 2 is scored.
  Its first frame's hole mask may still lend its shape to hiding pixels on fragment 2 (a shape, not a score).
- NYU labeled set: the official `splits.mat` train indices may train (`diffnerf-prior train --splits`), the
  test indices are scored.
- Synthetic: the procedural corpus's `train` rooms train, its `heldout` rooms are scored (their seeds never
  overlap: `data_converters/synthetic/corpus.py`); the demo room trains on trajectory seed 1, scores seed 7.
- Validation (choosing a setting such as refinement's strength): the `prior` side above, plus the single
  real frames in `VALIDATION_FRAMES`, which neither train a prior nor are scored.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

Role = Literal["prior", "scored"]

EVAL_INTERVAL = 8
"""Every 8th frame of a scene is held out for evaluation (the NeRF convention, REFERENCE §3): the rgbd
dataparser's default and the NeRF benchmark's views both use it."""

SUN3D_GROUPS: dict[Role, str] = {"prior": "fragment-1-rgbd-frames", "scored": "fragment-2-rgbd-frames"}
"""3DMatch-layout group (folder) of the SUN3D study fixture on each side of the split."""


VALIDATION_FRAMES: dict[str, str] = {"TUM": "other_sensors", "SUN RGB-D": "other_sensors"}
"""Real frames (name -> fixture folder) that no prior trains on and no benchmark scores: unseen real data on
which settings may be chosen."""

CALIBRATION_CORPUS_SEED = 1
"""Procedural-corpus seed of the `train`-split rooms that calibrate a prior's intervals: same generator as its
training rooms (seed 0), rooms it never saw, and not the `heldout` rooms the benchmark scores."""


def sun3d_group(role: Role) -> str:
    """The SUN3D fixture's fragment folder that may be used for `role`."""
    return SUN3D_GROUPS[role]


def check_disjoint(training: Iterable[str], scored: Iterable[str]) -> None:
    """Raise when a frame is on both sides (by name); call it wherever both lists are at hand."""
    shared = sorted(set(training) & set(scored))
    if shared:
        raise ValueError(
            f"{len(shared)} frame(s) both train the prior and are scored (first: {shared[0]}); "
            "diffnerf_ns/data_split.py says which side each source is on"
        )
