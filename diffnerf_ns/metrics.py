"""Depth accuracy metrics shared by ns-eval and the benchmarks (standard NYU definitions)."""

from __future__ import annotations

import numpy as np
import torch
from scipy.spatial import cKDTree


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
    """Chamfer distance (mean of both directions, metres) and F-score at `threshold` between point sets."""
    if len(pred) == 0:
        return {"chamfer": float("inf"), "fscore": 0.0, "precision": 0.0, "recall": 0.0}
    rng = np.random.default_rng(seed)
    pred, gt = (p[rng.choice(len(p), max_points, replace=False)] if len(p) > max_points else p for p in (pred, gt))
    to_gt, _ = cKDTree(gt).query(pred)
    to_pred, _ = cKDTree(pred).query(gt)
    precision, recall = float((to_gt < threshold).mean()), float((to_pred < threshold).mean())
    return {
        "chamfer": float(0.5 * (to_gt.mean() + to_pred.mean())),
        "fscore": 2 * precision * recall / max(precision + recall, 1e-12),
        "precision": precision,
        "recall": recall,
    }
