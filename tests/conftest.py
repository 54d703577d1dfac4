"""Shared fixtures: the real datasets in ../shared/data and fresh dataset dirs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"

if not DATA.exists():  # pragma: no cover - CI always has ../shared beside the repo
    msg = f"the real datasets are expected in {DATA}"
    raise RuntimeError(msg)


def count_lines(path: Path) -> int:
    return sum(1 for line in path.read_bytes().splitlines() if line.strip())


def json_len(path: Path) -> int:
    return len(json.loads(path.read_text()))


@pytest.fixture(scope="session")
def data() -> Path:
    return DATA
