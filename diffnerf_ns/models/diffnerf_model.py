"""diffnerf: depth-supervised hash-grid NeRF for bounded indoor RGB-D scenes, with a diffusion-prior hook.

It builds on nerfstudio's depth-nerfacto (same field, proposal sampling and DS-NeRF/URF depth
losses) and changes what matters indoors: the room is a bounded box, so rays are clipped to it and
no scene contraction is used; normals are predicted so point-cloud export works out of the box;
metrics include depth accuracy; nothing is downloaded at construction.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Literal

import torch
from nerfstudio.cameras.cameras import Cameras
from nerfstudio.cameras.rays import RayBundle
from nerfstudio.data.scene_box import OrientedBox
from nerfstudio.engine.callbacks import TrainingCallback, TrainingCallbackAttributes
from nerfstudio.field_components.field_heads import FieldHeadNames
from nerfstudio.model_components.scene_colliders import AABBBoxCollider
from nerfstudio.models.depth_nerfacto import DepthNerfactoModel, DepthNerfactoModelConfig
from nerfstudio.utils import colormaps

from diffnerf_ns.compat import offline_lpips
from diffnerf_ns.depth_convention import ray_to_z_depth
from diffnerf_ns.fields.hash_backend import select_hash_backend
from diffnerf_ns.metrics import depth_metrics, image_metrics
from diffnerf_ns.models.patch_regulariser import PatchRegulariser, PatchRegulariserConfig


@dataclass
class DiffNerfModelConfig(DepthNerfactoModelConfig):
    """diffnerf model; every nerfacto / depth-nerfacto flag still applies."""

    _target: type = field(default_factory=lambda: DiffNerfModel)
    implementation: Literal["auto", "tcnn", "torch"] = "auto"  # type: ignore[assignment]
    """Hash-grid backend: 'auto' uses tiny-cuda-nn when importable with CUDA, else pure torch."""
    predict_normals: bool = False
    """Train nerfacto's predicted-normal head (costs a density-gradient pass every training step)."""
    render_normals: bool = True
    """Render density-gradient normals when not training (viewer, ns-export's default normal method),
    so training does not pay for them."""
    disable_scene_contraction: bool = True
    """Indoor scenes are bounded: the dataparser's scene box covers the room, rays are clipped to it."""
    proposal_initial_sampler: Literal["piecewise", "uniform"] = "uniform"
    """Uniform sampling suits rays clipped to a bounded box."""
    near_plane: float = 0.05
    """Closest distance (scene units; metres for the nyu dataparser) a ray may hit."""
    depth_loss_mult: float = 1e-2
    """Weight of the depth loss; Kinect depth is dense and reliable, so stronger than depth-nerfacto's 1e-3."""
    regulariser: PatchRegulariserConfig = field(default_factory=PatchRegulariserConfig)
    """Diffusion-prior patch regulariser (DiffusioNeRF); off unless a prior is given."""


class DiffNerfModel(DepthNerfactoModel):
    """Depth-nerfacto for bounded RGB-D rooms, plus the diffusion-prior patch regulariser."""

    config: DiffNerfModelConfig

    def populate_modules(self) -> None:
        self.config = dataclasses.replace(self.config, implementation=select_hash_backend(self.config.implementation))
        with offline_lpips():
            super().populate_modules()
        self.collider = AABBBoxCollider(self.scene_box, near_plane=self.config.near_plane)
        self.metres_per_unit = 1.0 / float(self.kwargs.get("metadata", {}).get("dataparser_scale", 1.0))
        self.regulariser: PatchRegulariser | None = self.config.regulariser.setup(model=self)
        if self.regulariser is not None:
            # The viewer only finds controls that are attributes of nn.Modules, so expose the switch here.
            self.prior_regulariser_switch = self.regulariser.enabled

    def get_outputs(self, ray_bundle: RayBundle) -> dict[str, torch.Tensor]:
        outputs = super().get_outputs(ray_bundle)
        if not self.training and self.config.render_normals and not self.config.predict_normals:
            outputs["normals"] = self.density_normals(ray_bundle)
        return outputs

    def density_normals(self, ray_bundle: RayBundle) -> torch.Tensor:
        """Normals from the density gradient, rendered and shaded to [0, 1] (a second, inference-only pass)."""
        ray_samples, _, _ = self.proposal_sampler(ray_bundle, density_fns=self.density_fns)
        field_outputs = self.field.forward(ray_samples, compute_normals=True)
        weights = ray_samples.get_weights(field_outputs[FieldHeadNames.DENSITY])
        normals = self.renderer_normals(normals=field_outputs[FieldHeadNames.NORMALS], weights=weights)
        return self.normals_shader(normals)

    def get_training_callbacks(self, attributes: TrainingCallbackAttributes) -> list[TrainingCallback]:
        callbacks = super().get_training_callbacks(attributes)
        if self.regulariser is not None:
            callbacks.extend(self.regulariser.training_callbacks(attributes))
        return callbacks

    def get_metrics_dict(self, outputs, batch) -> dict[str, torch.Tensor]:
        if self.training and "depth_confidence" in batch:
            # Confidence weighting without rewriting nerfstudio's depth losses: keep each ray's depth
            # with probability equal to its confidence, so the expected loss is confidence-weighted.
            conf = batch["depth_confidence"].to(batch["depth_image"].device)
            keep = torch.rand_like(conf) < conf
            batch = {**batch, "depth_image": batch["depth_image"] * keep}
        return super().get_metrics_dict(outputs, batch)

    def get_loss_dict(self, outputs, batch, metrics_dict=None) -> dict[str, torch.Tensor]:
        loss_dict = super().get_loss_dict(outputs, batch, metrics_dict)
        if self.training and self.regulariser is not None:
            loss_dict.update(self.regulariser.loss_dict(batch))
        return loss_dict

    @torch.no_grad()
    def get_outputs_for_camera(self, camera: Cameras, obb_box: OrientedBox | None = None) -> dict[str, torch.Tensor]:
        outputs = super().get_outputs_for_camera(camera, obb_box=obb_box)
        if self.regulariser is not None:
            z = ray_to_z_depth(outputs["depth"], outputs["directions_norm"])
            outputs["prior_score"] = self.regulariser.score_map(outputs["rgb"], z[..., 0] * self.metres_per_unit)
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
