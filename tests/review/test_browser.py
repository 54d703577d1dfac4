"""`distill review` for real: the CLI serves the app, headless Chromium renders it and presses its keys.

Chromium's `--screenshot`/`--dump-dom` flags capture the page at its load event, before the app's content
arrives over Streamlit's WebSocket (the virtual time budget does not wait for it: the page shows its loading
skeleton), so the browser is driven through the DevTools protocol instead: load, wait for the Accept
button, screenshot, read the DOM, then press a, r, k, p, n, j as a person would.
"""

from __future__ import annotations

import base64
import io
import itertools
import json
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest
from typer.testing import CliRunner

from engine.cli.review import app as review_cli
from engine.errors import ConfigError, StoreError
from engine.review.server import streamlit_argv, wait_healthy
from engine.store.labels import read_labels
from tests.conftest import CHROMIUM_FLAGS

needs_chromium = pytest.mark.skipif(shutil.which("chromium") is None, reason="needs Debian's chromium")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def kill_group(proc: subprocess.Popen[Any]) -> None:
    """End a process started with start_new_session, and everything it started."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@pytest.fixture
def served(ds: Path) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """`distill review DS --port P --no-open` in its own process group; yields its URL once it printed it."""
    port = free_port()
    cmd = [sys.executable, "-c", "from engine.cli.review import app; app()", str(ds), "--port", str(port), "--no-open"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        url = f"http://127.0.0.1:{port}/"
        assert wait_healthy(url, proc, timeout=60), "the review server did not answer /_stcore/health"
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], 30)
        assert ready, "the CLI printed no URL"
        line = proc.stdout.readline().decode()
        assert line.startswith(f"distill review: {url} (999 rows;"), line
        yield url, proc
    finally:
        kill_group(proc)


class Page:
    """One Chromium tab over the DevTools protocol, with just the calls these tests need."""

    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self.ids = itertools.count(1)

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        n = next(self.ids)
        self.ws.send(json.dumps({"id": n, "method": method, "params": params}))
        while True:  # skip events until our answer
            msg = json.loads(self.ws.recv(timeout=30))
            if msg.get("id") == n:
                assert "error" not in msg, msg
                return msg["result"]

    def js(self, expr: str) -> Any:
        return self.call("Runtime.evaluate", expression=expr, returnByValue=True)["result"].get("value")

    def wait_for(self, expr: str, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while not self.js(expr):
            assert time.monotonic() < deadline, f"timed out waiting for {expr}"
            time.sleep(0.1)

    def press(self, key: str) -> None:
        code, vk = f"Key{key.upper()}", ord(key.upper())
        self.call("Input.dispatchKeyEvent", type="keyDown", key=key, code=code, text=key, windowsVirtualKeyCode=vk)
        self.call("Input.dispatchKeyEvent", type="keyUp", key=key, code=code, windowsVirtualKeyCode=vk)


@contextmanager
def chromium_page(profile: Path) -> Iterator[Page]:
    """Headless Chromium with remote debugging on a port it picks; yields its first tab."""
    from websockets.sync.client import connect

    proc = subprocess.Popen(
        ["chromium", *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--remote-debugging-port=0", "about:blank"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        port_file = profile / "DevToolsActivePort"  # Chromium writes the port it picked here
        deadline = time.monotonic() + 30
        while not (port_file.exists() and port_file.read_text().strip()):
            assert time.monotonic() < deadline and proc.poll() is None, "chromium did not start"
            time.sleep(0.1)
        port = port_file.read_text().split()[0]
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as resp:
            tab = next(t["webSocketDebuggerUrl"] for t in json.load(resp) if t["type"] == "page")
        with connect(tab, max_size=None) as ws:
            yield Page(ws)
    finally:
        kill_group(proc)


def showing(n: int) -> str:
    return f"document.querySelector('h3') && document.querySelector('h3').innerText.startsWith('Row {n} of')"


def wait_labels(ds: Path, n: int, timeout: float = 30) -> pl.DataFrame:
    deadline = time.monotonic() + timeout
    while (labels := read_labels(ds)).height < n:
        assert time.monotonic() < deadline, f"expected {n} labels, have {labels.height}"
        time.sleep(0.1)
    return labels


@needs_chromium
def test_served_app_renders_and_takes_keys(
    served: tuple[str, subprocess.Popen[bytes]], ds: Path, frame: pl.DataFrame, tmp_path: Path
) -> None:
    pytest.importorskip("websockets")
    image = pytest.importorskip("PIL.Image")
    url, _ = served
    with chromium_page(tmp_path / "profile") as page:
        page.call("Page.navigate", url=url)
        page.wait_for(
            "!!document.querySelector('.st-key-accept button') && !!document.querySelector('[data-testid=stDataFrame]')"
        )
        shot = page.call("Page.captureScreenshot", format="png")["data"]
        (tmp_path / "review.png").write_bytes(base64.b64decode(shot))
        img = np.asarray(image.open(io.BytesIO(base64.b64decode(shot))).convert("L"))
        assert img.shape[1] == 1280
        assert (img < 240).mean() > 0.03  # text, buttons and the table, not a blank or skeleton page
        dom = page.js("document.documentElement.outerHTML")
        assert frame["instruction"][0] in dom and frame["response"][0][:60] in dom
        assert page.js("document.querySelector('.st-key-accept button').innerText").startswith("Accept")

        page.press("a")  # Streamlit's own shortcut
        page.wait_for(showing(2))
        page.press("r")  # our listener: Streamlit keeps R for "rerun"
        page.wait_for(showing(3))
        labels = wait_labels(ds, 2)
        assert labels.select("_ord", "id", "review_label").rows() == [
            (0, frame["id"][0], "accept"),
            (1, frame["id"][1], "reject"),
        ]
        for key, row in (("k", 2), ("p", 1), ("n", 2), ("j", 3)):
            page.press(key)
            page.wait_for(showing(row))

        # typing in the note field is text, not commands; the note then goes with the next label
        note = "document.querySelector('.st-key-note_2 input')"
        page.wait_for(f"!!{note} && ({note}.focus(), document.activeElement === {note})")
        for key in "ran":
            page.press(key)
        page.wait_for(f"{note}.value === 'ran'")
        assert read_labels(ds).height == 2 and page.js(showing(3))
        page.js("document.activeElement.blur()")  # commits the note; the click below sends it along
        page.press("a")
        page.wait_for(showing(4))
        saved = wait_labels(ds, 3).filter(pl.col("_ord") == 2).row(0, named=True)
        assert (saved["review_label"], saved["review_note"]) == ("accept", "ran")


def test_missing_dataset_fails_before_any_server_starts(tmp_path: Path) -> None:
    """The CLI checks the dir first; main.py turns the StoreError into `Error: ...` and exit 2."""
    result = CliRunner().invoke(review_cli, [str(tmp_path / "nope"), "--no-open"])
    assert isinstance(result.exception, StoreError) and StoreError.exit_code == 2
    assert (
        str(result.exception)
        == f"{tmp_path / 'nope'}: no such dataset directory; create one with `distill ingest SRC --out {tmp_path / 'nope'}`"
    )


def test_streamlit_argv_serves_the_app_on_the_given_address() -> None:
    argv = streamlit_argv("out/sample", host="127.0.0.1", port=8600)
    assert argv[:4] == [sys.executable, "-m", "streamlit", "run"] and argv[4].endswith("engine/review/app.py")
    assert argv[argv.index("--server.address") + 1] == "127.0.0.1" and argv[argv.index("--server.port") + 1] == "8600"
    assert argv[argv.index("--server.headless") + 1] == "true" and argv[-2:] == ["--", "out/sample"]


def test_a_busy_port_is_one_error_before_any_server_starts(ds: Path) -> None:
    """Else the health check would find the other server, and the CLI would print its URL as ours."""
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        port = other.getsockname()[1]
        result = CliRunner().invoke(review_cli, [str(ds), "--port", str(port), "--no-open"])
    assert isinstance(result.exception, ConfigError)
    assert (
        str(result.exception)
        == f"127.0.0.1:{port}: the port is in use (another `distill review`?); try --port {port + 1}"
    )
