"""Prior pieces that need no training: codec, model folders, tiling, and bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from diffusers import UNet2DModel

from diffnerf_ns.prior.baselines import joint_bilateral_fill, nearest_fill, opencv_inpaint
from diffnerf_ns.prior.model import RGBDPrior, make_scheduler
from diffnerf_ns.prior.patches import RGBDPatchDataset, observation_channels
from diffnerf_ns.prior.refine import RefineConfig, refine_depth, tile_starts, tile_weight
from diffnerf_ns.prior.rgbd_codec import decode, encode
from diffnerf_ns.prior.sources import frames_from_arrays, frames_from_path
from diffnerf_ns.prior.train import denoising_loss, sobel

TINY = dict(patch_size=16, block_out_channels=(16, 32), layers_per_block=1, attention=False)


def test_codec_round_trip_and_reference_disparity() -> None:
    rgb = torch.rand(2, 3, 5, 7)
    depth = torch.rand(2, 1, 5, 7) * 9.0 + 0.2
    x = encode(rgb, depth)
    assert x.min() >= -1 and x.max() <= 1
    # REFERENCE §3: disparity 0.2 / max(d, 0.2), then [0, 1] -> [-1, 1].
    torch.testing.assert_close(x[:, 3:], 2 * (0.2 / depth) - 1)
    rgb_back, depth_back = decode(x)
    torch.testing.assert_close(rgb_back, rgb)
    torch.testing.assert_close(depth_back, depth, rtol=1e-5, atol=1e-5)
    assert float(encode(rgb[:, :, :1, :1], torch.full((2, 1, 1, 1), 0.05))[:, 3].min()) == 1.0


def test_codec_is_differentiable() -> None:
    depth = torch.full((1, 1, 2, 2), 2.0, requires_grad=True)
    encode(torch.zeros(1, 3, 2, 2), depth)[:, 3].sum().backward()
    torch.testing.assert_close(depth.grad, torch.full_like(depth, -2 * 0.2 / 4.0))


def test_save_load_round_trip_is_identical(tmp_path) -> None:
    torch.manual_seed(0)
    prior = RGBDPrior.create(**TINY).eval()
    prior.save_pretrained(tmp_path / "p")
    loaded = RGBDPrior.from_pretrained(tmp_path / "p", patch_size=16)
    x = torch.rand(3, 4, 16, 16) * 2 - 1
    assert torch.equal(prior.score(x, 40), loaded.score(x, 40))
    assert loaded.patch_size == 16 and loaded.num_train_timesteps == 1000
    assert loaded.scheduler.config.beta_schedule == "squaredcos_cap_v2"


def test_score_api_shapes_and_no_graph() -> None:
    prior = RGBDPrior.create(**TINY).eval()
    x = (torch.rand(5, 4, 16, 16) * 2 - 1).requires_grad_()
    s = prior.score(x, torch.tensor([3, 10, 50, 99, 999]))
    assert s.shape == x.shape and not s.requires_grad and s.dtype == x.dtype
    with pytest.raises(ValueError, match="16, 16"):
        prior.score(torch.zeros(1, 4, 24, 24), 10)
    with pytest.raises(ValueError, match="timestep"):
        prior.score(torch.zeros(1, 4, 16, 16), 1000)


def test_bad_prior_folders_are_named(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match="not a prior folder"):
        RGBDPrior.from_pretrained(tmp_path / "missing")
    RGBDPrior.create(**TINY).save_pretrained(tmp_path / "p16")
    with pytest.raises(ValueError, match="16 px patches, not 48"):
        RGBDPrior.from_pretrained(tmp_path / "p16", patch_size=48)
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
    with pytest.raises(ValueError, match="3 input / 3 output channels"):
        RGBDPrior.from_pretrained(tmp_path / "rgb")


def test_bad_depth_and_sizes_are_named() -> None:
    prior = RGBDPrior.create(**TINY).eval()
    rgb = np.zeros((20, 24, 3), np.uint8)
    depth = np.ones((20, 24), np.float32)
    fast = RefineConfig(steps=2, samples=1, strength=1.0)
    with pytest.raises(ValueError, match="NaN"):
        refine_depth(prior, rgb, np.where(depth > 0, np.nan, depth), fast)
    with pytest.raises(ValueError, match="all zero"):
        refine_depth(prior, rgb, np.zeros_like(depth), fast)
    with pytest.raises(ValueError, match="does not match the RGB size"):
        refine_depth(prior, rgb, np.ones((20, 23), np.float32), fast)
    with pytest.raises(ValueError, match="smaller than the 16 px patch"):
        refine_depth(prior, rgb[:10], depth[:10], fast)
    with pytest.raises(ValueError, match="all zero"):
        RGBDPatchDataset(frames_from_arrays([rgb], [np.zeros_like(depth)]), 16)


def test_tiles_cover_the_frame_with_positive_weights() -> None:
    assert tile_starts(48, 16, 5) == [0, 11, 22, 32]
    assert tile_starts(16, 16, 5) == [0]
    w = tile_weight(16, 5)
    assert float(w.min()) > 0 and float(w.max()) == 1.0


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
    for fill in (nearest_fill(depth), opencv_inpaint(depth), joint_bilateral_fill(depth, rgb)):
        np.testing.assert_allclose(fill, 2.0, atol=2e-3)


def test_sobel_edge_loss_uses_the_reconstructed_clean_patch() -> None:
    ramp = torch.arange(8.0).view(1, 1, 1, 8).expand(1, 1, 8, 8)
    grad = sobel(ramp)
    torch.testing.assert_close(grad[0, 0, :, 1:-1], torch.ones(8, 6))  # normalised: the slope itself
    torch.testing.assert_close(grad[0, 1], torch.zeros(8, 8))
    prior = RGBDPrior.create(**TINY)
    x0 = torch.rand(4, 4, 16, 16) * 2 - 1
    cond, noise = torch.zeros(4, 2, 16, 16), torch.randn(4, 4, 16, 16)
    t = torch.tensor([1, 10, 100, 999])
    plain = denoising_loss(prior, x0, cond, t, noise)
    with_edges = denoising_loss(prior, x0, cond, t, noise, sobel_weight=1.0)
    assert torch.isfinite(with_edges) and with_edges > plain
    with_edges.backward()
    assert all(p.grad is not None for p in prior.unet.parameters() if p.requires_grad)


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
