"""`distill review DIR`: serve the labelling app (engine/review/app.py) with Streamlit until Ctrl-C."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import webbrowser
from typing import Annotated

import typer

from engine.cli.params import DatasetDir
from engine.errors import ConfigError
from engine.review import APP, check_review

app = typer.Typer()

EXAMPLE = """Example:

  distill review out/sample

  distill review out/sample --port 8600 --no-open
"""


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


@app.command(epilog=EXAMPLE)
def review(
    path: DatasetDir,
    host: Annotated[str, typer.Option(help="Address to serve on; keep 127.0.0.1 unless you mean to share it.")] = (
        "127.0.0.1"
    ),
    port: Annotated[int, typer.Option(help="Port to serve on.")] = 8501,
    open_browser: Annotated[
        bool, typer.Option("--open/--no-open", help="Open the app in the default browser once it is up.")
    ] = True,
) -> None:
    """Label rows in the browser: accept, reject or edit them, with their scores beside them.

    Serves the Streamlit app on HOST:PORT until Ctrl-C. The sidebar filters by a score column's range, gate
    pass/fail and rule, and review label; the page shows the current row in full with every stage column,
    and a table of 50 rows around it.

    \b
    Keys:  a    accept            r    reject (the note field is saved with it)
           e    edit, then save   j/n  next            k/p  previous

    Labels are saved at once in DIR/review/labels.parquet and survive restarts; `distill select` leaves
    rejected rows out and writes edited rows with their edits.
    """
    rows = check_review(path)
    if not port_free(host, port):
        msg = f"{host}:{port}: the port is in use (another `distill review`?); try --port {port + 1}"
        raise ConfigError(msg)
    url = f"http://{host}:{port}/"
    proc = subprocess.Popen(streamlit_argv(path, host=host, port=port), stdout=subprocess.DEVNULL)
    try:
        if not wait_healthy(url, proc):
            stop(proc)
            msg = f"{url}: the review server did not start (exit {proc.returncode}); its log is above"
            raise ConfigError(msg)
        typer.echo(f"distill review: {url} ({rows:,} rows; labels go to {path}/review/labels.parquet; Ctrl-C stops)")
        if open_browser:
            webbrowser.open(url)
        code = proc.wait()
    except KeyboardInterrupt:
        stop(proc)
        typer.echo("distill review: stopped")
        return
    if code != 0:
        raise typer.Exit(code)
