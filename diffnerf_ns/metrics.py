"""Depth accuracy metrics shared by ns-eval and the benchmarks (standard NYU definitions)."""

from __future__ import annotations

import torch


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
