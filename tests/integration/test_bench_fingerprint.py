"""The NeRF benchmark's cache: a stored run is reused only when nothing it depends on changed, and the table's
printed command rebuilds the same benchmark."""

from __future__ import annotations

import json
import shlex
import subprocess
from pathlib import Path

import pytest
import tyro

import benchmarks.bench_nerf as bench_nerf
from benchmarks.bench_nerf import Bench
from benchmarks.nerf_report import reuse_note


@pytest.fixture
def fake_harness(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """Stands in for the harness process: records its command and writes a result where it is told to."""
    calls: list[list[str]] = []
    real_run = subprocess.run

    def run(cmd: list[str], **kwargs) -> subprocess.CompletedProcess:
        if "benchmarks.nerf_harness" not in cmd:
            return real_run(cmd, **kwargs)  # git, for the commit recorded beside each result
        calls.append(cmd)
        out = Path(cmd[cmd.index("--out") + 1])
        out.write_text(json.dumps({"psnr": 20.0 + len(calls)}))
        return subprocess.CompletedProcess(cmd, 0)

    monkeypatch.setattr(bench_nerf.subprocess, "run", run)
    return calls


def _view(root: Path) -> Path:
    view = root / "view"
    for sub in ("images", "depth"):
        (view / sub).mkdir(parents=True)
        (view / sub / "0.png").write_bytes(b"frame")
    (view / "transforms.json").write_text("{}")
    return view


def test_cached_runs_are_keyed_by_budget_code_inputs_and_prior(
    tmp_path: Path, fake_harness: list[list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Catches the old cache, which reused any result with the same scene/setting/method/seed: a changed budget,
    prior, depth file or code must train again, and an unchanged run must not."""
    view, prior = _view(tmp_path), tmp_path / "prior"
    prior.mkdir()
    (prior / "weights.safetensors").write_bytes(b"v1")
    bench = Bench(workdir=tmp_path / "work", iterations=10)

    def run(b: Bench = bench) -> dict:
        return b.run("diffnerf-reg", "room1", "few3", view, tmp_path / "ref.npy", prior, 0)

    first = run()
    assert not first["reused"] and first["commit"] and len(first["fingerprint"]) == 16
    assert run()["reused"] and len(fake_harness) == 1
    assert not run(Bench(workdir=tmp_path / "work", iterations=20))["reused"]
    (prior / "weights.safetensors").write_bytes(b"v2")
    assert not run()["reused"]
    (view / "depth" / "0.png").write_bytes(b"other frame")
    assert not run()["reused"]
    monkeypatch.setattr(bench_nerf, "code_fingerprint", lambda: "another checkout")
    assert not run()["reused"]
    assert len(fake_harness) == 5
    note = reuse_note([first, {**first, "reused": True}], tmp_path)
    assert note.startswith("Runs: 1 trained by this invocation, 1 reused") and first["commit"] in note


def test_printed_command_rebuilds_the_same_benchmark() -> None:
    """Catches a command that drops a flag the table depends on (the prior's minutes were missing; pose
    refinement and the regulariser's cadence are new)."""
    bench = Bench(
        scenes=("room1", "sun3d"),
        settings=("few3",),
        iterations=120,
        seeds=(0, 1),
        prior_minutes=3.5,
        dense_pose_refinement="off",
        few_view_pose_refinement="SO3xR3",
        regulariser_every_n_steps=4,
    )
    argv = shlex.split(bench.command())
    assert argv[:3] == ["python", "-m", "benchmarks.bench_nerf"]
    assert tyro.cli(Bench, args=argv[3:]) == bench
