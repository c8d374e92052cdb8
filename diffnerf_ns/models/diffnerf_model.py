"""diffnerf: depth-supervised hash-grid NeRF for bounded indoor RGB-D scenes, with a diffusion-prior hook.

It builds on nerfstudio's depth-nerfacto (same field, proposal sampling and DS-NeRF/URF depth
losses) and changes what matters indoors: the room is a bounded box, so rays are clipped to it and
no scene contraction is used (an option contracts space past the box instead); normals are predicted so
point-cloud export works out of the box; metrics include depth accuracy; nothing is downloaded at construction.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Literal

import torch
from nerfstudio.cameras.cameras import Cameras
from nerfstudio.cameras.rays import RayBundle
from nerfstudio.data.scene_box import OrientedBox
from nerfstudio.engine.callbacks import TrainingCallback, TrainingCallbackAttributes, TrainingCallbackLocation
from nerfstudio.field_components.field_heads import FieldHeadNames
from nerfstudio.model_components.losses import distortion_loss
from nerfstudio.model_components.scene_colliders import AABBBoxCollider
from nerfstudio.models.depth_nerfacto import DepthNerfactoModel, DepthNerfactoModelConfig
from nerfstudio.utils import colormaps
from nerfstudio.viewer.viewer_elements import ViewerCheckbox

from diffnerf_ns.compat import offline_lpips
from diffnerf_ns.depth_convention import ray_to_z_depth
from diffnerf_ns.fields.box_contraction import BoxContraction
from diffnerf_ns.fields.hash_backend import select_hash_backend
from diffnerf_ns.metrics import depth_metrics, image_metrics
from diffnerf_ns.models.patch_prior_loss import scaled_sample_counts, score_loss, score_magnitude_map
from diffnerf_ns.models.patch_regulariser import PatchRegulariser, PatchRegulariserConfig
from diffnerf_ns.prior.rgbd_codec import encode


@dataclass
class DiffNerfModelConfig(DepthNerfactoModelConfig):
    """diffnerf model; every nerfacto / depth-nerfacto flag still applies."""

    _target: type = field(default_factory=lambda: DiffNerfModel)
    implementation: Literal["auto", "tcnn", "triton", "torch"] = "auto"  # type: ignore[assignment]
    """Hash-grid backend: 'auto' uses tiny-cuda-nn when importable with CUDA, else the fused Triton grid on
    CUDA, else nerfstudio's torch grid. 'triton' and 'torch' share one parameter layout (checkpoints swap)."""
    predict_normals: bool = False
    """Train nerfacto's predicted-normal head (costs a density-gradient pass every training step)."""
    render_normals: bool = True
    """Render density-gradient normals when the model is called on rays outside training (ns-export
    pointcloud's default normal method reads them), so training does not pay for them."""
    render_camera_normals: bool = False
    """Also render them for whole cameras (viewer, ns-render, ns-eval): a second field pass that doubles
    render time (2.15x measured on CPU). The viewer has a checkbox for it."""
    disable_scene_contraction: bool = True
    """True: the room is bounded; the dataparser's fitted scene box is all the field covers and rays are clipped
    to it. False: rays run from near_plane to far_plane (nerfacto's collider) and space past the box (windows,
    doorways, walls the box fit cut off) is contracted around it (`BoxContraction`) instead of being painted onto
    the box's walls; pair it with the piecewise initial sampler, as nerfacto does."""
    proposal_initial_sampler: Literal["piecewise", "uniform"] = "uniform"
    """Uniform sampling suits rays clipped to a bounded box."""
    near_plane: float = 0.05
    """Closest distance (scene units; metres for the nyu dataparser) a ray may hit."""
    depth_loss_mult: float = 1e-2
    """Weight of the depth loss; Kinect depth is dense and reliable, so stronger than depth-nerfacto's 1e-3."""
    depth_edge_band: int = 0
    """Pixels closer than this to a depth discontinuity of their training image (`depth_edge_distance`: 0 on the
    two pixels either side of a jump) have their depth loss weighted by `depth_edge_weight`; 0 = off. At occluding
    edges depth that is a pixel or two beside its colour (a misregistration the conversion could not remove, the
    sensor fattening the nearer surface, colour and depth taken at different instants) pulls one surface's colour
    to the other's depth, and the colour loss pays for it."""
    depth_edge_weight: float = 0.0
    """Depth-loss weight inside the `depth_edge_band` (colour supervision there is unchanged)."""
    regulariser: PatchRegulariserConfig = field(default_factory=PatchRegulariserConfig)
    """Diffusion-prior patch regulariser (DiffusioNeRF); off unless enabled or a prior is named."""


class DiffNerfModel(DepthNerfactoModel):
    """Depth-nerfacto for bounded RGB-D rooms, plus the diffusion-prior patch regulariser."""

    config: DiffNerfModelConfig

    def populate_modules(self) -> None:
        backend = select_hash_backend(self.config.implementation)
        # nerfstudio builds 'tcnn' or 'torch' modules; the fused grid then takes over the torch grids' tables.
        self.config = dataclasses.replace(self.config, implementation="torch" if backend == "triton" else backend)
        with offline_lpips():
            super().populate_modules()
        if backend == "triton":
            from diffnerf_ns.fields.triton_hash_encoding import fuse_hash_encodings

            fuse_hash_encodings(self)
            self.config = dataclasses.replace(self.config, implementation=backend)
        self.camera_normals_switch = ViewerCheckbox(
            "Render normals (second pass, slower)", default_value=self.config.render_camera_normals
        )
        self._rendering_camera = False
        if self.config.disable_scene_contraction:
            self.collider = AABBBoxCollider(self.scene_box, near_plane=self.config.near_plane)
        else:  # nerfacto's contraction assumes an auto-scaled unit cube; ours is the metric room box
            contraction = BoxContraction(self.scene_box.aabb)
            for network in (self.field, *self.proposal_networks):
                network.spatial_distortion = contraction
        self.metres_per_unit = 1.0 / float(self.kwargs.get("metadata", {}).get("dataparser_scale", 1.0))
        self.regulariser: PatchRegulariser | None = None
        if self.config.regulariser.active:
            self.regulariser = self.config.regulariser.setup(scene_box=self.scene_box)
            self.prior_regulariser_switch = ViewerCheckbox("Diffusion prior regulariser", default_value=True)

    def get_outputs(self, ray_bundle: RayBundle) -> dict[str, torch.Tensor]:
        outputs = super().get_outputs(ray_bundle)
        if not self.training and not self.config.predict_normals and self._normals_wanted():
            outputs["normals"] = self.density_normals(ray_bundle)
        return outputs

    def _normals_wanted(self) -> bool:
        """On whole cameras (viewer, ns-render, ns-eval) only when the checkbox asks; on rays (ns-export) per config."""
        return self.camera_normals_switch.value if self._rendering_camera else self.config.render_normals

    def density_normals(self, ray_bundle: RayBundle) -> torch.Tensor:
        """Normals from the density gradient, rendered and shaded to [0, 1] (a second, inference-only pass)."""
        ray_samples, _, _ = self.proposal_sampler(ray_bundle, density_fns=self.density_fns)
        field_outputs = self.field.forward(ray_samples, compute_normals=True)
        weights = ray_samples.get_weights(field_outputs[FieldHeadNames.DENSITY])
        normals = self.renderer_normals(normals=field_outputs[FieldHeadNames.NORMALS], weights=weights)
        return self.normals_shader(normals)

    def get_training_callbacks(self, attributes: TrainingCallbackAttributes) -> list[TrainingCallback]:
        callbacks = super().get_training_callbacks(attributes)
        reg = self.regulariser
        if reg is not None:
            assert attributes.pipeline is not None
            reg.attach(attributes.pipeline.datamanager.train_dataset, self.device)
            if attributes.trainer is not None:
                reg.max_num_iterations = attributes.trainer.config.max_num_iterations

            def set_step(step: int) -> None:
                reg.step = step

            callbacks.append(TrainingCallback([TrainingCallbackLocation.BEFORE_TRAIN_ITERATION], set_step))
        return callbacks

    def depth_loss_weights(self, batch: dict[str, torch.Tensor]) -> torch.Tensor | None:
        """Per-ray (N, 1) weight of the depth loss: the depth's confidence (refined depth, phone sensors) times the
        occluding-edge weight (`depth_edge_band`); None when every ray has full weight."""
        weights = []
        if "depth_confidence" in batch:
            weights.append(batch["depth_confidence"].to(self.device).float())
        if self.config.depth_edge_band > 0 and "depth_edge_distance" in batch:
            distance = batch["depth_edge_distance"].to(self.device)
            weights.append(depth_edge_weights(distance, self.config.depth_edge_band, self.config.depth_edge_weight))
        if not weights:
            return None
        return weights[0] if len(weights) == 1 else torch.stack(weights).prod(dim=0)

    def get_metrics_dict(self, outputs, batch) -> dict[str, torch.Tensor]:
        conf = self.depth_loss_weights(batch) if self.training else None
        if conf is None:
            return super().get_metrics_dict(outputs, batch)
        # Each ray's depth-loss gradient is scaled by its weight, which is exactly the gradient of the weighted mean
        # of nerfstudio's per-ray DS-NeRF / URF losses (their values stay unweighted).
        weighted = {
            **outputs,
            "weights_list": [scale_gradient(w, conf[:, None]) for w in outputs["weights_list"]],
            "expected_depth": scale_gradient(outputs["expected_depth"], conf),
        }
        metrics = super().get_metrics_dict(weighted, batch)
        if "distortion" in metrics:  # nerfacto's distortion loss also reads weights_list: keep it unweighted
            metrics["distortion"] = distortion_loss(outputs["weights_list"], outputs["ray_samples_list"])
        return metrics

    def get_loss_dict(self, outputs, batch, metrics_dict=None) -> dict[str, torch.Tensor]:
        loss_dict = super().get_loss_dict(outputs, batch, metrics_dict)
        reg = self.regulariser
        if self.training and reg is not None and self.prior_regulariser_switch.value and reg.active_now():
            # The regulariser draws its randomness (patch rays' stratified samples included) from a fork of the
            # global stream, so switching it on leaves the batch sampling unchanged: ablations differ only by it.
            with torch.random.fork_rng(devices=[self.device] if self.device.type == "cuda" else []):
                loss_dict.update(self.prior_patch_losses(reg))
        return loss_dict

    @contextlib.contextmanager
    def patch_sampling(self, fraction: float) -> Iterator[None]:
        """The proposal sampler draws `fraction` of its samples per ray inside this block (patch rays)."""
        sampler = self.proposal_sampler
        kept = sampler.num_proposal_samples_per_ray, sampler.num_nerf_samples_per_ray
        sampler.num_proposal_samples_per_ray, sampler.num_nerf_samples_per_ray = scaled_sample_counts(*kept, fraction)
        try:
            yield
        finally:
            sampler.num_proposal_samples_per_ray, sampler.num_nerf_samples_per_ray = kept

    def render_patch(
        self, camera: Cameras, index: int, sample_fraction: float = 1.0
    ) -> tuple[torch.Tensor, torch.Tensor, dict]:
        """RGB (P, P, 3), planar depth in metres (P, P) and the raw outputs of a patch camera of view `index`,
        sampled with `sample_fraction` of the model's samples per ray."""
        bundle = camera.generate_rays(camera_indices=0)
        bundle.camera_indices = torch.full_like(bundle.camera_indices, index)  # its training view's pose correction
        with self.patch_sampling(sample_fraction):
            outputs = self(bundle.flatten())
        p = camera.width.reshape(-1)[0].item()
        z = ray_to_z_depth(outputs["expected_depth"], outputs["directions_norm"])
        return outputs["rgb"].view(p, p, 3), (z * self.metres_per_unit).view(p, p), outputs

    def prior_patch_losses(self, reg: PatchRegulariser) -> dict[str, torch.Tensor]:
        """DiffusioNeRF's losses, averaged over the `patches_per_step` patches that `reg` picks and this renders."""
        c, prior, t = reg.config, reg.prior_on(self.device), reg.timestep()
        # Every n-th step carries n steps' worth of pull (`every_n_steps`).
        depth_weight, rgb_weight = c.depth_weight * c.every_n_steps, c.rgb_weight * c.every_n_steps
        per_patch = []
        for _ in range(c.patches_per_step):
            sample = reg.sample()
            rgb, depth_m, outputs = self.render_patch(sample.camera, sample.index, c.patch_sample_fraction)
            depth_only = sample.gt_rgb is not None
            rgb = (sample.gt_rgb if depth_only else rgb).permute(2, 0, 1)[None]
            x = encode(rgb, depth_m[None, None], straight_through=True)  # no dead zone before 0.3 m
            rgb_loss, depth_loss = score_loss(x, prior.score(x, t), depth_weight, rgb_weight, depth_only)
            terms = {"prior_rgb_loss": rgb_loss, "prior_depth_loss": depth_loss}
            if c.distortion_loss_mult > 0:
                dist = distortion_loss(outputs["weights_list"], outputs["ray_samples_list"])
                terms["prior_patch_distortion"] = c.distortion_loss_mult * c.every_n_steps * dist
            per_patch.append(terms)
        return {name: torch.stack([terms[name] for terms in per_patch]).mean() for name in per_patch[0]}

    @torch.no_grad()
    def get_outputs_for_camera_ray_bundle(self, camera_ray_bundle: RayBundle) -> dict[str, torch.Tensor]:
        """A whole image of rays (what `get_outputs_for_camera` and `ns-export tsdf`'s `render_trajectory` call):
        normals only when the viewer's checkbox asks, like any camera render."""
        self._rendering_camera = True
        try:
            return super().get_outputs_for_camera_ray_bundle(camera_ray_bundle)
        finally:
            self._rendering_camera = False

    @torch.no_grad()
    def get_outputs_for_camera(self, camera: Cameras, obb_box: OrientedBox | None = None) -> dict[str, torch.Tensor]:
        outputs = super().get_outputs_for_camera(camera, obb_box=obb_box)
        reg = self.regulariser
        if reg is not None:
            z = ray_to_z_depth(outputs["depth"], outputs["directions_norm"])[..., 0] * self.metres_per_unit
            x = encode(outputs["rgb"][..., :3].permute(2, 0, 1)[None], z[None, None])
            prior = reg.prior_on(self.device)
            outputs["prior_score"] = score_magnitude_map(prior.score, x, reg.patch_size, reg.config.t_end)[..., None]
        return outputs

    def get_image_metrics_and_images(
        self, outputs: dict[str, torch.Tensor], batch: dict[str, torch.Tensor]
    ) -> tuple[dict[str, float], dict[str, torch.Tensor]]:
        gt_rgb = self.renderer_rgb.blend_background(batch["image"].to(self.device))
        pred_rgb = outputs["rgb"]
        metrics = image_metrics(pred_rgb, gt_rgb, self.lpips)

        # Ground truth is planar z-depth; the renderer gives distance along the ray.
        gt_z = batch["depth_image"].to(self.device)
        pred_z = ray_to_z_depth(outputs["depth"], outputs["directions_norm"])
        metrics.update(depth_metrics(pred_z * self.metres_per_unit, gt_z * self.metres_per_unit))

        valid = gt_z[gt_z > 0]
        near, far = (float(valid.min()), float(valid.max())) if valid.numel() else (None, None)
        images = {
            "img": torch.cat([gt_rgb, pred_rgb], dim=1),
            "accumulation": colormaps.apply_colormap(outputs["accumulation"]),
            "depth": torch.cat(
                [
                    colormaps.apply_depth_colormap(gt_z, near_plane=near, far_plane=far),
                    colormaps.apply_depth_colormap(
                        pred_z, accumulation=outputs["accumulation"], near_plane=near, far_plane=far
                    ),
                ],
                dim=1,
            ),
        }
        if "normals" in outputs:
            images["normals"] = outputs["normals"]
        return metrics, images


def depth_edge_weights(distance: torch.Tensor, band: int, weight: float) -> torch.Tensor:
    """`weight` where `distance` (pixels to the nearest depth discontinuity) is below `band`, else 1 (float)."""
    ones = torch.ones(distance.shape, device=distance.device)
    return torch.where(distance.float() < band, ones * weight, ones)


def scale_gradient(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """`x` in the forward pass; in the backward pass its gradient is multiplied by `weight`."""
    return x * weight + x.detach() * (1.0 - weight)
