"""Training patches carry the Kinect corruption of their whole frame, at the sensor's scale."""

from __future__ import annotations

import numpy as np

from data_converters.synthetic.kinect_noise import KinectNoiseModel, projector_shadow
from diffnerf_ns.prior.patches import RGBDPatchDataset
from diffnerf_ns.prior.sources import TrainingFrame

FX, BASELINE, PATCH = 400.0, 0.075, 48
SHADOW_ONLY = KinectNoiseModel(
    baseline_m=BASELINE,
    disparity_sigma=0.0,
    correlated_sigma=0.0,
    ir_threshold=0.0,
    glancing_cos=0.0,
    edge_fattening=0.0,
    edge_dropout=0.0,
    blob_dropout=0.0,
)
"""Only the projector shadow is left, so every hole is geometry the full frame dictates."""


def _frame(raw: np.ndarray | None = None) -> TrainingFrame:
    """A wall at 3 m behind a 40 px wide pillar at 1 m; RGB channel 0 holds each pixel's column index."""
    width = 200
    depth = np.full((PATCH, width), 3.0, np.float32)
    depth[:, 90:130] = 1.0
    rgb = np.zeros((PATCH, width, 3), np.uint8)
    rgb[..., 0] = np.arange(width, dtype=np.uint8)
    rgb[..., 1] = 128
    K = np.array([[FX, 0.0, width / 2], [0.0, FX, PATCH / 2], [0.0, 0.0, 1.0]])
    return TrainingFrame(rgb, depth, "pillar", raw, K)


def _columns(item: dict) -> np.ndarray:
    """The source frame's column of every crop column, read back from the encoded RGB."""
    return np.round((item["x"][0, 0].numpy() + 1.0) * 0.5 * 255).astype(int)


def test_crop_holes_equal_the_full_frame_shadow_at_each_pixel() -> None:
    """Every crop's holes are exactly the whole frame's projector shadow at those pixels (20 px wide here).

    Catches corruption applied to the 48 px crop alone: its default focal length is the crop's width
    (~44 px instead of 400), so the shadow shrinks to ~2 px, and a shadow cast by an edge just outside
    the crop vanishes. Also catches mirroring after corruption (shadow on the wrong side of the pillar).
    """
    frame = _frame()
    shadow = projector_shadow(frame.depth, FX, BASELINE)[0]
    mirrored_shadow = projector_shadow(frame.depth[:, ::-1], FX, BASELINE)[0][::-1]
    assert shadow.sum() == round(FX * BASELINE * (1 / 1.0 - 1 / 3.0)) == 20
    assert shadow[70:90].all() and mirrored_shadow[130:150].all()

    ds = RGBDPatchDataset([frame], PATCH, length=96, cond_drop_prob=0.0, noise_model=SHADOW_ONLY, crops_per_frame=8)
    full, partial, mirrored = 0, 0, 0
    for i in range(len(ds)):
        item = ds[i]
        cols = _columns(item)
        is_mirrored = bool(cols[0] > cols[-1])
        expected = (mirrored_shadow if is_mirrored else shadow)[cols]
        holes = item["cond"][1].numpy() == 0
        np.testing.assert_array_equal(holes, np.broadcast_to(expected, holes.shape), err_msg=f"item {i}")
        mirrored += is_mirrored
        full += int(expected.sum() == 20)
        partial += int(0 < expected.sum() < 20)
    assert full >= 5 and partial >= 5 and 20 <= mirrored <= 76  # the draw covered both cases and both sides


def test_sensor_raw_is_cropped_as_measured_never_mirrored() -> None:
    """A source's own raw depth is cropped where the target is and never mirrored or re-corrupted.

    Catches a mirrored real frame (its projector shadows would land on the wrong side) and crops of raw
    and target taken at different places.
    """
    frame = _frame()
    raw = frame.depth.copy()
    raw[:, 10:30] = 0.0  # the sensor's own hole
    ds = RGBDPatchDataset(
        [TrainingFrame(frame.rgb, frame.depth, "pillar", raw, frame.K)], PATCH, length=64, cond_drop_prob=0.0
    )
    for i in range(len(ds)):
        item = ds[i]
        cols = _columns(item)
        np.testing.assert_array_equal(cols, np.arange(cols[0], cols[0] + PATCH))
        np.testing.assert_array_equal(item["cond"][1].numpy()[0] == 0, raw[0, cols] == 0)
