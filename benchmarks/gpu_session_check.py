"""Step 0 of benchmarks/gpu_session.sh: fail fast, before GPU minutes are spent, when this Python cannot run it.

Imports every module the session's steps import (nerfstudio, diffusers and this package included), checks
that this package's nerfstudio entry points are registered and, unless `--smoke`, that torch sees CUDA.
Prints the versions that the reports will rest on.
"""

from __future__ import annotations

import importlib
import importlib.metadata as metadata
import sys
import traceback
from dataclasses import dataclass

import tyro

MODULES = (
    "torch",
    "nerfstudio",
    "diffusers",
    "accelerate",
    "nerfstudio.configs.method_configs",
    "diffnerf_ns.diffnerf_config",
    "diffnerf_ns.fields.triton_hash_encoding",
    "data_converters.synthetic.corpus",
    "data_converters.layouts.threedmatch",
    "benchmarks.bench_hashgrid_gpu",
    "benchmarks.train_default_prior",
    "benchmarks.bench_prior_refine",
)
VERSIONS = ("torch", "triton", "numpy", "nerfstudio", "diffusers", "accelerate", "huggingface-hub", "tyro")


@dataclass
class Check:
    smoke: bool = False
    """CPU dry run: no CUDA needed."""


def main(check: Check) -> None:
    failed = []
    for name in MODULES:
        try:
            importlib.import_module(name)
        except Exception:  # any failure here is the message the session needs
            failed.append(name)
            print(f"IMPORT FAILED: {name}\n{traceback.format_exc()}", file=sys.stderr)
    if failed:
        sys.exit(
            f"gpu_session_check: cannot import {', '.join(failed)}: a wheel is missing from wheelhouse/ or "
            "breaks against the image (scripts/build_wheelhouse.sh lists what it carries)"
        )
    methods = {ep.name for ep in metadata.entry_points(group="nerfstudio.method_configs")}
    if "diffnerf" not in methods:
        sys.exit(
            f"gpu_session_check: diffnerf-ns entry points not registered (nerfstudio sees {sorted(methods)}); "
            "the wheelhouse must hold the diffnerf_ns wheel"
        )
    import torch

    versions = {}
    for dist in VERSIONS:
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[dist] = "absent"
    print("python", sys.version.split()[0], "|", ", ".join(f"{k} {v}" for k, v in versions.items()))
    if torch.cuda.is_available():
        print("cuda:", torch.cuda.get_device_name(), "torch cuda", torch.version.cuda)
    elif not check.smoke:
        sys.exit("gpu_session_check: torch sees no CUDA device (was the image's CUDA torch replaced?)")
    print("gpu_session_check: ok")


if __name__ == "__main__":
    main(tyro.cli(Check))
