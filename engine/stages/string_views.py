"""Arrow string arrays as rows of (buffer, start, end) for numba kernels, without copying the text.

Why: Polars keeps strings as views: 16-byte headers that hold strings of up to 12 bytes inline and
point into ~1 MB data buffers otherwise. Exporting a column as large_string copies every byte (30-70 ms
for the score benchmark's 160 MB, most of it page faults on the fresh allocation); exporting the views
copies nothing. A kernel then reads row r as `bytes_at(addresses[buffer[r]], sizes[buffer[r]])`
[start[r]:end[r]] (`engine.stages.bit_kernels.bytes_at`). Offset-based arrays (string, large_string,
binary) become the same rows over their one data buffer. Nulls are empty rows.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl
import pyarrow as pa

from engine.stages.hash_kernels import string_buffers

_VIEW = 16
_INLINE = 12
"""Strings of up to 12 bytes live in their view, after the 4-byte length."""


@dataclass(frozen=True, slots=True)
class TextRows:
    """Where each row's bytes are. `owner` holds the memory the addresses point into."""

    addresses: np.ndarray  # int64 per buffer
    sizes: np.ndarray  # int64 per buffer
    buffer: np.ndarray  # int64 per row: its buffer
    start: np.ndarray  # int64 per row
    end: np.ndarray  # int64 per row
    owner: object


def owned(s: pl.Series) -> pl.Series:
    """`s` (String) with its strings copied into buffers of its own.

    Why: a filtered or gathered String column keeps views into the ~1 MB data buffers of the rows it was
    cut from, so a few rows kept from each of many partitions pin all of their text (near_dedup's
    candidates, 17% of 674K rows: 550 MB of resident memory for 70 MB of text).
    """
    return pl.Series(s.name, s.to_arrow().cast(pa.large_string()), dtype=pl.String)


def owned_strings(expr: pl.Expr) -> pl.Expr:
    """`expr` (String) batch by batch through `owned`, so that each batch lets go of what it was cut from."""
    return expr.map_batches(owned, return_dtype=pl.String, is_elementwise=True)


def text_rows(texts: pl.Series | pa.Array | pa.ChunkedArray) -> TextRows:
    """The rows of a string or binary column (Polars or Arrow), zero-copy where the layout allows."""
    if isinstance(texts, pl.Series):
        texts = texts.rechunk().to_arrow(compat_level=pl.CompatLevel.newest())
    if isinstance(texts, pa.ChunkedArray):
        texts = texts.combine_chunks() if texts.num_chunks != 1 else texts.chunk(0)
    if pa.types.is_string_view(texts.type) or pa.types.is_binary_view(texts.type):
        return _view_rows(texts)
    offsets, data = string_buffers(texts)
    n = len(offsets) - 1
    return TextRows(
        addresses=np.array([data.ctypes.data], dtype=np.int64),
        sizes=np.array([data.shape[0]], dtype=np.int64),
        buffer=np.zeros(n, dtype=np.int64),
        start=np.ascontiguousarray(offsets[:-1]),
        end=np.ascontiguousarray(offsets[1:]),
        owner=(texts, data),
    )


def _view_rows(arr: pa.Array) -> TextRows:
    validity, views, *data = arr.buffers()
    n, off = len(arr), arr.offset
    words = np.frombuffer(views, dtype=np.uint32, count=(off + n) * 4).reshape(-1, 4)[off:]
    length = words[:, 0].astype(np.int64)
    inline = length <= _INLINE
    header = (np.arange(off, off + n, dtype=np.int64) * _VIEW) + 4
    start = np.where(inline, header, words[:, 3].astype(np.int64))
    buffer = np.where(inline, 0, words[:, 2].astype(np.int64) + 1)  # buffer 0: the views themselves
    if validity is not None and arr.null_count:
        bits = np.frombuffer(validity, dtype=np.uint8, count=(off + n + 7) // 8)  # not is_valid(): imports pandas
        valid = np.unpackbits(bits, bitorder="little")[off : off + n].astype(bool)
        length = np.where(valid, length, 0)
        start = np.where(valid, start, 0)
        buffer = np.where(valid, buffer, 0)
    buffers = [views, *data]
    return TextRows(
        addresses=np.array([b.address if b is not None else 0 for b in buffers], dtype=np.int64),
        sizes=np.array([b.size if b is not None else 0 for b in buffers], dtype=np.int64),
        buffer=buffer,
        start=start,
        end=start + length,
        owner=arr,
    )
