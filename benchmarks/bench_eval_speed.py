"""ns-eval speed of one trained run, before and after a code change (same checkpoint, same command).

    python -m benchmarks.bench_eval_speed --config outputs/.../config.yml --before 4a4bdd2

The `before` tree is `git archive`d into a temporary folder and put first on PYTHONPATH, the `after`
tree is this checkout; both run the real `ns-eval` in a child process with the same thread count.
Reported: the child's wall and CPU time, and nerfstudio's own per-view render rate (fps, rays/s)
from the eval JSON. The two runs alternate `repeats` times, so load from other jobs hits both alike.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import tyro

REPO = Path(__file__).resolve().parents[1]


def run_eval(code: Path, config: Path, out: Path, threads: int) -> dict[str, float]:
    """One `ns-eval` in a child process importing diffnerf_ns from `code`; timings and render rates."""
    env = {**os.environ, "PYTHONPATH": str(code), "OMP_NUM_THREADS": str(threads), "HF_HUB_OFFLINE": "1"}
    cmd = [sys.executable, "-c", "from nerfstudio.scripts.eval import entrypoint; entrypoint()"]
    cmd += ["--load-config", str(config), "--output-path", str(out)]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(cmd, check=True, env=env, cwd=code, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    results = json.loads(out.read_text())["results"]
    return {
        "wall_s": wall,
        "cpu_s": (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime),
        "fps": results["fps"],
        "rays_per_s": results["num_rays_per_sec"],
        "psnr": results["psnr"],
    }


@dataclass
class EvalSpeed:
    """Time ns-eval of one run with the code at `before` and with this checkout."""

    config: Path
    """config.yml of a trained diffnerf run."""
    before: str = "4a4bdd2"
    """git ref of the code to compare against."""
    repeats: int = 1
    threads: int = 1
    out: Path = Path("benchmarks/results/eval_speed_cpu.md")
    note: str = ""
    """What the scene and run are (goes into the table)."""

    def main(self) -> None:
        rows: dict[str, list[dict[str, float]]] = {"before": [], "after": []}
        with tempfile.TemporaryDirectory() as tmp:
            base = Path(tmp) / "before"
            base.mkdir()
            archive = subprocess.run(["git", "archive", self.before], cwd=REPO, check=True, capture_output=True)
            subprocess.run(["tar", "-x", "-C", str(base)], input=archive.stdout, check=True)
            for i in range(self.repeats):
                for name, code in (("before", base), ("after", REPO)):
                    rows[name].append(
                        run_eval(code, self.config.resolve(), Path(tmp) / f"{name}{i}.json", self.threads)
                    )
                    print(name, rows[name][-1], flush=True)
        mean = {k: {m: sum(r[m] for r in v) / len(v) for m in v[0]} for k, v in rows.items()}
        lines = [
            "# ns-eval speed on CPU, before/after",
            "",
            f"Run: `{self.config}`. {self.note}",
            f"Machine: {os.cpu_count()} cores shared with other jobs "
            f"(load average {os.getloadavg()[0]:.1f} at the end); "
            f"OMP_NUM_THREADS={self.threads}; {self.repeats} alternating run(s) each.",
            "",
            f"Command: `python -m benchmarks.bench_eval_speed --config {self.config} --before {self.before} "
            f"--repeats {self.repeats} --threads {self.threads}`",
            "",
            "| code | ns-eval wall s | ns-eval CPU s | render fps (nerfstudio) | rays/s (nerfstudio) | PSNR |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        for name, ref in (("before", self.before), ("after", "this checkout")):
            m = mean[name]
            lines.append(
                f"| {name} ({ref}) | {m['wall_s']:.1f} | {m['cpu_s']:.1f} | {m['fps']:.4f} | {m['rays_per_s']:.0f} | "
                f"{m['psnr']:.3f} |"
            )
        b, a = mean["before"], mean["after"]
        lines += [
            "",
            f"Speed-up: {b['wall_s'] / a['wall_s']:.2f}x ns-eval wall time, {b['cpu_s'] / a['cpu_s']:.2f}x CPU time, "
            f"{a['rays_per_s'] / b['rays_per_s']:.2f}x render rate. Identical PSNR is expected: only the normals pass "
            "is skipped.",
            "",
        ]
        self.out.parent.mkdir(parents=True, exist_ok=True)
        self.out.write_text("\n".join(lines))
        print("\n".join(lines))


if __name__ == "__main__":
    tyro.cli(EvalSpeed).main()
