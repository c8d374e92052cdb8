"""The Kinect model against the sensor's geometry and disparity arithmetic, not against its own output."""

from __future__ import annotations

import numpy as np
import pytest

from data_converters.nyu.calibration import RAW_A, RAW_INVALID, metres_to_raw, raw_to_metres
from data_converters.synthetic.kinect_noise import KinectNoiseModel, misregister, projector_shadow

FX = 580.0
K = np.array([[FX, 0, 320.0], [0, FX, 240.0], [0, 0, 1]])
FACING = np.broadcast_to(np.array([0.0, 0.0, -1.0]), (480, 640, 3))


def quiet(**changes: float) -> KinectNoiseModel:
    """A model with every random effect off, so one effect can be tested alone."""
    params = dict(
        disparity_sigma=0.0, correlated_sigma=0.0, ir_softness=0.0, ir_threshold=0.0, glancing_cos=0.0,
        edge_fattening=0.0, edge_dropout=0.0, blob_dropout=0.0, misregistration_px=0.0,
    )  # fmt: skip
    params.update(changes)
    return KinectNoiseModel(**params)


@pytest.mark.parametrize("near, far", [(1.0, 3.0), (1.5, 2.5)])
def test_shadow_lies_left_of_a_near_object_with_the_geometric_width(near: float, far: float) -> None:
    """Catches a shadow on the wrong side (projector on -x), a missing baseline/focal factor, or 1/z vs z.

    Projector 7.5 cm along +x: a near surface on the right hides `fx * b * (1/near - 1/far)` background
    columns just left of its edge; a near surface on the left casts no visible shadow.
    """
    depth = np.full((4, 200), far)
    depth[:, 120:] = near
    shadow = projector_shadow(depth, FX, 0.075)
    width = FX * 0.075 * (1 / near - 1 / far)
    cols = np.flatnonzero(shadow[0])
    assert cols.max() == 119 and abs(len(cols) - width) <= 1.0
    assert not shadow[:, 120:].any()
    mirrored = projector_shadow(depth[:, ::-1], FX, 0.075)  # near object on the left now
    assert not mirrored.any()
    assert np.array_equal(projector_shadow(depth[:, ::-1], FX, -0.075)[:, ::-1], shadow)


def test_shadow_in_the_full_model_marks_raw_invalid_left_of_a_box() -> None:
    """Catches `corrupt_raw` ignoring the shadow or computing it for the wrong intrinsics."""
    depth = np.full((480, 640), 3.0)
    depth[200:300, 300:400] = 1.2
    raw = quiet().corrupt_raw(depth, None, np.random.default_rng(0), K=K, normals=FACING)
    width = int(FX * 0.075 * (1 / 1.2 - 1 / 3.0))
    assert (raw[200:300, 300 - width + 1 : 300] == RAW_INVALID).all()
    assert (raw[200:300, 400 : 400 + width] != RAW_INVALID).all()  # right of the box: lit
    assert (raw[:190] != RAW_INVALID).all()


def test_registered_depth_has_wide_shadows_left_and_thin_occlusions_right() -> None:
    """Catches registered depth modelled from the IR camera's viewpoint (no right-hand occlusion) or a flipped
    depth-to-RGB offset: in the RGB frame the projector is 5 cm right and the IR camera 2.5 cm left."""
    depth = np.full((480, 640), 3.0)
    depth[200:300, 300:400] = 1.2
    geometry = KinectNoiseModel.registered_to_rgb()
    model = quiet(baseline_m=geometry.baseline_m, ir_camera_offset_m=geometry.ir_camera_offset_m)
    holes = model.corrupt_raw(depth, None, np.random.default_rng(0), K=K, normals=FACING) == RAW_INVALID
    left, right = holes[250, :300][::-1], holes[250, 400:]
    run = lambda h: int(np.argmin(h)) if not h.all() else len(h)  # noqa: E731
    assert abs(run(left) - FX * 0.050 * (1 / 1.2 - 1 / 3.0)) <= 1.5
    assert abs(run(right) - FX * 0.025 * (1 / 1.2 - 1 / 3.0)) <= 1.5


def test_quantisation_is_integer_disparity_with_d_squared_steps() -> None:
    """Catches rounding metres instead of disparity, or wrong 1092.5 / 351.3 constants."""
    depth = np.linspace(1.0, 6.0, 640)[None].repeat(8, 0)
    raw = quiet().corrupt_raw(depth, None, np.random.default_rng(0), K=K, normals=FACING[:8])
    np.testing.assert_array_equal(raw, np.round(1092.5 - 351.3 / depth).astype(np.uint16))
    levels = np.unique(raw_to_metres(raw))
    near4 = levels[np.argmin(np.abs(levels - 4.0))]
    step = levels[np.searchsorted(levels, near4) + 1] - near4
    assert step == pytest.approx(4.0**2 / RAW_A, rel=0.05)  # 4.5 cm at 4 m
    fine = np.linspace(1.0, 1.05, 640)[None]  # finer than the steps near 1 m
    near_levels = np.unique(quiet().corrupt(fine, None, np.random.default_rng(0), K=K, normals=FACING[:1]))
    assert np.median(np.diff(near_levels)) == pytest.approx(1.0**2 / RAW_A, rel=0.1)  # 2.8 mm at 1 m


def test_depth_noise_grows_with_the_square_of_depth() -> None:
    """Catches noise added in metres (flat with depth) or proportional to depth (4x instead of 16x)."""
    model = quiet(disparity_sigma=0.6, correlated_sigma=0.3)
    stds = []
    for d in (1.0, 2.0, 4.0):
        depth = np.full((240, 320), d)
        out = model.corrupt(depth, None, np.random.default_rng(1), K=K, normals=FACING[:240, :320])
        stds.append(float(out[out > 0].std()))
    assert stds[1] / stds[0] == pytest.approx(4.0, rel=0.25)
    assert stds[2] / stds[0] == pytest.approx(16.0, rel=0.25)
    expected = np.hypot(0.6, 0.3) * 2.0**2 / RAW_A  # disparity sigma times dz/draw = d^2 / 351.3
    assert stds[1] == pytest.approx(expected, rel=0.25)


def test_dark_far_and_glancing_surfaces_drop_out() -> None:
    """Catches dropouts that ignore albedo, distance or incidence (e.g. albedo taken from the wrong array)."""
    model = quiet(ir_threshold=0.005, ir_softness=0.3, glancing_cos=0.12)
    rng = np.random.default_rng(2)
    depth = np.full((120, 160), 3.0)
    K_small = np.array([[145.0, 0, 80], [0, 145.0, 60], [0, 0, 1]])
    facing = FACING[:120, :160]
    albedo = np.full((120, 160), 0.6)
    albedo[:, 80:] = 0.02

    def holes(d: np.ndarray, normals: np.ndarray) -> np.ndarray:
        return model.corrupt_raw(d, None, rng, K=K_small, albedo=albedo, normals=normals) == RAW_INVALID

    h = holes(depth, facing)
    assert h[:, 80:].mean() > 0.9 and h[:, :80].mean() < 0.05  # black cloth at 3 m vs a pale wall
    assert holes(np.full((120, 160), 1.0), facing)[:, 80:].mean() < 0.5  # black cloth up close: mostly seen
    sideways = np.broadcast_to(np.array([1.0, 0.0, 0.0]), (120, 160, 3))  # plane seen edge-on at the centre
    assert holes(depth, sideways)[:, 70:90].mean() > 0.9


def test_misregistration_shifts_without_inventing_values() -> None:
    """Catches an interpolating warp (blends raw across edges) or a shift in the wrong direction."""
    raw = np.arange(48 * 64, dtype=np.uint16).reshape(48, 64) % 1000 + 600
    moved = misregister(raw, (2.0, -1.0), 1.0)
    np.testing.assert_array_equal(moved[5:40, 10:50], raw[6:41, 8:48])
    assert set(np.unique(moved)) <= set(np.unique(raw)) | {RAW_INVALID}
    model = KinectNoiseModel(misregistration_px=1.5)
    a = model.corrupt_raw(np.full((48, 64), 2.0), None, np.random.default_rng(3))
    b = model.corrupt_raw(np.full((48, 64), 2.0), None, np.random.default_rng(3))
    np.testing.assert_array_equal(a, b)  # deterministic given the generator


def test_out_of_range_and_invalid_input_become_holes() -> None:
    """Catches near (< 0.71 m, raw < 600) or missing depth stored as a valid raw value."""
    depth = np.array([[0.0, 0.5, 0.8, 2.0, 12.0, np.inf]])
    raw = quiet().corrupt_raw(depth, None, np.random.default_rng(0), K=K, normals=FACING[:1, :6])
    assert list(raw[0] == RAW_INVALID) == [True, True, False, False, True, True]
    assert raw[0, 3] == round(float(metres_to_raw(2.0)))


def test_dropouts_come_in_blobs_not_salt() -> None:
    """Catches per-pixel (salt) dropouts: real Kinect holes are connected blobs, which a refiner must learn to fill."""
    from scipy import ndimage

    model = KinectNoiseModel()
    K_half = np.array([[FX / 2, 0, 160.0], [0, FX / 2, 120.0], [0, 0, 1]])
    albedo = np.full((240, 320), 0.35)  # a grey wall at 5 m: a weak IR return, partly lost
    raw = model.corrupt_raw(np.full((240, 320), 5.0), None, np.random.default_rng(4), K=K_half, albedo=albedo)
    holes = raw == RAW_INVALID
    labels, _ = ndimage.label(holes, structure=np.ones((3, 3)))
    areas = np.bincount(labels.ravel())[1:]
    assert 0.03 < holes.mean() < 0.4
    assert areas[areas >= 10].sum() > 0.8 * areas.sum()


def test_demo_scene_with_kinect_noise_stores_quantised_holed_depth(tmp_path) -> None:
    """Catches a generator bypassing the shared model (unquantised or hole-free depth) or still claiming truth."""
    import json

    from data_converters.nerfstudio_scene import load_scene
    from data_converters.synthetic.demo_scene import make_demo_scene

    scene_dir = make_demo_scene(tmp_path / "demo", 3, 64, 48, kinect_noise=KinectNoiseModel.registered_to_rgb()).parent
    scene = load_scene(scene_dir)
    depth = np.stack([scene.depth(i) for i in range(len(scene.image_paths))])
    assert 0.01 < (depth == 0).mean() < 0.4
    raw = metres_to_raw(depth[depth > 0])
    assert np.abs(raw - np.round(raw)).max() < 0.25  # on the 11-bit disparity grid (up to mm PNG rounding)
    assert json.loads((scene_dir / "metadata.json").read_text())["ground_truth"] is False
