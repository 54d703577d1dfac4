"""A real dataset for the review app: the alpaca demo in three partitions, scored, with a gate some rows fail."""

from __future__ import annotations

import shutil
import sys
from collections.abc import Callable
from pathlib import Path

import polars as pl
import pytest

from engine import api
from engine.review import APP
from engine.store.dataset import open_dataset

GATE = {"min_words": {"response": 20}, "safety_words": ("kill", "weapon")}
"""Rules that fail about a quarter of the rows, for several reasons (min_words, safety, citation, code_fence)."""


@pytest.fixture(scope="session")
def gated(tmp_path_factory: pytest.TempPathFactory, data: Path) -> Path:
    out = tmp_path_factory.mktemp("review") / "ds"
    api.ingest([data / "alpaca_en_demo.json"], out, partition_rows=400)
    api.score("heuristic", out)
    api.score("length", out)
    api.gate(out, settings=GATE)
    return out


@pytest.fixture(scope="session")
def frame(gated: Path) -> pl.DataFrame:
    """The oracle: every row and column, read by Polars, with `_ord` as the row's position."""
    return open_dataset(gated).scan().collect().with_row_index("_ord").with_columns(pl.col("_ord").cast(pl.Int64))


@pytest.fixture
def ds(gated: Path, tmp_path: Path) -> Path:
    """A fresh copy per test, so labels one test saves never reach another."""
    return Path(shutil.copytree(gated, tmp_path / "ds"))


@pytest.fixture
def start_app(ds: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[[], object]:
    """Start the app on `ds` as `streamlit run APP -- DIR` does: the dir is sys.argv[1] inside the script."""
    from streamlit.testing.v1 import AppTest

    monkeypatch.setattr(sys, "argv", [str(APP), str(ds)])

    def start() -> AppTest:
        at = AppTest.from_file(str(APP), default_timeout=60).run()
        assert not at.exception, at.exception
        return at

    return start
