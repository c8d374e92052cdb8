"""ns-viewer serves a trained diffnerf and a headless browser sees a rendered (non-blank) view."""

from __future__ import annotations

import base64
import io
import itertools
import json
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
from websockets.sync.client import connect

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


def textured_fraction(png: bytes) -> tuple[float, float]:
    """Share of the 3D view (left of the control panel) that differs from viser's empty dark-grey scene."""
    image = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"), dtype=np.float32)
    render = image[60:560, 0:470]
    background = np.array([38, 38, 38], np.float32)
    return float((np.abs(render - background).max(-1) > 25).mean()), float(render.std(axis=(0, 1)).mean())


def rendered(textured: float, spread: float) -> bool:
    return textured > 0.5 and spread > 10


def poll_screenshots(url: str, profile: Path, timeout: float = 240) -> tuple[bytes, float, float]:
    """Screenshot the page over the DevTools protocol until the render arrives.

    The viewer streams its render over a websocket after the page loads, and a CPU render can take many seconds,
    so a single `--screenshot` after a virtual-time budget races it; polling in real time does not.
    """
    debug_port = free_port()
    browser = subprocess.Popen(
        [CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--window-size=800,600",
         f"--remote-debugging-port={debug_port}", url],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + timeout
        targets: list[dict] = []
        while time.monotonic() < deadline and not targets:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{debug_port}/json/list", timeout=2) as reply:
                    targets = [t for t in json.load(reply) if t.get("type") == "page"]
            except OSError:
                time.sleep(0.5)
        assert targets, "headless chromium did not open the viewer page"
        best = (b"", 0.0, 0.0)
        with connect(targets[0]["webSocketDebuggerUrl"], max_size=None) as devtools:
            for message_id in itertools.count(1):
                devtools.send(json.dumps({"id": message_id, "method": "Page.captureScreenshot"}))
                reply = json.loads(devtools.recv(timeout=60))
                while reply.get("id") != message_id:
                    reply = json.loads(devtools.recv(timeout=60))
                png = base64.b64decode(reply["result"]["data"])
                shot = (png, *textured_fraction(png))
                best = max(best, shot, key=lambda s: min(s[1] / 0.5, s[2] / 10))
                if rendered(*shot[1:]) or time.monotonic() > deadline:
                    return best
                time.sleep(2)
    finally:
        browser.terminate()
        browser.wait(timeout=30)
    raise AssertionError("unreachable")


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
        png, textured, spread = poll_screenshots(f"http://127.0.0.1:{port}/", tmp_path / "profile")
    finally:
        viewer.terminate()
        viewer.wait(timeout=30)
    (tmp_path / "viewer.png").write_bytes(png)
    assert textured > 0.5, f"only {textured:.0%} of the view differs from the empty background ({tmp_path})"
    assert spread > 10, "the view is flat: nothing was rendered"
