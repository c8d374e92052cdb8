"""Prior pieces that need no training: codec, pipeline folders, score, losses, tiling, fills and bad input."""

from __future__ import annotations

import json
from types import SimpleNamespace
from unittest import mock

import numpy as np
import pytest
import torch
from diffusers import UNet2DModel
from PIL import Image

from diffnerf_ns.prior import refine as refine_module
from diffnerf_ns.prior.baselines import (
    colorization_fill,
    hole_fill,
    joint_bilateral_fill,
    nearest_fill,
    opencv_inpaint,
)
from diffnerf_ns.prior.model import RGBDPrior, make_scheduler
from diffnerf_ns.prior.patches import RGBDPatchDataset, observation_channels
from diffnerf_ns.prior.refine import (
    RefineConfig,
    TiledDenoiser,
    refine_depth,
    start_depth,
    tile_starts,
    tile_weight,
    use_cpu_bfloat16,
)
from diffnerf_ns.prior.rgbd_codec import CODEC_NAME, decode, decode_depth, encode, encode_depth
from diffnerf_ns.prior.sources import frames_from_arrays, frames_from_path
from diffnerf_ns.prior.train import denoising_loss, predicted_x0, sobel

TINY = dict(patch_size=16, block_out_channels=(16, 32), layers_per_block=1, attention=False)


def test_codec_round_trips_across_indoor_range_with_bounded_error() -> None:
    """Round trip within 1e-5 relative over 0.3-10 m, ends at exactly -1/+1, and 0.01 of code <= 2% of depth.

    Catches: a decoder with the wrong log base or range (round trip off), a clamp at the wrong depths
    (ends not at +-1, or near/far values not clamped), and a disparity code (0.01 of code = 10% at 4 m).
    """
    depth = torch.logspace(np.log10(0.3), 1.0, 2000).view(1, 1, 40, 50)
    rgb = torch.rand(1, 3, 40, 50)
    x = encode(rgb, depth)
    assert x.min() >= -1 and x.max() <= 1
    rgb_back, depth_back = decode(x)
    torch.testing.assert_close(rgb_back, rgb)
    assert float(((depth_back - depth).abs() / depth).max()) < 1e-5
    ends = encode_depth(torch.tensor([0.1, 0.3, 10.0, 25.0]))
    torch.testing.assert_close(ends, torch.tensor([-1.0, -1.0, 1.0, 1.0]))
    step = decode_depth(encode_depth(depth) + 0.01) - depth
    assert float((step / depth)[depth < 9.8].max()) < 0.02  # same relative resolution everywhere
    assert float((step / depth)[depth < 9.8].min()) > 0.015  # and not wasted near the camera


def test_codec_is_differentiable() -> None:
    """d code / d depth = 2 / (d ln(10 / 0.3)) inside the range (the regulariser's gradient path); a detach fails."""
    depth = torch.full((1, 1, 2, 2), 2.0, requires_grad=True)
    encode(torch.zeros(1, 3, 2, 2), depth)[:, 3].sum().backward()
    torch.testing.assert_close(depth.grad, torch.full_like(depth, 2 / (2.0 * np.log(10 / 0.3))))


def test_pipeline_folder_round_trip_is_identical(tmp_path) -> None:
    """save_pretrained/from_pretrained via diffusers keep weights, schedule and codec; a lossy save fails."""
    torch.manual_seed(0)
    prior = RGBDPrior.create(**TINY).eval()
    prior.save_pretrained(tmp_path / "p")
    index = json.loads((tmp_path / "p" / "model_index.json").read_text())
    assert index["_class_name"] == "RGBDPrior" and index["depth_codec"] == CODEC_NAME
    assert index["unet"] == ["diffusers", "UNet2DModel"] and index["scheduler"] == ["diffusers", "DDPMScheduler"]
    loaded = RGBDPrior.from_pretrained(tmp_path / "p", patch_size=16)
    x = torch.rand(3, 4, 16, 16) * 2 - 1
    assert torch.equal(prior.score(x, 40), loaded.score(x, 40))
    assert loaded.patch_size == 16 and loaded.num_train_timesteps == 1000
    assert loaded.scheduler.config.beta_schedule == "squaredcos_cap_v2"
    assert loaded.to("cpu") is loaded and loaded.device == torch.device("cpu")


def _cosine_alpha_bar(t: np.ndarray, steps: int = 1000) -> np.ndarray:
    """Nichol and Dhariwal's cosine schedule, computed here independently of diffusers."""
    f = lambda s: np.cos((s / steps + 0.008) / 1.008 * np.pi / 2) ** 2  # noqa: E731
    betas = np.minimum(1 - f(np.arange(1, steps + 1)) / f(np.arange(steps)), 0.999)
    return np.cumprod(1 - betas)[t]


class _ConstantNoise(torch.nn.Module):
    """A stand-in UNet predicting eps = 1 everywhere."""

    def forward(self, sample: torch.Tensor, t: torch.Tensor) -> SimpleNamespace:
        return SimpleNamespace(sample=torch.ones_like(sample[:, :4]))


def test_score_is_minus_eps_over_sqrt_one_minus_alpha_bar() -> None:
    """score = -eps_hat / sqrt(1 - alpha_bar_t), against an independent cosine schedule.

    Catches a missing 1/sqrt(1 - alpha_bar) factor (score = -eps), a sqrt(alpha_bar) in its place,
    the wrong sign, or an off-by-one timestep.
    """
    prior = RGBDPrior.create(**TINY)
    t = np.array([0, 10, 100, 500, 999])
    with mock.patch.object(prior.unet, "forward", _ConstantNoise().forward):
        s = prior.score(torch.zeros(len(t), 4, 16, 16), torch.from_numpy(t))
    expected = -1.0 / np.sqrt(1 - _cosine_alpha_bar(t))
    np.testing.assert_allclose(s[:, :, 0, 0].numpy(), np.repeat(expected[:, None], 4, 1), rtol=1e-3)


def test_score_api_shapes_and_no_graph() -> None:
    """The regulariser's contract: shape and dtype kept, no graph, patch size and timestep checked."""
    prior = RGBDPrior.create(**TINY).eval()
    x = (torch.rand(5, 4, 16, 16) * 2 - 1).requires_grad_()
    s = prior.score(x, torch.tensor([3, 10, 50, 99, 999]))
    assert s.shape == x.shape and not s.requires_grad and s.dtype == x.dtype
    with pytest.raises(ValueError, match="16, 16"):
        prior.score(torch.zeros(1, 4, 24, 24), 10)
    with pytest.raises(ValueError, match="timestep"):
        prior.score(torch.zeros(1, 4, 16, 16), 1000)


def test_bad_prior_folders_are_named(tmp_path) -> None:
    """Missing, old-format, wrong-patch, wrong-channel and wrong-codec priors each fail with a named reason."""
    with pytest.raises(FileNotFoundError, match="not a prior folder"):
        RGBDPrior.from_pretrained(tmp_path / "missing")
    prior = RGBDPrior.create(**TINY)
    prior.save_pretrained(tmp_path / "p16")
    with pytest.raises(ValueError, match="16 px patches, not 48"):
        RGBDPrior.from_pretrained(tmp_path / "p16", patch_size=48)
    prior.unet.save_pretrained(tmp_path / "old" / "unet")  # pre-pipeline layout: unet/ + scheduler/ only
    with pytest.raises(FileNotFoundError, match="before the diffusers-pipeline format"):
        RGBDPrior.from_pretrained(tmp_path / "old")
    index = json.loads((tmp_path / "p16" / "model_index.json").read_text())
    (tmp_path / "p16" / "model_index.json").write_text(json.dumps(index | {"depth_codec": "disparity-0.2"}))
    with pytest.raises(ValueError, match="trained with depth codec 'disparity-0.2'"):
        RGBDPrior.from_pretrained(tmp_path / "p16")
    rgb_only = UNet2DModel(
        sample_size=16,
        in_channels=3,
        out_channels=3,
        block_out_channels=(16, 32),
        norm_num_groups=16,
        layers_per_block=1,
        down_block_types=("DownBlock2D",) * 2,
        up_block_types=("UpBlock2D",) * 2,
    )
    rgb_only.save_pretrained(tmp_path / "rgb" / "unet")
    make_scheduler().save_pretrained(tmp_path / "rgb" / "scheduler")
    (tmp_path / "rgb" / "model_index.json").write_text(json.dumps(index))
    with pytest.raises(ValueError, match="3 input / 3 output channels"):
        RGBDPrior.from_pretrained(tmp_path / "rgb")


def test_bad_depth_and_sizes_are_named() -> None:
    """NaN, all-zero, mismatched and too-small inputs are refused with the problem named, not refined."""
    prior = RGBDPrior.create(**TINY).eval()
    rgb = np.zeros((20, 24, 3), np.uint8)
    depth = np.ones((20, 24), np.float32)
    fast = RefineConfig(steps=2, samples=2)
    with pytest.raises(ValueError, match="NaN"):
        refine_depth(prior, rgb, np.where(depth > 0, np.nan, depth), fast)
    with pytest.raises(ValueError, match="all zero"):
        refine_depth(prior, rgb, np.zeros_like(depth), fast)
    with pytest.raises(ValueError, match="does not match the RGB size"):
        refine_depth(prior, rgb, np.ones((20, 23), np.float32), fast)
    with pytest.raises(ValueError, match="smaller than the 16 px patch"):
        refine_depth(prior, rgb[:10], depth[:10], fast)
    with pytest.raises(ValueError, match="samples must be >= 2"):
        refine_depth(prior, rgb, depth, RefineConfig(steps=2, samples=1))
    with pytest.raises(ValueError, match="all zero"):
        RGBDPatchDataset(frames_from_arrays([rgb], [np.zeros_like(depth)]), 16)


def test_tiles_cover_the_frame_with_positive_weights() -> None:
    """Tiles reach both frame edges, and blend weights never vanish (a zero would divide by zero)."""
    assert tile_starts(48, 16, 5) == [0, 11, 22, 32]
    assert tile_starts(16, 16, 5) == [0]
    w = tile_weight(16, 5)
    assert float(w.min()) > 0 and float(w.max()) == 1.0


def test_tiled_denoiser_has_no_seams() -> None:
    """A per-pixel network blended over overlapping tiles must give exactly its whole-frame answer.

    Catches a missing weight normalisation (overlaps count twice), misplaced tiles, or an uncovered border.
    """
    prior = RGBDPrior.create(**TINY)
    per_pixel = lambda sample, t: SimpleNamespace(sample=torch.tanh(3 * sample[:, :4]) + sample[:, 4:5])  # noqa: E731
    x = torch.rand(2, 4, 37, 53) * 2 - 1
    cond = torch.rand(1, 2, 37, 53)
    denoiser = TiledDenoiser(prior, 37, 53, overlap=5, batch_size=7)
    with mock.patch.object(prior.unet, "forward", per_pixel):
        blended = denoiser(x, torch.tensor(10), denoiser.tiles(cond).repeat(2, 1, 1, 1))
    torch.testing.assert_close(blended, torch.tanh(3 * x) + cond[:, :1], rtol=1e-5, atol=1e-5)


def test_tiled_denoiser_skips_only_tiles_without_a_needed_pixel() -> None:
    """Skipping hole-free tiles must leave every needed pixel's blend exactly as the full frame's.

    The mocked network's answer depends on where a pixel sits in its tile, so a pixel's blend changes
    if any tile covering it is dropped. Catches an off-by-one in the tile/hole intersection (a border
    hole loses a tile), a normalisation over all tiles instead of the kept ones, and a no-op (no tile skipped).
    """
    prior = RGBDPrior.create(**TINY)
    ramp = torch.linspace(0, 1, 16)
    in_tile = lambda sample, t: SimpleNamespace(sample=sample[:, :4] + ramp[None, None, :, None] - ramp)  # noqa: E731
    x = torch.rand(2, 4, 37, 53) * 2 - 1
    needed = torch.zeros(37, 53, dtype=torch.bool)
    needed[3, 4] = needed[20, 10] = needed[11, 27] = needed[36, 52] = True  # 11 and 27 sit on tile borders
    full = TiledDenoiser(prior, 37, 53, overlap=5, batch_size=7)
    skipping = TiledDenoiser(prior, 37, 53, overlap=5, batch_size=7, needed=needed)
    assert 0 < len(skipping.origins) < len(full.origins)
    cond = torch.rand(1, 2, 37, 53)
    with mock.patch.object(prior.unet, "forward", in_tile):
        expected = full(x, torch.tensor(10), full.tiles(cond).repeat(2, 1, 1, 1))
        got = skipping(x, torch.tensor(10), skipping.tiles(cond).repeat(2, 1, 1, 1))
    torch.testing.assert_close(got[..., needed], expected[..., needed], rtol=1e-6, atol=1e-6)
    assert float((expected[..., needed] - x[..., needed]).abs().max()) > 0.05  # the ramp is really there


def test_refinement_keeps_measurements_and_skips_complete_frames() -> None:
    """Measured pixels come back as measured in every sample, and a frame without holes calls no network.

    Catches samples that return the network's (never evaluated) values at measured pixels once hole-free
    tiles are skipped, and wasted sampling of a complete frame.
    """
    prior = RGBDPrior.create(**TINY)
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 255, (20, 24, 3), dtype=np.uint8)
    raw = rng.uniform(1.0, 3.0, (20, 24)).astype(np.float32)
    config = RefineConfig(steps=2, samples=2, precision="float32")
    with mock.patch.object(prior.unet, "forward", side_effect=AssertionError("the UNet ran")):
        np.testing.assert_array_equal(refine_depth(prior, rgb, raw, config).samples, np.stack([raw, raw]))
    raw[2:5, 3:9] = 0
    samples = refine_depth(prior, rgb, raw, config).samples
    np.testing.assert_array_equal(samples[:, raw > 0], np.stack([raw[raw > 0]] * 2))
    assert np.isfinite(samples).all() and (samples[:, raw <= 0] > 0).all()


def test_sdedit_start_takes_the_named_fill_in_holes_and_the_measurement_elsewhere() -> None:
    """Catches a `start` that is ignored (every start the nearest fill), a fill that overwrites measured pixels,
    and an expensive fill computed although strength 1 never uses it."""
    rng = np.random.default_rng(1)
    raw = rng.uniform(1.0, 3.0, (20, 24)).astype(np.float32)
    raw[4:12, 6:14] = 0
    rgb = rng.integers(0, 255, (20, 24, 3), dtype=np.uint8)
    nearest = encode_depth(torch.from_numpy(nearest_fill(raw))[None, None])
    assert start_depth(rgb, raw, "nearest", "nearest", nearest) is nearest
    telea = start_depth(rgb, raw, "telea", "nearest", nearest)[0, 0]
    expected = encode_depth(torch.from_numpy(opencv_inpaint(raw)))
    torch.testing.assert_close(telea[raw <= 0], expected[raw <= 0])
    torch.testing.assert_close(telea[raw > 0], encode_depth(torch.from_numpy(raw))[raw > 0])
    assert float((telea - nearest[0, 0]).abs().max()) > 1e-3
    prior = RGBDPrior.create(**TINY)
    config = RefineConfig(steps=2, samples=2, strength=1.0, start="colorization", precision="float32")
    with mock.patch.dict("diffnerf_ns.prior.baselines.HOLE_FILLS", colorization=mock.Mock(side_effect=AssertionError)):
        refine_depth(prior, rgb, raw, config)


def test_colorization_conditioning_reaches_the_unet_and_is_computed_once() -> None:
    """Catches `RefineConfig.conditioning_fill` ignored (the UNet still sees the nearest fill), and the same
    colorization solved twice when it is both the conditioning and the SDEdit start."""
    rng = np.random.default_rng(2)
    raw = rng.uniform(1.0, 3.0, (20, 24)).astype(np.float32)
    raw[4:12, 6:14] = 0
    rgb = rng.integers(0, 255, (20, 24, 3), dtype=np.uint8)
    colorized = observation_channels(raw, rgb, "colorization")
    torch.testing.assert_close(colorized[0], encode_depth(torch.from_numpy(hole_fill(raw, rgb, "colorization"))))
    assert float((colorized[0] - observation_channels(raw)[0]).abs().max()) > 1e-3
    with pytest.raises(ValueError, match="needs the frame's RGB"):
        observation_channels(raw, None, "colorization")
    prior = RGBDPrior.create(**TINY)
    seen = []
    real_denoiser = refine_module.TiledDenoiser.tiles

    def tiles(self, frame: torch.Tensor) -> torch.Tensor:
        if frame.shape[1] == 2:
            seen.append(frame[0, 0].clone())
        return real_denoiser(self, frame)

    config = RefineConfig(
        steps=4, samples=2, start="colorization", conditioning_fill="colorization", precision="float32"
    )
    calls = mock.Mock(side_effect=colorization_fill)
    with mock.patch.dict("diffnerf_ns.prior.baselines.HOLE_FILLS", colorization=calls):
        with mock.patch.object(refine_module.TiledDenoiser, "tiles", tiles):
            refine_depth(prior, rgb, raw, config)
    assert calls.call_count == 1
    torch.testing.assert_close(seen[0], colorized[0])


def test_cpu_bfloat16_only_where_asked_or_native() -> None:
    """float32 is always honoured, GPUs never autocast to CPU bf16, and `auto` follows the CPU's capability."""
    assert not use_cpu_bfloat16("float32", "cpu")
    assert not use_cpu_bfloat16("bfloat16", "cuda")
    assert use_cpu_bfloat16("bfloat16", "cpu")
    for native in (True, False):
        with mock.patch("diffnerf_ns.prior.refine.cpu_has_native_bfloat16", return_value=native):
            assert use_cpu_bfloat16("auto", "cpu") is native


def test_patch_dataset_is_deterministic_and_in_codec_range() -> None:
    rng = np.random.default_rng(0)
    depth = rng.uniform(1.0, 3.0, (30, 40)).astype(np.float32)
    depth[:, :5] = 0  # holes in the target are never cropped
    ds = RGBDPatchDataset(frames_from_arrays([rng.random((30, 40, 3))], [depth]), 16, length=50, cond_drop_prob=0.5)
    a, b = ds[7], ds[7]
    assert torch.equal(a["x"], b["x"]) and torch.equal(a["cond"], b["cond"])
    items = [ds[i] for i in range(50)]
    assert all(it["x"].abs().max() <= 1 and it["x"][3].min() > -1 for it in items)
    dropped = sum(bool((it["cond"] == 0).all()) for it in items)
    assert 10 < dropped < 40


def test_patch_dataset_conditions_on_the_colorization_of_each_frame_once() -> None:
    """Catches `conditioning_fill` ignored in training, a colorization solved again on every visit of a frame
    with its own raw (seconds per 640x480 frame), and one frame's cached conditioning served for another."""
    rng = np.random.default_rng(3)
    depths = [rng.uniform(1.0, 3.0, (30, 40)).astype(np.float32) for _ in range(2)]
    raws = [d.copy() for d in depths]
    raws[0][5:15, 5:20], raws[1][10:25, 20:35] = 0, 0
    frames = frames_from_arrays([rng.random((30, 40, 3)) for _ in range(2)], depths, raws)
    expected = [observation_channels(f.raw, f.rgb, "colorization") for f in frames]
    calls = mock.Mock(side_effect=colorization_fill)
    ds = RGBDPatchDataset(
        frames, 16, length=400, cond_drop_prob=0.0, crops_per_frame=4, conditioning_fill="colorization"
    )
    with mock.patch.dict("diffnerf_ns.prior.baselines.HOLE_FILLS", colorization=calls):
        prepared = [ds.prepared(group) for group in range(40)]
    assert calls.call_count == 2
    targets = [encode_depth(torch.from_numpy(d)) for d in depths]
    drawn = [next(k for k, t in enumerate(targets) if torch.allclose(p.x[3], t)) for p in prepared]
    assert set(drawn) == {0, 1}
    for p, k in zip(prepared, drawn, strict=True):
        assert torch.equal(p.cond, expected[k])


def test_observation_channels_prefill_holes_and_mark_them() -> None:
    raw = np.array([[1.0, 0.0, 2.0]], np.float32)
    cond = observation_channels(raw)
    torch.testing.assert_close(cond[1], torch.tensor([[1.0, 0.0, 1.0]]))
    assert float(cond[0, 0, 1]) in (float(cond[0, 0, 0]), float(cond[0, 0, 2]))
    assert torch.equal(observation_channels(np.zeros((2, 2), np.float32)), torch.zeros(2, 2, 2))


def test_classical_baselines_fill_every_hole() -> None:
    depth = np.full((20, 30), 2.0, np.float32)
    depth[5:9, 10:14] = 0
    rgb = np.full((20, 30, 3), 128, np.uint8)
    for fill in (
        nearest_fill(depth),
        opencv_inpaint(depth),
        joint_bilateral_fill(depth, rgb),
        colorization_fill(depth, rgb),
    ):
        np.testing.assert_allclose(fill, 2.0, atol=2e-3)


def test_sobel_edge_loss_uses_the_reconstructed_clean_patch() -> None:
    """The Sobel term compares sobel(x0_hat) with sobel(x0), x0_hat = (x_t - sqrt(1 - abar) eps) / sqrt(abar).

    An oracle network that predicts the true noise must give a loss of exactly 0 (any other x0 formula
    leaves an edge error); a network off by a known delta must give the edge term computed here by hand,
    alpha_bar weighting included.
    """
    ramp = torch.arange(8.0).view(1, 1, 1, 8).expand(1, 1, 8, 8)
    grad = sobel(ramp)
    torch.testing.assert_close(grad[0, 0, :, 1:-1], torch.ones(8, 6))  # normalised: the slope itself
    torch.testing.assert_close(grad[0, 1], torch.zeros(8, 8))
    prior = RGBDPrior.create(**TINY)
    gen = torch.Generator().manual_seed(0)
    x0 = torch.rand(4, 4, 16, 16, generator=gen) * 2 - 1
    cond, noise = torch.zeros(4, 2, 16, 16), torch.randn(4, 4, 16, 16, generator=gen)
    delta = 0.1 * torch.randn(4, 4, 16, 16, generator=gen)
    t = torch.tensor([1, 10, 100, 900])
    abar = torch.from_numpy(_cosine_alpha_bar(t.numpy())).float().view(-1, 1, 1, 1)

    def oracle(offset: torch.Tensor):
        def forward(sample: torch.Tensor, timestep: torch.Tensor) -> SimpleNamespace:
            eps = (sample[:, :4] - abar.sqrt() * x0) / (1 - abar).sqrt()
            return SimpleNamespace(sample=eps + offset)

        return forward

    with mock.patch.object(prior.unet, "forward", oracle(torch.zeros_like(delta))):
        exact = denoising_loss(prior, x0, cond, t, noise, sobel_weight=1.0)
    assert float(exact) < 1e-5
    with mock.patch.object(prior.unet, "forward", oracle(delta)):
        off = denoising_loss(prior, x0, cond, t, noise, sobel_weight=2.0)
    x0_error = -(1 - abar).sqrt() / abar.sqrt() * delta
    expected = delta.abs().mean() + 2.0 * (abar * sobel(x0_error).abs()).mean()
    torch.testing.assert_close(off, expected, rtol=1e-4, atol=1e-6)
    x_t = prior.scheduler.add_noise(x0, noise, t)
    torch.testing.assert_close(predicted_x0(x_t, noise, abar), x0, atol=2e-4, rtol=0)


def test_hole_weight_weights_only_depth_at_conditioning_holes() -> None:
    """hole_weight multiplies the depth-channel error at unobserved pixels of conditioned patches only.

    Catches weighting RGB, weighting observed pixels, or weighting unconditional (all-zero) patches.
    """
    prior = RGBDPrior.create(**TINY)
    x0, noise = torch.zeros(2, 4, 16, 16), torch.zeros(2, 4, 16, 16)
    cond = torch.zeros(2, 2, 16, 16)
    cond[0, 1, :, 8:] = 1.0  # patch 0 observed on its right half; patch 1 unconditional
    unit_error = lambda sample, t: SimpleNamespace(sample=torch.ones_like(sample[:, :4]))  # noqa: E731
    t = torch.tensor([5, 5])
    with mock.patch.object(prior.unet, "forward", unit_error):
        plain = denoising_loss(prior, x0, cond, t, noise)
        weighted = denoising_loss(prior, x0, cond, t, noise, hole_weight=3.0)
    holes = 16 * 8  # left half of patch 0, depth channel
    torch.testing.assert_close(weighted - plain, torch.tensor(3.0 * holes / (2 * 4 * 16 * 16)))


def test_colorization_fill_matches_the_nyu_toolbox(fixtures_dir) -> None:
    """Our `fill_depth_colorization` port against the toolbox's own output for a real NYU frame.

    The fixture's depth.png was made by the MATLAB toolbox from rawdepth.png + images.png, an outside
    truth: a wrong affinity (no colour term, wrong csig) or data weight moves hole pixels by centimetres.
    """
    folder = fixtures_dir / "nyu_labeled_frame"
    rgb = np.asarray(Image.open(folder / "images.png").convert("RGB"))
    raw = np.asarray(Image.open(folder / "rawdepth.png")).astype(np.float32) / 1000.0
    toolbox = np.asarray(Image.open(folder / "depth.png")).astype(np.float32) / 1000.0
    holes = raw == 0
    ours = np.abs(colorization_fill(raw, rgb) - toolbox)[holes]
    nearest = np.abs(nearest_fill(raw) - toolbox)[holes]
    assert np.median(ours) < 0.002 and np.percentile(ours, 90) < 0.02, (np.median(ours), np.percentile(ours, 90))
    assert np.median(nearest) > 0.05  # the check can tell fills apart


def test_labeled_mat_frames_are_cropped_with_raw_depth(tmp_path) -> None:
    import h5py

    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 255, (2, 480, 640, 3), dtype=np.uint8)
    depth = rng.uniform(1, 4, (2, 480, 640)).astype(np.float32)
    raw = np.where(rng.random(depth.shape) < 0.1, 0, depth).astype(np.float32)
    path = tmp_path / "nyu_depth_v2_labeled.mat"
    with h5py.File(path, "w") as f:
        f["images"], f["depths"], f["rawDepths"] = (
            rgb.transpose(0, 3, 2, 1),
            depth.transpose(0, 2, 1),
            raw.transpose(0, 2, 1),
        )
        refs = f.create_group("#refs#")
        for key in ("scenes", "sceneTypes", "rawRgbFilenames", "rawDepthFilenames"):
            ds = f.create_dataset(key, (1, 2), dtype=h5py.ref_dtype)
            for i in range(2):
                ds[0, i] = refs.create_dataset(f"{key}{i}", data=np.array([[ord("a")]], np.uint16)).ref
    frames = list(frames_from_path(path, [1]))
    assert len(frames) == 1 and frames[0].rgb.shape == (427, 561, 3)
    np.testing.assert_array_equal(frames[0].rgb, rgb[1, 44:471, 40:601])
    np.testing.assert_array_equal(frames[0].raw, raw[1, 44:471, 40:601])
    item = RGBDPatchDataset(frames, 16, length=1, cond_drop_prob=0.0)[0]
    assert item["cond"].shape == (2, 16, 16)
