"""Fingerprints that key the benchmarks' cached work: a cached run counts only if nothing it depends on changed.

A run depends on the code that trains and scores it, its configuration and budget, its input scene and the prior
it uses. Each is hashed by content (not by path or time), so a resumed benchmark reuses exactly the runs the
current checkout would reproduce, and retrains the rest.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
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


def code_fingerprint() -> str:
    """Hash of every Python source the runs execute (this checkout's, committed or not)."""
    files = [p for d in CODE_DIRS for p in (REPO / d).rglob("*.py") if "results" not in p.parts]
    return _hash_files(files, REPO)


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
