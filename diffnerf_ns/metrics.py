"""Every evaluation number of the project, in one place: ns-eval (through the model) and the benchmarks call it.

- image metrics: PSNR, SSIM, and LPIPS when its weights are on disk (see diffnerf_ns.compat);
- depth metrics: AbsRel, RMSE, delta < 1.25 (standard NYU definitions) on planar z-depth;
- surface metrics: accuracy (prediction to truth), completeness (truth to prediction), Chamfer distance and
  F-score between point sets, and completeness restricted to a subset of the truth (the sensor's holes);
- trajectory error: ATE after rigid alignment, relative rotation error.

Inputs are ground truth and prediction in the same frame and units; conversions (ray distance to
z-depth: diffnerf_ns.depth_convention, dataparser transforms, world alignment) happen before.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.spatial import cKDTree
from scipy.spatial.transform import Rotation
from torchmetrics.functional.image import peak_signal_noise_ratio, structural_similarity_index_measure


def image_metrics(pred: torch.Tensor, gt: torch.Tensor, lpips: torch.nn.Module | None = None) -> dict[str, float]:
    """PSNR, SSIM (and LPIPS if a module is given) of (H, W, 3) images in [0, 1]."""
    if pred.shape != gt.shape or pred.shape[-1] != 3:
        raise ValueError(f"image_metrics: expected two (H, W, 3) images, got {tuple(pred.shape)} and {tuple(gt.shape)}")
    p, g = (torch.moveaxis(x.float().clamp(0, 1), -1, 0)[None] for x in (pred, gt.to(pred.device)))
    metrics = {
        "psnr": float(peak_signal_noise_ratio(p, g, data_range=1.0)),
        "ssim": float(structural_similarity_index_measure(p, g, data_range=1.0)),
    }
    if lpips is not None:
        metrics["lpips"] = float(lpips(p, g))
    return metrics


def depth_metrics(pred: torch.Tensor, gt: torch.Tensor, valid: torch.Tensor | None = None) -> dict[str, float]:
    """AbsRel, RMSE (in the inputs' units) and delta < 1.25 over pixels with valid ground truth."""
    mask = gt > 0 if valid is None else valid & (gt > 0)
    p, g = pred[mask].float(), gt[mask].float()
    if g.numel() == 0:
        raise ValueError("depth_metrics: no pixel has valid ground-truth depth")
    p = p.clamp(min=1e-6)
    ratio = torch.maximum(p / g, g / p)
    return {
        "depth_abs_rel": float(((p - g).abs() / g).mean()),
        "depth_rmse": float(((p - g) ** 2).mean().sqrt()),
        "depth_delta1": float((ratio < 1.25).float().mean()),
    }


def surface_metrics(
    pred: np.ndarray, gt: np.ndarray, threshold: float = 0.05, max_points: int = 200_000, seed: int = 0
) -> dict[str, float]:
    """Accuracy (mean distance of predicted points to the truth, metres), completeness (mean distance of true points
    to the prediction), Chamfer distance (the mean of the two) and F-score at `threshold` between point sets."""
    if len(pred) == 0:
        inf = float("inf")
        return {"accuracy": inf, "completeness": inf, "chamfer": inf, "fscore": 0.0, "precision": 0.0, "recall": 0.0}
    rng = np.random.default_rng(seed)
    pred, gt = (p[rng.choice(len(p), max_points, replace=False)] if len(p) > max_points else p for p in (pred, gt))
    to_gt, _ = cKDTree(gt).query(pred)
    to_pred, _ = cKDTree(pred).query(gt)
    precision, recall = float((to_gt < threshold).mean()), float((to_pred < threshold).mean())
    return {
        "accuracy": float(to_gt.mean()),
        "completeness": float(to_pred.mean()),
        "chamfer": float(0.5 * (to_gt.mean() + to_pred.mean())),
        "fscore": 2 * precision * recall / max(precision + recall, 1e-12),
        "precision": precision,
        "recall": recall,
    }


def subset_completeness(
    pred: np.ndarray, subset: np.ndarray, threshold: float = 0.05, max_points: int = 200_000, seed: int = 0
) -> dict[str, float]:
    """Completeness over a subset of the true surface (e.g. where the sensor had holes): the mean distance of its
    points to the prediction (metres) and the fraction within `threshold` (recall). NaN when the subset is empty."""
    if len(subset) == 0:
        return {"completeness": float("nan"), "recall": float("nan")}
    if len(pred) == 0:
        return {"completeness": float("inf"), "recall": 0.0}
    rng = np.random.default_rng(seed)
    if len(pred) > max_points:
        pred = pred[rng.choice(len(pred), max_points, replace=False)]
    to_pred, _ = cKDTree(pred).query(subset)
    return {"completeness": float(to_pred.mean()), "recall": float((to_pred < threshold).mean())}


def align_rigid(est_c2w: np.ndarray, gt_c2w: np.ndarray) -> np.ndarray:
    """4x4 rigid transform (Kabsch on camera centres, no scale: depth gives metric scale) mapping est to gt.

    Estimated poses live in their own world frame (first camera, or gravity-levelled); geometry and
    trajectories are compared only after this alignment.
    """
    est_t, gt_t = est_c2w[:, :3, 3], gt_c2w[:, :3, 3]
    est_mean, gt_mean = est_t.mean(0), gt_t.mean(0)
    rot, _ = Rotation.align_vectors(gt_t - gt_mean, est_t - est_mean)
    T = np.eye(4)
    T[:3, :3] = rot.as_matrix()
    T[:3, 3] = gt_mean - T[:3, :3] @ est_mean
    return T


def absolute_trajectory_error(est_c2w: np.ndarray, gt_c2w: np.ndarray) -> float:
    """RMSE (metres) of camera centres after rigid alignment."""
    aligned = align_rigid(est_c2w, gt_c2w) @ est_c2w
    return float(np.sqrt(np.mean(np.sum((aligned[:, :3, 3] - gt_c2w[:, :3, 3]) ** 2, axis=1))))


def relative_rotation_errors(est_c2w: np.ndarray, gt_c2w: np.ndarray) -> np.ndarray:
    """Degrees of rotation error of each consecutive relative motion (independent of the world frame)."""
    rel_est = np.linalg.inv(est_c2w[:-1]) @ est_c2w[1:]
    rel_gt = np.linalg.inv(gt_c2w[:-1]) @ gt_c2w[1:]
    diff = np.transpose(rel_gt[:, :3, :3], (0, 2, 1)) @ rel_est[:, :3, :3]
    return np.rad2deg(Rotation.from_matrix(diff).magnitude())


def path_length_ratio(est_c2w: np.ndarray, gt_c2w: np.ndarray) -> float:
    """Length of the estimated camera path over the reference's: ATE after alignment hides a trajectory that
    is uniformly too short (depth terms that under-estimate motion), this ratio does not."""
    return float(
        np.linalg.norm(np.diff(est_c2w[:, :3, 3], axis=0), axis=1).sum()
        / np.linalg.norm(np.diff(gt_c2w[:, :3, 3], axis=0), axis=1).sum()
    )
