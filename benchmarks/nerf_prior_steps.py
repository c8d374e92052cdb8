"""The NeRF benchmark's prior steps, each a child process through the prior's CLI: training the default prior on
the development room, and refining a view's training depth with it (stage 1 of the prior rows).

Both are done once and reused: the prior while its folder holds one, the refined depth while the prior, the
packages and the sources the refinement imported are unchanged.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.fingerprint import folder_fingerprint, package_versions, sources_unchanged
from benchmarks.nerf_scenes import development_room, synthetic_scene
from diffnerf_ns.prior.refine import REFINED_LAYERS


def development_prior(workdir: Path, downscale: int, minutes: float, env: dict[str, str]) -> Path:
    """`workdir/prior`: a CPU-sized prior trained on the development room (never a benchmark room), at most
    `minutes` long; trained only if the folder holds none."""
    out = workdir / "prior"
    if not (out / "model_index.json").exists() and not (out / "unet").is_dir():
        dev = synthetic_scene("dev_room", *development_room(), workdir / "development", downscale)
        cmd = [
            sys.executable, "-m", "diffnerf_ns.prior.cli", "train", "--data", str(dev.scene_dir), "--out",
            str(out), "--patch-size", "24", "--block-out-channels", "32", "64", "128", "--layers-per-block",
            "1", "--no-attention", "--steps", "3000", "--batch-size", "16", "--lr", "1e-3", "--warmup-steps",
            "100", "--ema-decay", "0.995", "--max-minutes", str(minutes),
        ]  # fmt: skip
        print(f"[{time.strftime('%H:%M:%S')}] training the development prior: {' '.join(cmd)}", flush=True)
        subprocess.run(cmd, check=True, env=env)
    return out


def refine_view(view: Path, prior: Path, env: dict[str, str]) -> None:
    """Stage 1 on a view's training frames (the only ones supervised with it), through the prior's CLI; redone
    when the prior, the packages or a source the refinement imported changed."""
    meta = json.loads((view / "transforms.json").read_text())
    train = set(meta["train_filenames"])
    stamp, record = view / "refined_with.json", view / "refined_sources.json"
    key = {"prior": folder_fingerprint(prior), "packages": package_versions()}
    done = all(k in f for f in meta["frames"] if f["file_path"] in train for k in REFINED_LAYERS)
    if done and stamp.exists():  # layers are written before the stamp
        stored = json.loads(stamp.read_text())
        if {k: stored.get(k) for k in key} == key and sources_unchanged(stored.get("sources", {})):
            return
    cli = ["diffnerf_ns.prior.cli", "refine", "--scene", str(view), "--prior", str(prior), "--train-only"]
    print(f"[{time.strftime('%H:%M:%S')}] refining the {len(train)} training frames of {view}", flush=True)
    cmd = [sys.executable, "-m", "benchmarks.fingerprint", str(record), *cli]
    subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL)
    stamp.write_text(json.dumps({**key, "sources": json.loads(record.read_text())}))
    record.unlink()
