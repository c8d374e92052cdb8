"""The NeRF benchmark's report: the markdown table (mean ± std per scene group, ratios against the peer) and the plot.

Every number in it comes from the runs' result JSONs; the notes say which prior the prior rows used and which
runs were reused from earlier invocations, so a table can be traced to the code and inputs behind it.
"""

from __future__ import annotations

import json
import os
import platform
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from benchmarks.fingerprint import folder_fingerprint
from benchmarks.nerf_scenes import BenchScene
from diffnerf_ns.data_split import EVAL_INTERVAL

if TYPE_CHECKING:
    from benchmarks.bench_nerf import Bench

PEER = "depth-nerfacto"
COLUMNS = (  # (result key, header, format)
    ("psnr", "PSNR", ".2f"),
    ("ssim", "SSIM", ".3f"),
    ("depth_abs_rel", "AbsRel", ".3f"),
    ("depth_rmse", "RMSE m", ".3f"),
    ("chamfer", "Chamfer m", ".3f"),
    ("fscore", "F@5cm", ".3f"),
    ("seconds_per_iteration", "s/it", ".2f"),
    ("rays_per_second", "rays/s", ".0f"),
    ("peak_memory_mb", "peak MB", ".0f"),
)
RATIOS = ("depth_abs_rel", "chamfer", "seconds_per_iteration")


def prior_note(prior: Path) -> str:
    """Which prior the prior rows used (content fingerprint), and how long it trained (its `train_*.json`)."""
    note = f"Prior: `{prior}` (fingerprint {folder_fingerprint(prior)})"
    config, stats = prior / "train_config.json", prior / "train_stats.json"
    if config.exists() and stats.exists():
        c, s = json.loads(config.read_text()), json.loads(stats.read_text())
        note += (
            f", {c['patch_size']} px patches, UNet {tuple(c['block_out_channels'])}, trained {s['steps']} steps "
            f"x batch {c['batch_size']} in {s['seconds'] / 60:.1f} min on {s['device']} on "
            f"{', '.join(Path(d).name for d in c['data'])}"
        )
    return note + "."


def reuse_note(runs: list[dict], where: Path) -> str:
    """How many NeRF runs this invocation trained, and at which commits and when the reused ones were trained
    (TSDF-fusion rows are computed each time and are not runs)."""
    runs = [r for r in runs if "reused" in r]
    reused = [r for r in runs if r["reused"]]
    note = (
        f"Runs: {len(runs) - len(reused)} trained by this invocation, {len(reused)} reused from earlier ones in "
        f"`{where}` (same harness flags and budget, input files, prior and package versions, and every project "
        "source the run imported unchanged)"
    )
    if reused:
        by_commit: dict[str, list[str]] = {}
        for r in reused:
            by_commit.setdefault(r.get("commit", "unknown commit"), []).append(r.get("finished", "unknown date"))
        origins = [
            f"{commit} ({len(dates)} runs, {min(dates)} to {max(dates)})" for commit, dates in sorted(by_commit.items())
        ]
        note += f", trained at {'; '.join(origins)}"
    return note + ". Each result JSON carries its fingerprint, commit and the hashes of the sources it ran."


def summarise(values: list[float], fmt: str) -> str:
    """`mean ± std` over scenes (just the value for one)."""
    if not values:
        return "—"
    if len(values) == 1:
        return format(values[0], fmt)
    return f"{format(float(np.mean(values)), fmt)} ± {format(float(np.std(values)), fmt)}"


def scene_group(scene: str) -> str:
    """The row group a scene is averaged in: the synthetic rooms together, each real scene on its own."""
    return "synthetic rooms" if scene.startswith("room") else scene


def write_report(
    bench: Bench,
    scenes: dict[str, BenchScene],
    results: dict,
    seconds: float,
    prior: Path | None,
    skipped: Sequence[str] = (),
) -> None:
    """Write the table (and the plot beside it) to `bench.report` and print it; `skipped` names the scene/setting
    pairs that have no rows because the scene has too few frames for the setting."""
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else f"CPU ({os.cpu_count()} cores)"
    groups: dict[str, list[str]] = {"synthetic rooms": []}  # table row group -> scenes averaged in it
    for name in scenes:
        groups.setdefault(scene_group(name), []).append(name)
    lines = [
        "# diffnerf vs depth-nerfacto on Kinect-corrupted input: does the diffusion prior help?",
        "",
        f"Command: `{bench.command()}`  ",
        f"Machine: {platform.machine()} {device}, Python "
        f"{platform.python_version()}, torch {torch.__version__}; {bench.jobs} runs in parallel, one thread each. "
        f"Wall time {seconds / 60:.0f} min.  ",
        f"Budget: {bench.iterations} iterations x {bench.rays_per_batch} rays per batch for every NeRF "
        f"(patch rays of the regulariser come on top and are counted in rays/s); model-size preset "
        f"{'small (CPU)' if bench.small else 'default'} for every method; seeds {list(bench.seeds)}. "
        f"Held out: every {EVAL_INTERVAL}th frame.  ",
        "Scenes: " + "; ".join(f"`{k}`: {v.note}" for k, v in scenes.items()) + ".  ",
        *(
            [f"Not run: {', '.join(skipped)} (the scene has fewer training frames than twice the setting's views).  "]
            if skipped
            else []
        ),
        *([prior_note(prior) + "  "] if prior else []),
        "Cells: mean ± std over the scenes (and seeds) of the group. Depth: planar z in metres on the held-out "
        "views against clean truth (synthetic) or the sensor's valid pixels (SUN3D). Chamfer (m) and F-score "
        "at 5 cm: all views' rendered depth against the true surface (synthetic: clean geometry aligned to the "
        "estimated world frame; SUN3D: TSDF of all 100 frames). Ratios: mean of per-scene ratios against "
        f"`{PEER}` as users run it (PSNR: difference in dB). s/it and rays/s count every rendered ray; peak "
        "memory is the run's process peak RSS on CPU, CUDA max allocated on GPU.",
        "",
        "| scenes | setting | pose refinement | method | "
        + " | ".join(h for _, h, _ in COLUMNS)
        + " | PSNR Δ dB | AbsRel × | Chamfer × | s/it × |",
        "|" + "---|" * (len(COLUMNS) + 8),
    ]
    for group, members in groups.items():
        for setting in bench.settings:
            per_scene = {s: results[(s, setting)] for s in members if (s, setting) in results}
            if not per_scene:
                continue
            for method in bench.methods:
                runs = [(s, r) for s, rows in per_scene.items() for r in rows.get(method, [])]
                if not runs:
                    continue
                cells = [summarise([r[k] for _, r in runs if k in r], f) for k, _, f in COLUMNS]
                peer = {s: rows[PEER][0] for s, rows in per_scene.items() if PEER in rows}
                diffs = [r["psnr"] - peer[s]["psnr"] for s, r in runs if s in peer and "psnr" in r]
                cells.append(summarise(diffs, "+.2f"))
                for k in RATIOS:
                    cells.append(
                        summarise([r[k] / peer[s][k] for s, r in runs if s in peer and k in r and peer[s][k]], ".2f")
                    )
                row = [group, setting, bench.pose_refinement(setting), method, *cells]
                lines.append("| " + " | ".join(row) + " |")
    runs = [r for rows in results.values() for method_runs in rows.values() for r in method_runs]
    lines += ["", reuse_note(runs, bench.runs_dir()), ""]
    png = bench.report.with_suffix(".png")
    plot(bench, groups["synthetic rooms"] or list(scenes), results, png)
    lines.append(f"![key comparison]({png.name})")
    bench.report.parent.mkdir(parents=True, exist_ok=True)
    bench.report.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def plot(bench: Bench, members: list[str], results: dict, path: Path) -> None:
    """Held-out PSNR and depth AbsRel per method and setting (mean ± std over `members`)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    methods = [m for m in bench.methods if m != "tsdf-fusion"]
    fig, axes = plt.subplots(1, 2, figsize=(12, 4))
    width = 0.8 / max(len(methods), 1)
    for ax, key, label in (
        (axes[0], "psnr", "held-out PSNR (dB), higher is better"),
        (axes[1], "depth_abs_rel", "held-out depth AbsRel, lower is better"),
    ):
        for j, method in enumerate(methods):
            means, stds = [], []
            for setting in bench.settings:
                v = [r[key] for s in members for r in results.get((s, setting), {}).get(method, [])]
                means.append(np.mean(v) if v else np.nan)
                stds.append(np.std(v) if v else 0.0)
            x = np.arange(len(bench.settings)) + (j - (len(methods) - 1) / 2) * width
            ax.bar(x, means, width, yerr=stds, label=method, capsize=2)
        ax.set_xticks(np.arange(len(bench.settings)), bench.settings)
        ax.set_title(label)
    axes[1].set_yscale("log")  # the peer's metre-scale errors would flatten every other bar
    axes[0].legend(fontsize=7)
    fig.suptitle(f"{', '.join(members)}: {bench.iterations} it x {bench.rays_per_batch} rays (mean ± std)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
