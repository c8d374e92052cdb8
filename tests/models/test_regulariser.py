"""The DiffusioNeRF patch regulariser: its pure core, and inside diffnerf under nerfstudio's Trainer."""

from __future__ import annotations

import copy
import dataclasses
import math
from pathlib import Path

import hypothesis.strategies as st
import pytest
import torch
from hypothesis import given, settings
from nerfstudio.cameras.cameras import Cameras
from nerfstudio.engine.trainer import Trainer

from diffnerf_ns.diffnerf_config import diffnerf_few_view_method, diffnerf_method
from diffnerf_ns.models.diffnerf_model import scale_gradient
from diffnerf_ns.models.patch_prior_loss import (
    annealed_timestep,
    crop_camera,
    crop_corner,
    jitter_pose,
    scaled_sample_counts,
    score_loss,
)
from diffnerf_ns.models.patch_regulariser import PatchRegulariserConfig
from diffnerf_ns.presets import configure_run
from diffnerf_ns.prior.model import RGBDPrior
from diffnerf_ns.prior.rgbd_codec import encode, encode_depth

PATCH = 16


def test_timestep_anneals_linearly_between_start_and_end_step() -> None:
    """Catches an inverted or unclamped schedule, or one that ignores its start step."""
    ts = [annealed_timestep(s, 99, 3, start_step=100, end_step=300) for s in (0, 100, 200, 300, 10_000)]
    assert ts == [99, 99, 51, 3, 3]


@settings(max_examples=60, deadline=None)
@given(
    quat=st.lists(st.floats(-1, 1), min_size=4, max_size=4).filter(lambda q: sum(v * v for v in q) > 1e-2),
    centre=st.lists(st.floats(-6, 6), min_size=3, max_size=3),
    size=st.lists(st.floats(1.0, 8.0), min_size=3, max_size=3),
    translation=st.floats(0.0, 2.0),
    rotation=st.floats(0.0, 0.5 * math.pi),
    seed=st.integers(0, 2**31 - 1),
    corner=st.tuples(st.integers(0, 64 - PATCH), st.integers(0, 48 - PATCH)),
)
def test_jittered_patch_camera_is_valid_for_any_training_pose(quat, centre, size, translation, rotation, seed, corner):
    """Any pose (even one outside the box): the jittered crop camera sits inside the room box, turns by at most
    the jitter angle (so still looks where its view looked), has a proper rotation and finite rays that travel
    inside the box. Catches a missing clamp, a rotation applied on the wrong side, or a broken crop shift."""
    q = torch.tensor(quat, dtype=torch.float64)
    w, x, y, z = (q / q.norm()).tolist()
    rot = torch.tensor(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
        ]
    )
    c2w = torch.cat([rot, torch.tensor(centre, dtype=torch.float64)[:, None]], dim=1).float()
    hi = torch.tensor(size) / 2
    lo = -hi
    g = torch.Generator().manual_seed(seed)
    out = jitter_pose(c2w, lo, hi, translation, rotation, g)
    r = out[:, :3]
    assert torch.allclose(r.T @ r, torch.eye(3), atol=1e-5) and abs(float(torch.det(r)) - 1) < 1e-5
    margin = 0.02 * (hi - lo)
    assert torch.all(out[:, 3] >= lo + margin - 1e-5) and torch.all(out[:, 3] <= hi - margin + 1e-5)
    cos = float(torch.dot(-out[:, 2], -c2w[:, 2]))
    assert cos >= math.cos(rotation) - 1e-5

    cameras = Cameras(camera_to_worlds=c2w[None], fx=50.0, fy=50.0, cx=32.0, cy=24.0, width=64, height=48)
    patch = crop_camera(cameras, 0, corner[0], corner[1], PATCH, out)
    rays = patch.generate_rays(camera_indices=0)
    assert rays.origins.shape == (PATCH, PATCH, 3) and torch.isfinite(rays.directions).all()
    # Distance each ray travels before leaving the box: positive, at least the margin.
    d = rays.directions.reshape(-1, 3)
    o = rays.origins.reshape(-1, 3)
    t_exit = torch.maximum((hi - o) / d, (lo - o) / d).nan_to_num(nan=1e9, posinf=1e9).min(dim=1).values
    assert torch.all(t_exit >= float(margin.min()) - 1e-4)


def test_crop_camera_rays_are_the_image_rays_through_those_pixels() -> None:
    """Catches a crop shifted the wrong way (cx + x0) or swapped x/y."""
    c2w = torch.eye(4)[:3]
    cameras = Cameras(camera_to_worlds=c2w[None], fx=40.0, fy=45.0, cx=30.0, cy=20.0, width=64, height=48)
    x0, y0 = crop_corner(64, 48, PATCH, torch.Generator().manual_seed(3))
    full = cameras.generate_rays(camera_indices=0).directions
    crop = crop_camera(cameras, 0, x0, y0, PATCH).generate_rays(camera_indices=0).directions
    assert torch.allclose(crop, full[y0 : y0 + PATCH, x0 : x0 + PATCH], atol=1e-6)


def test_score_loss_gradient_is_minus_weighted_score() -> None:
    """Pins the pseudo-losses' gradients: depth gets -w * score, RGB gets a fixed norm. Catches a flipped sign,
    per-channel normalisation (sqrt(3) too strong) or a depth weight that still carries a depth factor."""
    g = torch.Generator().manual_seed(0)
    patch = torch.randn(1, 4, 8, 8, generator=g).requires_grad_(True)
    score = torch.randn(1, 4, 8, 8, generator=g)
    rgb, dep = score_loss(patch, score, depth_weight=2e-6, rgb_weight=3e-6, depth_only=False)
    (rgb + dep).backward()
    assert torch.allclose(patch.grad[:, 3:], -2e-6 * score[:, 3:])
    assert math.isclose(float(patch.grad[:, :3].norm()), 3e-6, rel_tol=1e-5)
    assert float((patch.grad[:, :3] * score[:, :3]).sum()) < 0
    rgb_only, _ = score_loss(patch, score, 2e-6, 3e-6, depth_only=True)
    assert float(rgb_only) == 0.0


def _sgd_log_depth_step(depth_m: torch.Tensor, loss_fn) -> torch.Tensor:
    """One plain SGD step (lr 1) on log-depth: the change in ln(depth) the loss asks for, where scale matters.
    In float64: a step of ~1e-7 is below float32's resolution of ln(depth)."""
    depth_m = depth_m.double()
    log_depth = torch.nn.Parameter(depth_m.log())
    opt = torch.optim.SGD([log_depth], lr=1.0)
    loss_fn(log_depth.exp()).backward()
    opt.step()
    return (log_depth - depth_m.log()).detach()


def test_default_depth_pull_on_log_depth_equals_diffusionerf_recipe() -> None:
    """The default depth weight, through the codec and loss the model uses, moves log-depth by exactly as much as
    DiffusioNeRF's recipe (2e-6 x depth on its disparity code 0.4/d - 1, x0.2) for the same code-space score, at
    1, 2 and 4 m. Catches the old `x depth` factor kept on the log code (2.9x too strong at 2 m, 5.7x at 4 m), a
    missing 0.2 multiplier, or a slope dropped from the derivation; plain SGD, so the scale is tested."""
    depth = torch.tensor([1.0, 2.0, 4.0]).reshape(1, 1, 1, 3)
    score = torch.full((1, 4, 1, 3), 0.7, dtype=torch.float64)
    default = PatchRegulariserConfig()
    assert math.isclose(default.depth_weight, 0.2 * 2e-6 * 0.4 / (2 / math.log(10 / 0.3)), rel_tol=1e-12)
    rgb = torch.zeros(1, 3, 1, 3, dtype=torch.float64)

    def ours(d: torch.Tensor) -> torch.Tensor:
        x = encode(rgb, d, straight_through=True)
        return score_loss(x, score, default.depth_weight, default.rgb_weight, depth_only=True)[1]

    def recipe(d: torch.Tensor) -> torch.Tensor:
        disparity_code = 2 * 0.2 / d.clamp(min=0.2) - 1
        return -(0.2 * 2e-6 * d.detach() * score[:, 3:] * disparity_code).sum()

    step_ours, step_recipe = _sgd_log_depth_step(depth, ours), _sgd_log_depth_step(depth, recipe)
    assert torch.allclose(step_ours.abs(), step_recipe.abs(), rtol=1e-4)
    assert torch.allclose(step_ours, step_ours[..., :1].expand_as(step_ours), rtol=1e-4)  # uniform in log-depth
    assert float(step_ours[0, 0, 0, 0]) > 0  # a positive code-space score asks for a larger code: farther


def test_confidence_scales_the_gradient_not_the_value() -> None:
    """Catches a weight applied the wrong way round (confidence 0 must silence a ray's depth gradient)."""
    x = torch.tensor([2.0, 3.0], requires_grad=True)
    y = scale_gradient(x, torch.tensor([0.0, 0.5]))
    (y**2).sum().backward()
    assert torch.equal(y.detach(), x.detach()) and torch.allclose(x.grad, torch.tensor([0.0, 3.0]))


# ----- inside the model -----


class TargetDepthPrior(torch.nn.Module):
    """A toy prior whose score points every pixel at one depth: the score of N(code(target), 1)."""

    def __init__(self, target_m: float) -> None:
        super().__init__()
        self.register_buffer("target", encode_depth(torch.tensor(target_m)))
        self.patch_size = PATCH

    @property
    def device(self) -> torch.device:
        return self.target.device

    def score(self, x: torch.Tensor, t: int) -> torch.Tensor:
        out = torch.zeros_like(x)
        out[:, 3:] = self.target - x[:, 3:]
        return out


@pytest.fixture(scope="module")
def untrained_prior(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An untrained 16 px prior folder: loads like the real thing, costs nothing to make."""
    out = tmp_path_factory.mktemp("prior")
    torch.manual_seed(0)
    prior = RGBDPrior.create(patch_size=PATCH, block_out_channels=(8, 16), layers_per_block=1, attention=False)
    prior.save_pretrained(out)
    return out


def make_trainer(scene: Path, out: Path, iterations: int = 4, **regulariser) -> Trainer:
    torch.manual_seed(0)
    config = configure_run(diffnerf_method.config, scene, out, iterations=iterations, rays_per_batch=64)
    reg = PatchRegulariserConfig(**regulariser)
    config.pipeline = dataclasses.replace(
        config.pipeline, model=dataclasses.replace(config.pipeline.model, regulariser=reg)
    )
    trainer = Trainer(config)
    trainer.setup()
    return trainer


def patch_depth(model, camera: Cameras) -> float:
    with torch.no_grad():
        _, depth, _ = model.render_patch(camera, 0)
    return float(depth.mean())


def test_floater_near_the_camera_gets_the_prior_pull(demo_scene: Path, untrained_prior: Path, tmp_path: Path) -> None:
    """Through the model's own patch losses: a patch rendered at 0.1 m (near plane 0.05 m, codec floor 0.3 m) gets a
    depth gradient as large in log-depth as one at 1 m, pushing it away, while the prior still sees codes in its
    range. Catches the clamp's dead zone (zero gradient below 0.3 m), e.g. the model encoding without
    `straight_through`."""
    trainer = make_trainer(
        demo_scene, tmp_path, prior_path=untrained_prior, gt_rgb_probability=1.0, distortion_loss_mult=0.0
    )
    model, reg = trainer.pipeline.model, trainer.pipeline.model.regulariser
    reg.prior = TargetDepthPrior(2.0)
    grads = {}
    for depth_m in (0.1, 1.0):
        log_depth = torch.full((PATCH, PATCH), math.log(depth_m), requires_grad=True)
        model.render_patch = lambda camera, index, fraction=1.0, d=log_depth: (
            torch.zeros(PATCH, PATCH, 3),
            d.exp(),
            {},
        )
        model.prior_patch_losses(reg)["prior_depth_loss"].backward()
        grads[depth_m] = log_depth.grad
    assert (grads[0.1] < 0).all()  # descending the loss raises the floater's depth, toward the prior's 2 m
    assert grads[0.1].abs().min() > 0.5 * grads[1.0].abs().max()


@pytest.mark.parametrize("target_m", [0.6, 6.0])
def test_regularised_steps_move_rendered_depth_toward_the_prior(
    demo_scene: Path, untrained_prior: Path, tmp_path: Path, target_m: float
) -> None:
    """With a prior whose score points at `target_m`, regulariser-only steps move the rendered patch depth toward
    it, from either side. A flipped sign anywhere (score, loss, codec direction) moves it away."""
    trainer = make_trainer(
        demo_scene,
        tmp_path,
        prior_path=untrained_prior,
        gt_rgb_probability=1.0,
        depth_weight=0.05,
        distortion_loss_mult=0.0,
    )
    model = trainer.pipeline.model
    reg = model.regulariser
    reg.prior = TargetDepthPrior(target_m)
    model.train()
    probe = crop_camera(reg.cameras, 0, 24, 16, PATCH)
    before = patch_depth(model, probe)
    params = [p for group in model.get_param_groups().values() for p in group]
    opt = torch.optim.Adam(params, lr=1e-2)
    for _ in range(10):
        opt.zero_grad()
        loss = model.prior_patch_losses(reg)["prior_depth_loss"]
        loss.backward()
        opt.step()
    after = patch_depth(model, probe)
    print(f"target {target_m} m: patch depth {before:.3f} -> {after:.3f}")
    assert abs(after - target_m) < abs(before - target_m) - 0.05


def test_few_view_preset_anneals_to_t_end_within_any_budget(
    demo_scene: Path, untrained_prior: Path, tmp_path: Path
) -> None:
    """The preset's own schedule, driven by its training callback under nerfstudio's Trainer.train() (as ns-train
    runs): an 8-iteration run reaches t_end at a quarter of the budget. Catches a schedule fixed in steps (2500
    steps: a short run stays near t = 99) and one that only advances when someone calls it by hand."""
    config = configure_run(diffnerf_few_view_method.config, demo_scene, tmp_path, iterations=8, rays_per_batch=64)
    model = config.pipeline.model
    reg = dataclasses.replace(model.regulariser, prior_path=untrained_prior)
    config.pipeline = dataclasses.replace(config.pipeline, model=dataclasses.replace(model, regulariser=reg))
    torch.manual_seed(0)
    trainer = Trainer(config)
    trainer.setup()
    regulariser = trainer.pipeline.model.regulariser
    seen: list[int] = []
    timestep = regulariser.timestep
    regulariser.timestep = lambda: seen.append(timestep()) or seen[-1]
    trainer.train()
    assert seen == [99, 51, 3, 3, 3, 3, 3, 3]


def test_every_nth_step_carries_n_steps_of_pull(demo_scene: Path, untrained_prior: Path, tmp_path: Path) -> None:
    """`every_n_steps = 3` regularises steps 6 and 9 of 12 (start at half the budget) with 3x the losses. Catches
    a skipped-step schedule that drops the factor (the regulariser then only gets weaker) or ignores the start."""
    trainer = make_trainer(demo_scene, tmp_path, prior_path=untrained_prior, gt_rgb_probability=0.0)
    model, reg = trainer.pipeline.model, trainer.pipeline.model.regulariser
    reg.config.start_fraction, reg.max_num_iterations = 0.5, 12

    def losses(every: int) -> dict[str, torch.Tensor]:
        reg.config.every_n_steps = every
        reg.generator.manual_seed(0)
        torch.manual_seed(0)
        return {k: v.detach() for k, v in model.prior_patch_losses(reg).items()}

    once, thrice = losses(1), losses(3)
    assert all(torch.allclose(thrice[k], 3 * once[k]) and once[k] != 0 for k in once)
    active = []
    for step in range(12):
        reg.step = step
        active += [step] if reg.active_now() else []
    assert active == [6, 9]


def test_sample_counts_scale_with_a_floor() -> None:
    """Catches a fraction applied twice or inverted, and counts that reach 0 (an empty pdf sampler)."""
    assert scaled_sample_counts((64, 32), 32, 0.5) == ((32, 16), 16)
    assert scaled_sample_counts((64, 32), 32, 1.0) == ((64, 32), 32)
    assert scaled_sample_counts((64, 8), 2, 0.1) == ((6, 4), 2)
    with pytest.raises(ValueError, match="sample fraction"):
        scaled_sample_counts((64,), 32, 0.0)


def test_patch_rays_alone_use_the_sample_fraction(demo_scene: Path, untrained_prior: Path, tmp_path: Path) -> None:
    """Patch rays are sampled with `patch_sample_fraction` of the counts; the training rays after them keep the
    model's own counts, also when the patch render fails. Catches the option being a no-op and counts leaking
    from patches into training rays."""
    trainer = make_trainer(demo_scene, tmp_path, prior_path=untrained_prior, patch_sample_fraction=0.5)
    model, reg = trainer.pipeline.model, trainer.pipeline.model.regulariser
    config = model.config

    def counts(outputs: dict) -> list[int]:
        return [samples.shape[-1] for samples in outputs["ray_samples_list"]]

    full = [*config.num_proposal_samples_per_ray, config.num_nerf_samples_per_ray]
    sample = reg.sample()
    _, _, outputs = model.render_patch(sample.camera, sample.index, reg.config.patch_sample_fraction)
    assert counts(outputs) == [n // 2 for n in full]
    bundle, _ = trainer.pipeline.datamanager.next_train(0)
    assert counts(model(bundle)) == full
    with pytest.raises(RuntimeError), model.patch_sampling(0.25):
        raise RuntimeError
    assert counts(model(bundle)) == full


def test_gradient_reaches_field_and_viewer_switch(demo_scene: Path, untrained_prior: Path, tmp_path: Path) -> None:
    """Jittered RGB-D patches give the field a finite, non-zero gradient; the viewer checkbox switches them off;
    the viewer gets a score map. Catches a detached render or a switch that does nothing."""
    trainer = make_trainer(demo_scene, tmp_path, prior_path=untrained_prior, gt_rgb_probability=0.0)
    model = trainer.pipeline.model
    camera = trainer.pipeline.datamanager.train_dataset.cameras[0:1]
    model.eval()
    score = model.get_outputs_for_camera(camera)["prior_score"]
    assert score.shape == (48, 64, 1) and torch.isfinite(score).all() and score.max() > 0
    model.train()
    losses = model.prior_patch_losses(model.regulariser)
    assert set(losses) == {"prior_rgb_loss", "prior_depth_loss", "prior_patch_distortion"}
    model.field.zero_grad()
    sum(losses.values()).backward()
    flat = torch.cat([p.grad.flatten() for p in model.field.parameters() if p.grad is not None])
    assert torch.isfinite(flat).all() and flat.abs().sum() > 0

    def loss_names() -> set[str]:
        bundle, batch = trainer.pipeline.datamanager.next_train(0)
        outputs = model(bundle)
        return set(model.get_loss_dict(outputs, batch, model.get_metrics_dict(outputs, batch)))

    assert {"prior_rgb_loss", "prior_depth_loss"} <= loss_names()
    model.prior_regulariser_switch.value = False  # what unticking the viewer checkbox does
    assert not loss_names() & {"prior_rgb_loss", "prior_depth_loss"}


def test_refined_depth_confidence_weights_the_depth_loss(demo_scene: Path, tmp_path: Path) -> None:
    """Stage 1 in training: a ray's depth-loss gradient scales with its confidence. Catches confidence that is read
    but not applied (full pull at confidence 0) or applied to the value only (no effect on training)."""
    trainer = make_trainer(demo_scene, tmp_path)
    model = trainer.pipeline.model
    model.train()
    bundle, batch = trainer.pipeline.datamanager.next_train(0)

    def depth_grad(confidence: float) -> torch.Tensor:
        model.field.zero_grad()
        torch.manual_seed(0)  # same stratified samples in every call
        conf = torch.full_like(batch["depth_image"], confidence)
        outputs = model(copy.copy(bundle))  # the pose optimiser reassigns the bundle's tensors: use a fresh one
        model.get_metrics_dict(outputs, {**batch, "depth_confidence": conf})["depth_loss"].backward()
        return torch.cat([p.grad.flatten() for p in model.field.parameters() if p.grad is not None])

    full, half, none = depth_grad(1.0), depth_grad(0.5), depth_grad(0.0)
    assert full.abs().sum() > 0 and none.abs().sum() == 0
    assert torch.allclose(half, 0.5 * full, rtol=1e-4, atol=1e-12)
