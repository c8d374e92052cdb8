"""ns-viewer serves a trained diffnerf and a headless browser sees a rendered (non-blank) view."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

CHROMIUM = shutil.which("chromium")
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_http(url: str, proc: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"ns-viewer exited with {proc.returncode}: {proc.stdout.read()[-3000:]}")
        try:
            urllib.request.urlopen(url, timeout=2)
            return
        except OSError:
            time.sleep(1)
    raise TimeoutError(f"ns-viewer did not serve {url} within {timeout} s")


@pytest.mark.skipif(CHROMIUM is None, reason="Debian package 'chromium' is not installed (.ci/run installs it)")
def test_viewer_serves_a_rendered_view(trained, tmp_path: Path) -> None:
    config = trained[0]
    port = free_port()
    viewer = subprocess.Popen(
        [str(Path(sys.executable).parent / "ns-viewer"), "--load-config", str(config.get_base_dir() / "config.yml"),
         "--viewer.websocket-port", str(port)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    try:
        wait_for_http(f"http://127.0.0.1:{port}/", viewer)
        shot = tmp_path / "viewer.png"
        subprocess.run(
            [CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}", "--window-size=800,600",
             "--virtual-time-budget=20000", f"--screenshot={shot}", f"http://127.0.0.1:{port}/"],
            capture_output=True, timeout=120, check=True,
        )
    finally:
        viewer.terminate()
        viewer.wait(timeout=30)
    image = np.asarray(Image.open(shot).convert("RGB"), dtype=np.float32)
    render = image[60:560, 0:470]  # the 3D view, left of the control panel
    background = np.array([38, 38, 38], np.float32)  # viser's empty scene is flat dark grey
    textured = np.abs(render - background).max(-1) > 25
    assert textured.mean() > 0.5, f"only {textured.mean():.0%} of the view differs from the empty background"
    assert render.std(axis=(0, 1)).mean() > 10, "the view is flat: nothing was rendered"
