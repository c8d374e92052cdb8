"""The procedural corpus: exact geometry, variety, determinism and disjoint train / held-out rooms."""

from __future__ import annotations

import numpy as np
import pytest

from data_converters.synthetic.corpus import CorpusFrame, corpus_frames
from data_converters.synthetic.corpus_rooms import make_room, room_rng


@pytest.fixture(scope="module")
def frames() -> list[CorpusFrame]:
    return list(corpus_frames(3, 2, 64, 48, seed=5))


def test_depth_lies_on_the_room_surfaces(frames: list[CorpusFrame]) -> None:
    """Catches ray distance stored as z-depth, a wrong K convention, or a missed primitive hit.

    Back-projecting every pixel with K (pixel centres at +0.5) and c2w must land on a surface: the
    room's independent distance function (`clearance`) is ~0 there.
    """
    for f in frames:
        room = make_room(room_rng(5, "train", f.room))
        v, u = np.mgrid[0 : f.depth.shape[0] : 5, 0 : f.depth.shape[1] : 5]
        z = f.depth[v, u]
        rays = np.stack([(u + 0.5 - f.K[0, 2]) / f.K[0, 0], (v + 0.5 - f.K[1, 2]) / f.K[1, 1], np.ones_like(z)], -1)
        points = (rays * z[..., None]).reshape(-1, 3) @ f.c2w[:3, :3].T + f.c2w[:3, 3]
        gaps = np.abs([room.clearance(p) for p in points])
        assert np.median(gaps) < 1e-6 and np.quantile(gaps, 0.99) < 1e-3, f.name


def test_normals_are_unit_and_face_the_camera(frames: list[CorpusFrame]) -> None:
    """Catches world-frame normals returned as camera-frame ones, or back-facing normals."""
    f = frames[0]
    h, w = f.depth.shape
    u, v = np.meshgrid(np.arange(w) + 0.5, np.arange(h) + 0.5)
    rays = np.stack([(u - f.K[0, 2]) / f.K[0, 0], (v - f.K[1, 2]) / f.K[1, 1], np.ones_like(u)], -1)
    np.testing.assert_allclose(np.linalg.norm(f.normals, axis=-1), 1.0, atol=1e-4)
    assert ((f.normals * rays).sum(-1) < 0).all()


def test_raw_is_a_kinect_observation_of_the_clean_depth(frames: list[CorpusFrame]) -> None:
    """Catches raw that is not corrupted (no holes), or corrupted far beyond Kinect noise."""
    holes = np.mean([(f.raw == 0).mean() for f in frames])
    assert 0.01 < holes < 0.35
    for f in frames:
        valid = (f.raw > 0) & (f.depth > 0)
        rel = np.abs(f.raw[valid] - f.depth[valid]) / f.depth[valid]
        assert np.median(rel) < 0.02


def test_same_seed_same_frames_and_held_out_rooms_differ() -> None:
    """Catches hidden global randomness, and held-out rooms drawn from the training stream."""
    a = next(corpus_frames(1, 1, 32, 24, seed=3))
    b = next(corpus_frames(1, 1, 32, 24, seed=3))
    np.testing.assert_array_equal(a.rgb, b.rgb)
    np.testing.assert_array_equal(a.raw, b.raw)
    train = [make_room(room_rng(0, "train", i)) for i in range(8)]
    held = [make_room(room_rng(0, "heldout", i)) for i in range(8)]
    sizes = {tuple(np.round(r.hi - r.lo, 6)) for r in train}
    assert not sizes & {tuple(np.round(r.hi - r.lo, 6)) for r in held}
    with pytest.raises(ValueError, match="split"):
        room_rng(0, "test", 0)  # type: ignore[arg-type]


def test_rooms_are_varied() -> None:
    """Catches a generator stuck on one box room with axis-aligned boxes (today's single demo room)."""
    rooms = [make_room(room_rng(1, "train", i)) for i in range(12)]
    full_height_blocks = [sum(b.half[2] * 2 >= r.hi[2] - 1e-9 for b in r.boxes) for r in rooms]
    assert any(n > 0 for n in full_height_blocks) and any(n == 0 for n in full_height_blocks)  # L/alcove and box
    assert sum(len(r.cylinders) for r in rooms) > 0
    rotations = [np.asarray(b.rotation) for r in rooms for b in r.boxes]
    yawed = [R for R in rotations if abs(R[0, 1]) > 0.05 and abs(R[0, 1]) < 0.95]
    tilted = [R for R in rotations if abs(R[2, 2]) < 0.99]
    thin = [b for r in rooms for b in r.boxes if min(b.half) <= 0.03]
    assert yawed and tilted and thin
    albedos = np.array([m.color for r in rooms for m in r.materials]).mean(1)
    assert albedos.min() < 0.1 and albedos.max() > 0.6
    assert len({m.pattern for r in rooms for m in r.materials}) >= 4
    assert len({tuple(np.round(r.hi - r.lo, 3)) for r in rooms}) == len(rooms)


def test_written_corpus_reads_back_the_same_frames(tmp_path) -> None:
    """Catches shards that lose precision beyond 1 mm, mix up rooms/views (parallel writers), or a half-written
    folder read as done."""
    from data_converters.synthetic.corpus import read_corpus, write_corpus

    out = write_corpus(tmp_path / "c", 2, 2, 40, 30, seed=4, split="heldout", workers=2, progress=False)
    back = list(read_corpus(out))
    direct = list(corpus_frames(2, 2, 40, 30, seed=4, split="heldout"))
    assert [(f.room, f.view, f.split) for f in back] == [(f.room, f.view, f.split) for f in direct]
    for a, b in zip(back, direct, strict=True):
        np.testing.assert_array_equal(a.rgb, b.rgb)
        np.testing.assert_array_equal(a.raw, b.raw)
        np.testing.assert_allclose(a.depth, b.depth, atol=5.1e-4)
        np.testing.assert_allclose(a.c2w, b.c2w)
    (out / "corpus.json").unlink()
    with pytest.raises(FileNotFoundError, match="corpus.json"):
        next(read_corpus(out))
