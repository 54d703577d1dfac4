"""Shared fixtures: the real datasets in ../shared/data and fresh dataset dirs."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"

if not DATA.exists():  # pragma: no cover - CI always has ../shared beside the repo
    msg = f"the real datasets are expected in {DATA}"
    raise RuntimeError(msg)


def fresh_json(code: str) -> dict[str, object]:
    """Run `code` in a new interpreter at the repo root and return the JSON object it prints last.

    For what only a fresh process shows: which modules a job imports, what a first call loads.
    """
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def count_lines(path: Path) -> int:
    return sum(1 for line in path.read_bytes().splitlines() if line.strip())


def json_len(path: Path) -> int:
    return len(json.loads(path.read_text()))


CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1280,2000",
]
"""Headless Chromium as the page tests run it (the report's page, the review app): offline, one window size."""


@pytest.fixture(scope="session")
def data() -> Path:
    return DATA


@pytest.fixture(scope="session")
def s3() -> Iterator[str]:
    """A real S3 HTTP server (moto) on 127.0.0.1 with bucket `distill`; yields the bucket's URI.

    Credentials and the endpoint go where every client looks (AWS_* environment variables): pyarrow, Polars,
    s3fs and Ray workers started afterwards all find the same server, as they would find AWS.
    """
    moto_server = pytest.importorskip("moto.server")
    boto3 = pytest.importorskip("boto3")
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request otherwise
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    env = {
        "AWS_ACCESS_KEY_ID": "distill-test",
        "AWS_SECRET_ACCESS_KEY": "distill-test",
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": f"http://{host}:{port}",
        "AWS_ALLOW_HTTP": "true",
    }
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    boto3.client("s3").create_bucket(Bucket="distill")
    try:
        yield "s3://distill"
    finally:
        server.stop()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
