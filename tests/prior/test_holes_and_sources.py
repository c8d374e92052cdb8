"""Realistic hidden-pixel masks and the training-frame sources built on them."""

from __future__ import annotations

import itertools

import cv2
import numpy as np
import pytest

from diffnerf_ns.prior.holes import realistic_hole_mask
from diffnerf_ns.prior.sources import TrainingFrame, iter_corpus, self_supervised, sun3d_frames


def step_scene(h: int = 120, w: int = 160) -> tuple[np.ndarray, np.ndarray]:
    """A far wall (4 m) with a near box (1.2 m) on the right half, uniform grey, a few real holes."""
    depth = np.full((h, w), 4.0)
    depth[:, w // 2 :] = 1.2
    depth[::7, ::11] = 0.0
    return depth, np.full((h, w, 3), 128, np.uint8)


def test_masks_hide_only_valid_pixels_in_the_requested_fraction() -> None:
    """Catches hiding real holes (no reference there) or a budget off by the valid-pixel count."""
    depth, rgb = step_scene()
    valid = depth > 0
    for seed in range(6):
        mask = realistic_hole_mask(depth, rgb, np.random.default_rng(seed), fraction=(0.08, 0.12))
        assert not (mask & ~valid).any()
        assert 0.05 < mask.sum() / valid.sum() < 0.16
    with pytest.raises(ValueError, match="no valid pixel"):
        realistic_hole_mask(np.zeros((8, 8)), np.zeros((8, 8, 3), np.uint8), np.random.default_rng(0))


def test_shadow_strips_sit_on_the_far_side_left_of_near_edges() -> None:
    """Catches strips on the near surface or on the wrong side of the edge (projector on -x)."""
    depth, rgb = step_scene()
    hits_far = hits_near = 0.0
    for seed in range(8):
        mask = realistic_hole_mask(depth, rgb, np.random.default_rng(seed))
        hits_far += mask[:, 70:80].mean()  # background just left of the near box's edge at column 80
        hits_near += mask[:, 80:90].mean()
    assert hits_far > 4 * hits_near and hits_far / 8 > 0.3


def test_blobs_prefer_dark_surfaces() -> None:
    """Catches masks that ignore the image (dark surfaces drop out most on a real Kinect)."""
    depth = np.full((120, 160), 2.0)
    rgb = np.full((120, 160, 3), 200, np.uint8)
    rgb[:, :80] = 15
    dark = bright = 0.0
    for seed in range(6):
        mask = realistic_hole_mask(depth, rgb, np.random.default_rng(seed))
        dark, bright = dark + mask[:, :80].mean(), bright + mask[:, 80:].mean()
    assert dark > 2 * bright


def test_self_supervised_hides_valid_sensor_pixels_and_keeps_them_as_target(fixtures_dir) -> None:
    """Catches a target that lost the hidden pixels (nothing to learn) or conditioning that still shows them."""
    root = fixtures_dir / "nyu_labeled_frame"
    rgb = cv2.cvtColor(cv2.imread(str(root / "images.png")), cv2.COLOR_BGR2RGB)
    raw = cv2.imread(str(root / "rawdepth.png"), cv2.IMREAD_UNCHANGED).astype(np.float32) / 1000.0
    frame = TrainingFrame(rgb, np.full_like(raw, 2.0), "nyu", raw)  # filled depth must not be the target
    out = next(self_supervised([frame], seed=0))
    np.testing.assert_array_equal(out.depth, raw)
    hidden = (raw > 0) & (out.raw == 0)
    assert 0.04 < hidden.sum() / (raw > 0).sum() < 0.2
    np.testing.assert_array_equal(out.raw[~hidden], raw[~hidden])
    again = next(self_supervised([frame], seed=1))
    assert not np.array_equal(again.raw, out.raw)


def test_corpus_source_gives_exact_target_and_kinect_raw() -> None:
    """Catches target and conditioning swapped (the prior would learn to reproduce holes)."""
    frames = list(iter_corpus(1, 2, 48, 36, seed=2))
    assert len(frames) == 2 and frames[0].rgb.shape == (36, 48, 3)
    for f in frames:
        assert (f.depth > 0).all() and (f.raw == 0).any()


def test_sun3d_trains_on_fragment_1_and_keeps_fragment_2(fixtures_dir) -> None:
    """Catches test frames leaking into training (or the reverse)."""
    pytest.importorskip("data_converters.layouts.threedmatch", reason="3DMatch reader not merged yet")
    root = fixtures_dir / "sun3d_study_100"
    train = list(itertools.islice(sun3d_frames(root, "train"), 3))
    test = list(itertools.islice(sun3d_frames(root, "test"), 3))
    assert all("fragment-1" in f.name for f in train) and all("fragment-2" in f.name for f in test)
    depth = train[0].depth
    assert depth.shape == (480, 640) and 1.0 < np.median(depth[depth > 0]) < 6.0  # millimetres read as metres
