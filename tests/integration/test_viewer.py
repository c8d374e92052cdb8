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
import threading
import time
from pathlib import Path
from typing import IO, Any

import numpy as np
import pytest
from PIL import Image
from websockets.sync.client import ClientConnection, connect

CHROMIUM = shutil.which("chromium")
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_line(proc: subprocess.Popen, stream: IO[str], marker: str, timeout: float = 120) -> str:
    """Block until the child prints a line holding `marker` (it says it is ready), then keep draining its output.

    A watchdog kills the child after `timeout`, which ends the read; draining afterwards keeps it from blocking on
    a full pipe.
    """
    watchdog = threading.Timer(timeout, proc.kill)
    watchdog.start()
    seen = []
    try:
        for line in stream:
            seen.append(line)
            if marker in line:
                threading.Thread(target=stream.read, daemon=True).start()
                return line
    finally:
        watchdog.cancel()
    raise RuntimeError(f"{proc.args[0]} ended ({proc.wait()}) before printing {marker!r}:\n{''.join(seen)[-3000:]}")


def textured_fraction(png: bytes) -> tuple[float, float]:
    """Share of the 3D view (left of the control panel) that differs from viser's empty dark-grey scene,
    and the view's colour spread."""
    image = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"), dtype=np.float32)
    render = image[60:560, 0:470]
    background = np.array([38, 38, 38], np.float32)
    return float((np.abs(render - background).max(-1) > 25).mean()), float(render.std(axis=(0, 1)).mean())


class DevTools:
    """Chrome DevTools protocol over one browser websocket, with flattened page sessions."""

    def __init__(self, socket: ClientConnection) -> None:
        self.socket = socket
        self.ids = itertools.count(1)
        self.events: list[dict[str, Any]] = []

    def call(self, method: str, session: str | None = None, **params: Any) -> dict[str, Any]:
        message_id = next(self.ids)
        message = {"id": message_id, "method": method, "params": params}
        if session is not None:
            message["sessionId"] = session
        self.socket.send(json.dumps(message))
        while True:
            reply = json.loads(self.socket.recv(timeout=60))
            if reply.get("id") == message_id:
                return reply["result"]
            if "method" in reply:
                self.events.append(reply)

    def next_event(self, timeout: float) -> dict[str, Any]:
        return self.events.pop(0) if self.events else json.loads(self.socket.recv(timeout=timeout))


def last_frame_until_rendered(browser_ws: str, url: str, timeout: float = 240) -> bytes:
    """Open `url` and watch its screencast: Chromium pushes a frame whenever the page changes, so the viewer's
    render (streamed over its websocket, seconds after load on CPU) is seen as soon as it arrives."""
    deadline = time.monotonic() + timeout
    with connect(browser_ws, max_size=None) as socket:
        devtools = DevTools(socket)
        target = devtools.call("Target.createTarget", url=url)["targetId"]
        session = devtools.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        devtools.call("Page.startScreencast", session, format="png")
        frame = b""
        while time.monotonic() < deadline:
            try:
                event = devtools.next_event(timeout=deadline - time.monotonic())
            except TimeoutError:
                break
            if event.get("method") != "Page.screencastFrame":
                continue
            frame = base64.b64decode(event["params"]["data"])
            textured, spread = textured_fraction(frame)
            if textured > 0.5 and spread > 10:
                break
            devtools.call("Page.screencastFrameAck", session, sessionId=event["params"]["sessionId"])
    return frame


@pytest.mark.skipif(CHROMIUM is None, reason="Debian package 'chromium' is not installed (.ci/run installs it)")
def test_viewer_serves_a_rendered_view(trained, tmp_path: Path) -> None:
    config = trained[0]
    port = free_port()
    viewer = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "ns-viewer"),
            "--load-config",
            str(config.get_base_dir() / "config.yml"),
            "--viewer.websocket-port",
            str(port),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    browser = None
    try:
        wait_for_line(viewer, viewer.stdout, f"http://0.0.0.0:{port}")  # viser's banner, printed once it serves
        browser = subprocess.Popen(
            [
                CHROMIUM,
                *CHROMIUM_FLAGS,
                f"--user-data-dir={tmp_path / 'profile'}",
                "--window-size=800,600",
                "--remote-debugging-port=0",
                "about:blank",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        browser_ws = wait_for_line(browser, browser.stderr, "DevTools listening on ").split()[-1]
        png = last_frame_until_rendered(browser_ws, f"http://127.0.0.1:{port}/")
    finally:
        for proc in (browser, viewer):
            if proc is not None:
                proc.terminate()
                proc.wait(timeout=30)
    assert png, "the browser sent no frame of the viewer page"
    (tmp_path / "viewer.png").write_bytes(png)
    textured, spread = textured_fraction(png)
    assert textured > 0.5, f"only {textured:.0%} of the view differs from the empty background ({tmp_path})"
    assert spread > 10, "the view is flat: nothing was rendered"
