"""The prior the package ships: within the size limit, loads, and refines a real frame better than nearest fill.

Skipped (with the reason) while the package ships no prior: `benchmarks/ship_prior.py --package` installs one
only when this passes with it. `DIFFNERF_PRIOR_UNDER_TEST=<folder>` runs the same checks on any prior folder
(the development checkpoint, say) without shipping it.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from benchmarks.bench_prior_refine import _read_mm
from diffnerf_ns.data_split import sun3d_group
from diffnerf_ns.prior.baselines import nearest_fill
from diffnerf_ns.prior.cli import SHIPPABLE_MB
from diffnerf_ns.prior.model import RGBDPrior
from diffnerf_ns.prior.refine import RefineConfig, refine_depth
from diffnerf_ns.prior.shipped import default_prior_path

CROP = (slice(288, 480), slice(160, 416))
"""192 x 256 px of the frame (CPU time): the lower middle, where the donor's flipped holes hide ~2,000 valid px."""


def _prior_under_test() -> Path:
    named = os.environ.get("DIFFNERF_PRIOR_UNDER_TEST")
    path = Path(named) if named else default_prior_path()
    if path is None:
        pytest.skip("the package ships no prior yet (benchmarks/prior_checkpoint holds the development one)")
    return path


def test_shipped_prior_fits_loads_and_beats_nearest_fill_on_a_real_frame(fixtures_dir: Path) -> None:
    """On a SUN3D frame from the scored fragment, valid sensor pixels hidden under a real hole shape from the
    other fragment: the prior's RMSE at the hidden pixels is below nearest fill's. Catches shipping a prior that
    only wins on synthetic rooms, one over the package limit, or one that no longer loads. A necessary condition,
    not a sufficient one: the first GPU prior passes here (0.0323 against 0.0341 m, calibrated) yet loses on the
    whole benchmark frames, so shipping also needs `bench_prior_refine`'s real-frame table.

    The same refinement's confidence and interval, with the prior's calibration: the most confident third of the
    hidden pixels errs less than the least confident third (0.012 against 0.022 m), and the 90% interval holds the
    sensor at 85-98% of them (95.8%). Catches, in the quick suite, an inverted or uninformative confidence, and an
    interval left uncalibrated so wide that it says nothing (the spread-alone calibration fitted on synthetic rooms
    held 98.7% on real validation frames)."""
    path = _prior_under_test()
    weights = path / "unet" / "diffusion_pytorch_model.safetensors"
    assert weights.stat().st_size / 1e6 <= SHIPPABLE_MB
    prior = RGBDPrior.from_pretrained(path)
    sun3d = fixtures_dir / "sun3d_study_100"
    scored = sorted((sun3d / sun3d_group("scored")).glob("frame-*.depth.png"))[25]
    donor = sorted((sun3d / sun3d_group("prior")).glob("frame-*.depth.png"))[0]
    truth = _read_mm(scored)[CROP]
    rgb = np.asarray(Image.open(str(scored).replace(".depth.png", ".color.png")).convert("RGB"))[CROP]
    hidden = np.flipud(_read_mm(donor) <= 0)[CROP] & (truth > 0)  # flipped: Kinect shadows keep their side
    raw = np.where(hidden, 0.0, truth).astype(np.float32)
    assert hidden.sum() > 1000
    result = refine_depth(prior, rgb, raw, RefineConfig(steps=10, samples=4))
    prior_rmse = float(np.sqrt(((result.depth - truth)[hidden] ** 2).mean()))
    nearest_rmse = float(np.sqrt(((nearest_fill(raw) - truth)[hidden] ** 2).mean()))
    errors, confidence = np.abs(result.depth - truth)[hidden], result.confidence[hidden]
    low, high = np.quantile(confidence, [1 / 3, 2 / 3])
    least, most = errors[confidence <= low].mean(), errors[confidence > high].mean()
    coverage = float(((truth >= result.lower) & (truth <= result.upper))[hidden].mean())
    print({"prior": prior_rmse, "nearest fill": nearest_rmse, "hidden pixels": int(hidden.sum())})
    print({"90% interval coverage": coverage, "least confident third": least, "most confident third": most})
    assert prior_rmse < nearest_rmse
    assert most < 0.8 * least
    assert 0.85 <= coverage <= 0.98
