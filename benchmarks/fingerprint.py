"""Fingerprints that key the benchmarks' cached work: a cached run counts only if nothing it depends on changed.

A run depends on the code that trains and scores it, its configuration and budget, its input scene, the prior it
uses and the installed packages. Each is hashed by content (not by path or time), so a resumed benchmark reuses
exactly the runs the current checkout would reproduce, and retrains the rest.

Code is checked per run: a run records the project sources it imported (`loaded_sources`), and is reused while
those files are unchanged (`sources_unchanged`). A new study script or an edit to a module the run never imported
leaves it valid, so a benchmark grid that takes several sessions can be finished across them.

    python -m benchmarks.fingerprint RECORD MODULE [ARGS...]   # `python -m MODULE ARGS`, then its sources -> RECORD
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import json
import runpy
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
CODE_DIRS = ("diffnerf_ns", "data_converters", "benchmarks")
"""The packages a benchmark run executes; documentation and results do not change a run."""


def _hash_files(files: Iterable[Path], root: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(files):
        digest.update(str(path.relative_to(root)).encode())
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()[:16]


PACKAGES = ("torch", "nerfstudio", "diffusers", "numpy", "open3d", "opencv-python-headless")
"""Installed packages whose version is part of every run's key (another version may train differently)."""


def _file_hash(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def loaded_sources(root: Path = REPO, dirs: tuple[str, ...] = CODE_DIRS, also: Iterable[str] = ()) -> dict[str, str]:
    """Content hash of every project module this process has imported (and of the files `also`), keyed by its path
    under `root`: what a finished run executed (call it at the end of the run)."""
    sources = {}
    files = [getattr(module, "__file__", None) for module in list(sys.modules.values())]
    for file in [*files, *also]:
        if not file or not file.endswith(".py"):
            continue
        path = Path(file).resolve()
        if path.is_relative_to(root) and path.relative_to(root).parts[0] in dirs:
            sources[path.relative_to(root).as_posix()] = _file_hash(path)
    return dict(sorted(sources.items()))


def sources_unchanged(sources: dict[str, str], root: Path = REPO) -> bool:
    """Whether every source a cached run imported still has the content it had then. An empty record (a run cached
    before sources were recorded) cannot be checked, so it is never reused."""
    return bool(sources) and all(
        (root / rel).is_file() and _file_hash(root / rel) == digest for rel, digest in sources.items()
    )


def package_versions() -> dict[str, str | None]:
    """Installed versions of `PACKAGES` (None where one is absent)."""
    versions: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def run_recording_sources(record: Path, module: str, args: list[str]) -> None:
    """Run `python -m module *args` in this process; when it succeeds, write the project sources it imported to
    `record` (JSON), so work done by a command-line tool can be cached like a harness run."""
    spec = importlib.util.find_spec(module)
    if spec is None or spec.origin is None:
        raise ModuleNotFoundError(f"no module named {module!r} to run")
    sys.argv = [module, *args]
    try:
        runpy.run_module(module, run_name="__main__", alter_sys=True)
    except SystemExit as done:
        if done.code not in (None, 0):
            raise
    # run_module puts the original __main__ back, so the command's own file is named explicitly.
    record.write_text(json.dumps(loaded_sources(also=[spec.origin]), indent=1))


def folder_fingerprint(folder: Path, subfolders: Iterable[str] = ()) -> str:
    """Hash of a folder's files by content (a prior: its weights and configs).

    With `subfolders`, only its top-level files and those subfolders count, followed through symbolic links (a
    benchmark view links its scene's `images/` and `depth/`): the files a run reads, not layers it ignores.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: no such folder to fingerprint")
    if not subfolders:
        return _hash_files((p for p in folder.rglob("*") if p.is_file()), folder)
    files = [p for p in folder.iterdir() if p.is_file()]
    for sub in subfolders:
        target = (folder / sub).resolve()
        files += [folder / sub / p.relative_to(target) for p in target.rglob("*") if p.is_file()]
    return _hash_files(files, folder)


def config_fingerprint(config: dict[str, Any]) -> str:
    """Hash of a run's settings (method, budget, flags, fingerprints of its inputs)."""
    return hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()[:16]


def git_commit() -> str:
    """The checkout's commit, marked `-dirty` when sources differ from it (recorded beside each result)."""

    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, check=False)
        return done.stdout.strip()

    commit = git("rev-parse", "--short=12", "HEAD") or "unknown"
    return commit + ("-dirty" if git("status", "--porcelain", "--", *CODE_DIRS) else "")


if __name__ == "__main__":
    if len(sys.argv) < 3:
        raise SystemExit("usage: python -m benchmarks.fingerprint RECORD MODULE [ARGS...]")
    run_recording_sources(Path(sys.argv[1]), sys.argv[2], sys.argv[3:])
