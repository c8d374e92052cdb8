"""DiffusioNeRF's patch regulariser as stateless functions (REFERENCE §3; Wynn & Turmukhambetov, CVPR 2023).

The recipe, one function per part: pick a noise level (`annealed_timestep`), pick a camera near a
training view (`jitter_pose`, `crop_corner`, `crop_camera`), and turn the prior's score on the
rendered patch into a pseudo-loss whose gradient is the weighted score (`score_loss`). The model
renders the patch and calls these; `PatchRegulariser` only keeps the state (random stream,
cameras, step) between calls.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from nerfstudio.cameras.cameras import Cameras
from nerfstudio.cameras.lie_groups import exp_map_SO3xR3
from torch import Tensor

from diffnerf_ns.prior.rgbd_codec import CODE_PER_LOG_DEPTH

ScoreFn = Callable[[Tensor, int], Tensor]
"""`prior.score(x, t)`: the score -eps_hat / sqrt(1 - alpha_bar_t) of codec patches (B, 4, P, P)."""


RECIPE_DEPTH_WEIGHT = 2e-6
"""DiffusioNeRF's depth weight per pixel, multiplied there by the rendered depth, on its disparity code."""
RECIPE_DISPARITY_CODE_SCALE = 0.4
"""DiffusioNeRF's disparity code is `2 * 0.2 / max(d, 0.2) - 1 = 0.4 / d - 1`."""
RECIPE_RGB_WEIGHT = 3e-6
"""DiffusioNeRF's RGB gradient norm per patch (1e-9 x 3000); RGB is coded alike there and here ([0, 1] -> [-1, 1])."""
RECIPE_PATCH_LOSS_MULT = 0.2
"""DiffusioNeRF's example multiplies every patch loss by 0.2 (scenes scaled to >= 7.5 units)."""


def log_codec_depth_weight(recipe_weight: float = RECIPE_DEPTH_WEIGHT) -> float:
    """The per-pixel depth weight on the log-depth code that pulls depth as hard as DiffusioNeRF's recipe.

    At a given timestep a diffusion prior's score is about -eps / sigma_t in code units whatever the codec, so
    compare the pulls for the same code-space score s. The recipe's pseudo-loss -(w * d * s * x), with
    x = 0.4 / d - 1, has gradient w * d * s * 0.4 / d^2 on depth, i.e. 0.4 * w * s on log-depth: the same at
    every depth. On the log-depth code x = a * ln(d) + b (a = `CODE_PER_LOG_DEPTH`) a constant weight w' gives
    w' * a * s on log-depth, so w' = 0.4 * w / a (1.40e-6 for w = 2e-6), with no x depth factor: keeping the
    recipe's x depth on this codec would pull a surface at d metres 1.43 * d times harder (2.9x at 2 m, 5.7x at
    4 m). The pull on log-depth is also independent of the scene's units.
    """
    return recipe_weight * RECIPE_DISPARITY_CODE_SCALE / CODE_PER_LOG_DEPTH


def annealed_timestep(step: int, t_start: int, t_end: int, start_step: int, end_step: int) -> int:
    """Diffusion timestep at a training step: t_start until start_step, then linear to t_end at end_step.

    Early on the geometry is far from any room, so the score is taken at a high noise level where
    the prior is smooth; annealing sharpens it as the NeRF converges (DiffusioNeRF: 99 -> ~3).
    """
    frac = min(max((step - start_step) / max(end_step - start_step, 1), 0.0), 1.0)
    return int(round(t_start + frac * (t_end - t_start)))


def step_at(fraction: float, max_num_iterations: int) -> int:
    """The training step a fraction of the run's budget falls on, so a schedule scales with any budget."""
    return int(round(fraction * max_num_iterations))


def scaled_sample_counts(
    proposal: tuple[int, ...], nerf: int, fraction: float, floor: int = 4
) -> tuple[tuple[int, ...], int]:
    """Proposal and NeRF sample counts per ray scaled by `fraction` (at least `floor` each): patch rays only need a
    depth and a colour the prior can score, so they can be sampled more coarsely than the training rays."""
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"sample fraction must be in (0, 1], got {fraction}")

    def scale(n: int) -> int:
        return max(min(floor, n), round(n * fraction))

    return tuple(scale(n) for n in proposal), scale(nerf)


def jitter_pose(
    c2w: Tensor,
    box_lo: Tensor,
    box_hi: Tensor,
    max_translation: float,
    max_rotation: float,
    generator: torch.Generator,
    margin: float = 0.02,
) -> Tensor:
    """A camera-to-world (3, 4) near `c2w`: an unseen viewpoint that still looks into the room.

    The rotation is about a uniformly random axis through the camera centre by an angle uniform in
    [-max_rotation, max_rotation], so the optical axis turns by at most `max_rotation` away from a
    view that looked into the room. The centre moves uniformly within +-max_translation per axis
    and is then clamped into the box shrunk by `margin` (a fraction of each side): every ray of the
    jittered camera then starts inside the room and travels at least that margin before leaving it.
    """
    axis = torch.randn(3, generator=generator, dtype=torch.float64)
    angle = (2.0 * torch.rand((), generator=generator, dtype=torch.float64) - 1.0) * max_rotation
    shift = (2.0 * torch.rand(3, generator=generator, dtype=torch.float64) - 1.0) * max_translation
    tangent = torch.cat([torch.zeros(3, dtype=torch.float64), axis / axis.norm() * angle])[None]
    rot = exp_map_SO3xR3(tangent)[0, :3, :3].to(c2w)
    lo, hi = box_lo.to(c2w), box_hi.to(c2w)
    pad = margin * (hi - lo)
    centre = torch.minimum(torch.maximum(c2w[:3, 3] + shift.to(c2w), lo + pad), hi - pad)
    return torch.cat([rot @ c2w[:3, :3], centre[:, None]], dim=1)


def crop_corner(width: int, height: int, patch_size: int, generator: torch.Generator) -> tuple[int, int]:
    """Uniform top-left corner (x0, y0) of a patch inside a width x height image.

    A patch wider or taller than the image is centred on it along that axis (it then overhangs).
    """

    def pick(extent: int) -> int:
        if patch_size > extent:
            return -((patch_size - extent) // 2)
        return int(torch.randint(0, extent - patch_size + 1, (), generator=generator))

    return pick(width), pick(height)


def crop_camera(cameras: Cameras, index: int, x0: int, y0: int, patch_size: int, c2w: Tensor | None = None) -> Cameras:
    """The patch_size^2 crop at (x0, y0) of training camera `index`, optionally moved to pose `c2w`.

    A crop keeps the focal lengths and shifts the principal point, so its rays are exactly the
    image's rays through those pixels (or, with `c2w`, the same bundle from the jittered pose).
    """
    cam = cameras[index : index + 1]
    return Cameras(
        camera_to_worlds=(cam.camera_to_worlds if c2w is None else c2w[None]),
        fx=cam.fx,
        fy=cam.fy,
        cx=cam.cx - x0,
        cy=cam.cy - y0,
        width=patch_size,
        height=patch_size,
        camera_type=cam.camera_type,
    )


def score_loss(
    patch: Tensor, score: Tensor, depth_weight: float, rgb_weight: float, depth_only: bool
) -> tuple[Tensor, Tensor]:
    """DiffusioNeRF's pseudo-losses (rgb, depth) for codec patches `patch` (B, 4, P, P).

    Each is `-(w * stopgrad(score) * patch).sum()`, so its gradient with respect to the patch is
    `-w * score`: descending it moves the patch up the prior's log-density. Weights:
    - depth: `depth_weight` per pixel, the same at every depth (`log_codec_depth_weight` derives it from the
      recipe's `2e-6 x depth` on disparity: both pull log-depth uniformly);
    - RGB: `rgb_weight / ||score_rgb||`, a fixed gradient norm over the whole RGB patch whatever the
      noise level. `depth_only` (ground-truth RGB in the patch) leaves RGB out.
    """
    score = score.detach()
    depth = -(depth_weight * score[:, 3:] * patch[:, 3:]).sum()
    if depth_only:
        return patch.new_zeros(()), depth
    rgb_score = score[:, :3]
    rgb = -(rgb_weight / rgb_score.norm().clamp(min=1e-12) * rgb_score * patch[:, :3]).sum()
    return rgb, depth


def score_magnitude_map(score: ScoreFn, patch: Tensor, patch_size: int, timestep: int) -> Tensor:
    """Per-pixel |score| over a full codec image (1, 4, H, W), tiled in prior-sized patches: (H, W).

    Large where the render looks unlike the prior's rooms; shown in the viewer.
    """
    p, (h, w) = patch_size, patch.shape[-2:]
    x = torch.nn.functional.pad(patch, (0, -w % p, 0, -h % p), mode="replicate")
    hp, wp = x.shape[-2:]
    tiles = x.unfold(2, p, p).unfold(3, p, p).permute(0, 2, 3, 1, 4, 5).reshape(-1, 4, p, p)
    magnitude = score(tiles, timestep).norm(dim=1)
    return magnitude.reshape(hp // p, wp // p, p, p).permute(0, 2, 1, 3).reshape(hp, wp)[:h, :w]
