"""Text rows from Polars string views and Arrow offset arrays point at exactly each row's bytes."""

from __future__ import annotations

import ctypes
import json
from collections.abc import Callable

import polars as pl
import pyarrow as pa
import pytest

from engine.stages.string_views import TextRows, owned, owned_strings, text_rows
from tests.conftest import DATA


def _read(rows: TextRows, r: int) -> bytes:
    address = int(rows.addresses[rows.buffer[r]])
    start, end = int(rows.start[r]), int(rows.end[r])
    assert 0 <= start <= end <= int(rows.sizes[rows.buffer[r]])
    return ctypes.string_at(address + start, end - start)


@pytest.fixture(scope="module")
def texts() -> list[str | None]:
    rows = json.loads((DATA / "alpaca_en_demo.json").read_text())
    out: list[str | None] = [r["output"] for r in rows] + [r["input"] for r in rows]  # many short or empty
    out[::17] = [None] * len(out[::17])
    return [*out, "exactly12byt", "thirteen byte", "é" * 6, "ok"]


@pytest.mark.parametrize(
    "make",
    [
        lambda t: pl.Series(t, dtype=pl.String),
        lambda t: pl.Series(t, dtype=pl.String).to_arrow(compat_level=pl.CompatLevel.newest()),
        lambda t: pa.array(t, pa.large_string()),
        lambda t: pa.array(t, pa.string()),
        lambda t: pa.chunked_array([pa.array(t[:500], pa.string_view()), pa.array(t[500:], pa.string_view())]),
    ],
    ids=["polars", "string_view", "large_string", "string", "chunked_views"],
)
def test_rows_read_back_every_text(texts: list[str | None], make: Callable[[list], object]) -> None:
    arr = make(texts)
    rows = text_rows(arr)
    assert len(rows.start) == len(texts)
    for r, t in enumerate(texts):
        assert _read(rows, r) == (t or "").encode(), r
    if isinstance(arr, pl.Series):
        assert len(rows.addresses) > 1  # zero-copy: the views' own data buffers, not one copied buffer
        assert (rows.buffer == 0).sum() > 100  # short strings are read inline from the views


def test_a_sliced_view_array_reads_from_its_offset(texts: list[str | None]) -> None:
    arr = pa.array(texts, pa.string_view()).slice(301, 700)
    rows = text_rows(arr)
    assert [_read(rows, r) for r in range(len(arr))] == [(t or "").encode() for t in texts[301:1001]]


def test_owned_strings_let_go_of_the_rows_they_were_cut_from(texts: list[str | None]) -> None:
    """A filtered String column points into the buffers of every row; `owned` keeps only its own bytes."""
    column = pl.Series("t", texts * 20, dtype=pl.String)
    kept = column.gather(list(range(0, len(column), 10)))  # every tenth row: each data buffer stays in use

    def buffer_bytes(s: pl.Series) -> int:
        return int(text_rows(s).sizes.sum())

    own = owned(kept)
    assert own.to_list() == kept.to_list()
    assert buffer_bytes(kept) > 5 * int(kept.str.len_bytes().sum())
    assert buffer_bytes(own) <= 1.2 * int(kept.str.len_bytes().sum())  # its own bytes, with some slack
    frame = pl.DataFrame({"t": column}).filter(pl.int_range(pl.len()) % 10 == 0)
    assert frame.select(owned_strings(pl.col("t"))).to_series().to_list() == kept.to_list()
