"""The NeRF benchmark's cache: a stored run is reused only when nothing it depends on changed, and the table's
printed command rebuilds the same benchmark."""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import tyro

import benchmarks.bench_nerf as bench_nerf
from benchmarks.bench_nerf import Bench, RunSpec
from benchmarks.fingerprint import loaded_sources, sources_unchanged
from benchmarks.nerf_report import reuse_note
from diffnerf_ns.models.patch_regulariser import PatchRegulariserConfig


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
        out.write_text(json.dumps({"psnr": 20.0 + len(calls), "sources": loaded_sources()}))
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


def test_cached_runs_are_keyed_by_budget_inputs_prior_sources_and_packages(
    tmp_path: Path, fake_harness: list[list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Catches the old cache, which reused any result with the same scene/setting/method/seed: a changed budget,
    prior, depth file, imported source or package version must train again, and an unchanged run must not."""
    view, prior = _view(tmp_path), tmp_path / "prior"
    prior.mkdir()
    (prior / "weights.safetensors").write_bytes(b"v1")
    bench = Bench(workdir=tmp_path / "work", iterations=10)

    def run(b: Bench = bench) -> dict:
        return b.run(RunSpec("diffnerf-reg", "room1", "few3", view, tmp_path / "ref.npy", prior, 0))

    first = run()
    assert not first["reused"] and first["commit"] and len(first["fingerprint"]) == 16
    assert run()["reused"] and len(fake_harness) == 1
    assert not run(Bench(workdir=tmp_path / "work", iterations=20))["reused"]
    (prior / "weights.safetensors").write_bytes(b"v2")
    assert not run()["reused"]
    (view / "depth" / "0.png").write_bytes(b"other frame")
    assert not run()["reused"]
    assert run()["reused"]
    for path in (tmp_path / "work" / "runs").rglob("*.json"):  # a source the runs imported has changed since
        result = json.loads(path.read_text())
        path.write_text(json.dumps({**result, "sources": {**result["sources"], "benchmarks/bench_nerf.py": "0" * 16}}))
    assert not run()["reused"]
    assert run()["reused"]  # retrained under today's sources
    monkeypatch.setattr(bench_nerf, "package_versions", lambda: {"torch": "another version"})
    assert not run()["reused"]
    assert len(fake_harness) == 6
    tsdf_row = {"chamfer": 0.02, "f_score": 0.9}  # computed by every invocation: not a run, trained or reused
    note = reuse_note([first, {**first, "reused": True}, tsdf_row], tmp_path)
    assert note.startswith("Runs: 1 trained by this invocation, 1 reused") and f"{first['commit']} (1 runs" in note


def test_a_new_prior_retrains_only_the_runs_that_read_it(tmp_path: Path, fake_harness: list[list[str]]) -> None:
    """Catches a key that hashes the prior into every run of a grid that has one: a new prior then discarded the
    raw-depth rows too (depth-nerfacto, diffnerf-no-prior), which never read it, at the cost of half a grid; and a
    key that drops the prior from a run that does read it."""
    view, prior = _view(tmp_path), tmp_path / "prior"
    prior.mkdir()
    (prior / "weights.safetensors").write_bytes(b"v1")
    bench = Bench(workdir=tmp_path / "work", iterations=10)
    specs = [
        RunSpec(m, "room1", "few3", view, tmp_path / "ref.npy", prior, 0)
        for m in ("depth-nerfacto", "diffnerf-no-prior", "diffnerf-reg")
    ]
    assert not any(bench.run(s)["reused"] for s in specs)
    assert not any("--prior" in call for call in fake_harness[:2]) and "--prior" in fake_harness[2]
    (prior / "weights.safetensors").write_bytes(b"v2")
    assert [bench.run(s)["reused"] for s in specs] == [True, True, False]


def test_a_prior_row_is_keyed_by_the_fraction_it_trains_with(tmp_path: Path, fake_harness: list[list[str]]) -> None:
    """The preset's patch sample fraction and the same value named by the flag are one run; another fraction is
    another run, and the harness is told the fraction either way. Catches a key that names the fraction only when
    overridden (a default change then keeps the old default's runs under the same flags), a flag that reaches the
    key but not the harness, and a fraction flag on rows that never regularise."""
    view, prior = _view(tmp_path), tmp_path / "prior"
    prior.mkdir()
    (prior / "weights.safetensors").write_bytes(b"v1")
    default = PatchRegulariserConfig.patch_sample_fraction

    def run(fraction: float | None, method: str = "diffnerf-reg") -> dict:
        bench = Bench(workdir=tmp_path / "work", iterations=10, regulariser_patch_sample_fraction=fraction)
        extra = bench.extra_flags(method, "few3")
        return bench.run(RunSpec(method, "room1", "few3", view, tmp_path / "ref.npy", prior, 0, extra))

    assert not run(None)["reused"]
    assert fake_harness[0][fake_harness[0].index("--regulariser-patch-sample-fraction") + 1] == str(default)
    assert run(default)["reused"]
    assert not run(1.0 if default != 1.0 else 0.5)["reused"]
    assert not run(None, "diffnerf-no-prior")["reused"]
    assert "--regulariser-patch-sample-fraction" not in fake_harness[-1] and len(fake_harness) == 3


def test_a_store_outside_the_workdir_carries_runs_to_a_fresh_machine(
    tmp_path: Path, fake_harness: list[list[str]]
) -> None:
    """A grid longer than a session keeps its results in the repository (`--store`) while each fresh machine has a
    new workdir: a run stored there is reused from another workdir, and the store holds only the result (the log
    and nerfstudio's outputs go under the workdir). Catches a `--store` that is ignored (results back under the
    workdir, lost with the machine), or logs and checkpoints (40 MB a grid cell) written into the repository."""
    view, store = _view(tmp_path), tmp_path / "store"
    spec = RunSpec("diffnerf-no-prior", "room1", "few3", view, tmp_path / "ref.npy", None, 0)
    assert not Bench(workdir=tmp_path / "machine1", store=store, iterations=10).run(spec)["reused"]
    assert Bench(workdir=tmp_path / "machine2", store=store, iterations=10).run(spec)["reused"]
    assert len(fake_harness) == 1 and [p.name for p in store.rglob("*") if p.is_file()] == [
        next(store.rglob("*.json")).name
    ]
    run_dir = Path(fake_harness[0][fake_harness[0].index("--run-dir") + 1])
    assert run_dir.is_relative_to(tmp_path / "machine1") and list((tmp_path / "machine1").rglob("*.log"))
    assert not (tmp_path / "machine2" / "runs").exists()


def test_redone_refinement_keeps_the_runs_that_never_read_it(tmp_path: Path, fake_harness: list[list[str]]) -> None:
    """Catches the key that hashed the view's top-level files, so a refinement re-stamped after a code change
    discarded every stored run on the view, raw-depth ones included (it did, once); and a key that ignores the
    refined layers of a run that trains on them."""
    view, bench = _view(tmp_path), Bench(workdir=tmp_path / "work", iterations=10)
    (view / "transforms.json").write_text(json.dumps({"frames": [{"file_path": "images/0.png"}]}))
    raw, refined = (
        RunSpec(m, "room1", "dense", view, tmp_path / "ref.npy", None, 0)
        for m in ("diffnerf-no-prior", "diffnerf-refined")
    )

    def refine(depth: bytes, stamp: str) -> None:
        frames = [{"file_path": "images/0.png", "refined_depth_file_path": "depth_refined/0.png"}]
        (view / "transforms.json").write_text(json.dumps({"frames": frames}))
        for layer in ("depth_refined", "depth_confidence"):
            (view / layer).mkdir(exist_ok=True)
            (view / layer / "0.png").write_bytes(depth)
        (view / "refined_with.json").write_text(stamp)

    assert not bench.run(raw)["reused"]
    refine(b"refined v1", "code v1")
    assert bench.run(raw)["reused"]
    assert not bench.run(refined)["reused"]
    refine(b"refined v1", "code v2")  # redone by changed code, same output
    assert bench.run(raw)["reused"] and bench.run(refined)["reused"]
    refine(b"refined v2", "code v3")
    assert bench.run(raw)["reused"] and not bench.run(refined)["reused"]
    assert len(fake_harness) == 3


def test_plan_counts_stored_runs_and_trains_nothing(
    tmp_path: Path, fake_harness: list[list[str]], capsys: pytest.CaptureFixture[str]
) -> None:
    """Catches a plan that counts a stored run whose sources changed as reusable, counts a run that was never
    stored, or starts training."""
    view, bench = _view(tmp_path), Bench(workdir=tmp_path / "work", iterations=10)
    jobs = [RunSpec("diffnerf-no-prior", "room1", "few3", view, tmp_path / "ref.npy", None, seed) for seed in (0, 1, 2)]
    for job in jobs[:2]:
        bench.run(job)
    stale = bench.result_path(jobs[1])[1]
    stale.write_text(json.dumps({**json.loads(stale.read_text()), "sources": {"benchmarks/bench_nerf.py": "0" * 16}}))
    trained, _ = len(fake_harness), capsys.readouterr()
    bench_nerf.print_plan(bench, jobs)
    printed = capsys.readouterr().out
    assert len(fake_harness) == trained == 2
    assert "diffnerf-no-prior" in printed and "1 /   3 stored" in printed
    assert "2 of 3 runs would train" in printed
    assert "room1/few3: diffnerf-no-prior (seed 1)" in printed and "(seed 2)" in printed and "(seed 0)" not in printed


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
        regulariser_patch_sample_fraction=0.25,
        store=Path("benchmarks/results/nerf_runs"),
    )
    argv = shlex.split(bench.command())
    assert argv[:3] == ["python", "-m", "benchmarks.bench_nerf"]
    assert tyro.cli(Bench, args=argv[3:]) == bench


def test_recorded_sources_are_the_imported_project_files_by_content(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Catches a record that lists files outside the project (a reinstalled torch would then never match, or a moved
    checkout), one that misses an imported module (its edits would be reused silently), an unchanged check that
    ignores content, and a run cached before sources were recorded being reused unchecked."""
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "step.py").write_text("VALUE = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    import pkg.step  # noqa: F401

    try:
        sources = loaded_sources(root=tmp_path, dirs=("pkg",))
        assert set(sources) == {"pkg/__init__.py", "pkg/step.py"}
        assert sources_unchanged(sources, root=tmp_path)
        (package / "step.py").write_text("VALUE = 2\n")
        assert not sources_unchanged(sources, root=tmp_path)
        (package / "step.py").unlink()
        assert not sources_unchanged(sources, root=tmp_path)
    finally:
        sys.modules.pop("pkg.step", None), sys.modules.pop("pkg", None)
    assert not sources_unchanged({}, root=tmp_path)
    project = loaded_sources()
    assert "benchmarks/fingerprint.py" in project and all(not k.startswith(("/", "..")) for k in project)
    assert not any("site-packages" in k or k.startswith("torch") for k in project)


def test_a_command_run_through_the_recorder_leaves_its_sources_only_when_it_succeeds(tmp_path: Path) -> None:
    """The benchmark's refinement step runs the prior's CLI through this recorder. Catches a record written after a
    failed command (its half-written layers would be reused) and one that misses the command's own module."""
    record = tmp_path / "sources.json"
    command = [sys.executable, "-m", "benchmarks.fingerprint", str(record), "diffnerf_ns.prior.cli"]
    done = subprocess.run([*command, "--help"], capture_output=True, text=True, check=False)
    assert done.returncode == 0 and "refine" in done.stdout
    sources = json.loads(record.read_text())
    assert "diffnerf_ns/prior/cli.py" in sources and sources_unchanged(sources)
    record.unlink()
    failed = subprocess.run([*command, "--no-such-flag"], capture_output=True, text=True, check=False)
    assert failed.returncode != 0 and not record.exists()


def test_mesh_runs_are_reused_only_while_their_imported_sources_hold(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The mesh benchmark's runs follow the NeRF benchmark's rule (they no longer hash every source file, so an
    edit to an unrelated script keeps them). Catches a stored run never reused, and a reuse that ignores a changed
    source the run imported or a changed input file."""
    import benchmarks.bench_mesh as bench_mesh

    calls: list[list[str]] = []
    real_run = subprocess.run

    def run(cmd: list[str], **kwargs) -> subprocess.CompletedProcess:
        if cmd[:2] != [sys.executable, "-c"]:
            return real_run(cmd, **kwargs)  # git, for the commit recorded beside each run
        calls.append(cmd)
        out = Path(cmd[2].split("train_and_collect(")[1].split(", ")[2].strip("'"))
        (out / "sources.json").write_text(json.dumps(loaded_sources()))
        return subprocess.CompletedProcess(cmd, 0)

    monkeypatch.setattr(bench_mesh.subprocess, "run", run)
    view = _view(tmp_path)
    bench = bench_mesh.Bench(workdir=tmp_path / "work")
    first = bench.run_dir("diffnerf", "sun3d", view, [])
    assert bench.run_dir("diffnerf", "sun3d", view, []) == first and len(calls) == 1
    done = first / "done.json"
    record = json.loads(done.read_text())
    done.write_text(json.dumps({**record, "sources": {**record["sources"], "benchmarks/bench_mesh.py": "0" * 16}}))
    bench.run_dir("diffnerf", "sun3d", view, [])
    assert len(calls) == 2
    (view / "depth" / "0.png").write_bytes(b"other frame")
    assert bench.run_dir("diffnerf", "sun3d", view, []) != first and len(calls) == 3
