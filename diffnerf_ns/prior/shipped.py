"""The one place that says where the shipped RGB-D prior lives."""

from __future__ import annotations

from pathlib import Path

PACKAGED_PRIOR_DIR = Path(__file__).resolve().parent / "pretrained"
"""Folder (`unet/` + `scheduler/`, as `RGBDPrior.save_pretrained` writes) installed with the package."""


def default_prior_path() -> Path | None:
    """The packaged prior folder, or None when this install ships none (then a prior must be named)."""
    return PACKAGED_PRIOR_DIR if (PACKAGED_PRIOR_DIR / "unet" / "config.json").is_file() else None


def require_default_prior() -> Path:
    """`default_prior_path()`, or an error that says how to get a prior."""
    path = default_prior_path()
    if path is None:
        raise FileNotFoundError(
            f"No prior is shipped with this install ({PACKAGED_PRIOR_DIR} has none). Name one with "
            "--pipeline.model.regulariser.prior-path <folder>; train one with `diffnerf-prior train` "
            "or fit one to the scene with `diffnerf-prior fit-scene`."
        )
    return path
