"""xxHash64 in numba over Arrow string buffers (offsets + bytes): no Python loop over rows.

Matches the reference xxh64 (the `xxhash` package is the test oracle). Used for row ids at ingest and
by later stages that hash text.
"""

from __future__ import annotations

import numba as nb
import numpy as np
import pyarrow as pa

_P1 = np.uint64(0x9E3779B185EBCA87)
_P2 = np.uint64(0xC2B2AE3D27D4EB4F)
_P3 = np.uint64(0x165667B19E3779F9)
_P4 = np.uint64(0x85EBCA77C2B2AE63)
_P5 = np.uint64(0x27D4EB2F165667C5)


@nb.njit(inline="always")
def _rotl(x, r):
    return (x << np.uint64(r)) | (x >> np.uint64(64 - r))


@nb.njit(inline="always")
def _read64(buf, i):
    v = np.uint64(0)
    for k in range(8):
        v |= np.uint64(buf[i + k]) << np.uint64(8 * k)
    return v


@nb.njit(inline="always")
def _read32(buf, i):
    v = np.uint64(0)
    for k in range(4):
        v |= np.uint64(buf[i + k]) << np.uint64(8 * k)
    return v


@nb.njit(inline="always")
def _round(acc, lane):
    acc = acc + lane * _P2
    acc = _rotl(acc, 31)
    return acc * _P1


@nb.njit(inline="always")
def _merge(acc, val):
    acc = acc ^ _round(np.uint64(0), val)
    return acc * _P1 + _P4


@nb.njit
def xxh64_span(buf, start, end, seed):
    """xxh64 of buf[start:end]."""
    n = end - start
    i = start
    if n >= 32:
        v1 = seed + _P1 + _P2
        v2 = seed + _P2
        v3 = seed
        v4 = seed - _P1
        limit = end - 32
        while i <= limit:
            v1 = _round(v1, _read64(buf, i))
            v2 = _round(v2, _read64(buf, i + 8))
            v3 = _round(v3, _read64(buf, i + 16))
            v4 = _round(v4, _read64(buf, i + 24))
            i += 32
        h = _rotl(v1, 1) + _rotl(v2, 7) + _rotl(v3, 12) + _rotl(v4, 18)
        h = _merge(h, v1)
        h = _merge(h, v2)
        h = _merge(h, v3)
        h = _merge(h, v4)
    else:
        h = seed + _P5
    h = h + np.uint64(n)
    while i + 8 <= end:
        h = h ^ _round(np.uint64(0), _read64(buf, i))
        h = _rotl(h, 27) * _P1 + _P4
        i += 8
    if i + 4 <= end:
        h = h ^ (_read32(buf, i) * _P1)
        h = _rotl(h, 23) * _P2 + _P3
        i += 4
    while i < end:
        h = h ^ (np.uint64(buf[i]) * _P5)
        h = _rotl(h, 11) * _P1
        i += 1
    h = h ^ (h >> np.uint64(33))
    h = h * _P2
    h = h ^ (h >> np.uint64(29))
    h = h * _P3
    h = h ^ (h >> np.uint64(32))
    return h


@nb.njit(parallel=True, cache=True)
def _xxh64_rows(offsets, data, seed):
    n = offsets.shape[0] - 1
    out = np.empty(n, dtype=np.uint64)
    for r in nb.prange(n):
        out[r] = xxh64_span(data, offsets[r], offsets[r + 1], seed)
    return out


def string_buffers(arr: pa.Array | pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray]:
    """Offsets (int64) and bytes (uint8) of a string/binary array, without copying the text when possible."""
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks() if arr.num_chunks != 1 else arr.chunk(0)
    if arr.null_count:
        arr = arr.fill_null("")
    arr = arr.cast(pa.large_binary()) if not pa.types.is_large_binary(arr.type) else arr
    _, off_buf, data_buf = arr.buffers()
    offsets = np.frombuffer(off_buf, dtype=np.int64, count=len(arr) + 1 + arr.offset)[arr.offset :]
    data = np.frombuffer(data_buf, dtype=np.uint8) if data_buf is not None else np.zeros(0, np.uint8)
    return offsets, data


def xxh64_strings(arr: pa.Array | pa.ChunkedArray, seed: int = 0) -> np.ndarray:
    """xxh64 of every string (null hashes as the empty string)."""
    offsets, data = string_buffers(arr)
    return _xxh64_rows(offsets, data, np.uint64(seed))
