"""Shared test fixtures: the real-data folder beside the repo, and tiny generated scenes."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

FIXTURES = Path(__file__).resolve().parents[1].parent / "shared" / "fixtures"


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    """The real NYU / ICL-NUIM fixtures in ../shared/fixtures; tests needing them skip without it."""
    if not FIXTURES.is_dir():
        pytest.skip(f"real fixtures not found at {FIXTURES} (they live in ../shared beside the repo)")
    return FIXTURES


@pytest.fixture(scope="session")
def demo_scene(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny rendered room (24 frames, 64x48) with exact depth, shared by the plugin tests."""
    from data_converters.synthetic.demo_scene import make_demo_scene

    out = tmp_path_factory.mktemp("demo_scene")
    make_demo_scene(out, num_frames=24, width=64, height=48)
    return out
