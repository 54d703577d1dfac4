"""Serve the review app: `streamlit run engine/review/app.py -- DIR` on HOST:PORT, started and stopped cleanly.

The CLI (`distill review`) and the browser test start the server the same way, through `start_server`.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass

from engine.errors import ConfigError
from engine.review import APP, check_review


@dataclass(frozen=True, slots=True)
class Server:
    url: str
    rows: int
    proc: subprocess.Popen[bytes]


def streamlit_argv(path: str, *, host: str = "127.0.0.1", port: int = 8501) -> list[str]:
    """The `streamlit run` command line that serves the app for `path` (the browser test runs the same one)."""
    return [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        str(APP),
        "--server.address",
        host,
        "--server.port",
        str(port),
        "--server.headless",
        "true",
        "--browser.gatherUsageStats",
        "false",
        "--client.toolbarMode",
        "minimal",
        "--",
        path,
    ]


def port_free(host: str, port: int) -> bool:
    """Whether nothing listens on host:port (else the health check would find the other server and pass)."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # a port in TIME_WAIT is free to listen on
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def wait_healthy(url: str, proc: subprocess.Popen[bytes], *, timeout: float = 60.0) -> bool:
    """Poll Streamlit's `/_stcore/health` until it answers ok; False if the server exits or time runs out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        try:
            with urllib.request.urlopen(url.rstrip("/") + "/_stcore/health", timeout=2) as resp:
                if resp.status == 200:
                    return True
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.2)
    return False


def stop(proc: subprocess.Popen[bytes]) -> None:
    """End the server: Ctrl-C reached it too, so give it a moment, then terminate, then kill."""
    for signal_it in (None, proc.terminate, proc.kill):
        if signal_it is not None:
            signal_it()
        try:
            proc.wait(timeout=5)
            return
        except subprocess.TimeoutExpired:
            continue


def start_server(path: str, *, host: str = "127.0.0.1", port: int = 8501) -> Server:
    """Check the dataset and the port, start Streamlit, and return once it answers its health check."""
    rows = check_review(path)
    if not port_free(host, port):
        msg = f"{host}:{port}: the port is in use (another `distill review`?); try --port {port + 1}"
        raise ConfigError(msg)
    url = f"http://{host}:{port}/"
    proc = subprocess.Popen(streamlit_argv(path, host=host, port=port), stdout=subprocess.DEVNULL)
    if not wait_healthy(url, proc):
        stop(proc)
        msg = f"{url}: the review server did not start (exit {proc.returncode}); its log is above"
        raise ConfigError(msg)
    return Server(url, rows, proc)
