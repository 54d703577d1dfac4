"""xxHash64 in numba over Arrow string buffers (offsets + bytes): no Python loop over rows.

Matches the reference xxh64 (the `xxhash` package is the test oracle). Used for row ids at ingest and
by later stages that hash text.
"""

from __future__ import annotations

import numba as nb
import numpy as np
import pyarrow as pa

from engine.stages.numba_registries import quick_load

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


_EMPTY = pa.Array.from_buffers(pa.large_binary(), 1, [None, pa.py_buffer(np.zeros(2, np.int64)), pa.py_buffer(b"")])[0]
"""b"" as a large_binary scalar, made from buffers: `fill_null("")` converts "" with `pa.scalar`, which
imports pandas (~0.15 s) the first time."""


def string_buffers(arr: pa.Array | pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray]:
    """Offsets (int64) and bytes (uint8) of a string/binary array, without copying the text when possible."""
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks() if arr.num_chunks != 1 else arr.chunk(0)
    arr = arr.cast(pa.large_binary()) if not pa.types.is_large_binary(arr.type) else arr
    if arr.null_count:
        arr = arr.fill_null(_EMPTY)
    _, off_buf, data_buf = arr.buffers()
    offsets = np.frombuffer(off_buf, dtype=np.int64, count=len(arr) + 1 + arr.offset)[arr.offset :]
    data = np.frombuffer(data_buf, dtype=np.uint8) if data_buf is not None else np.zeros(0, np.uint8)
    return offsets, data


def xxh64_strings(arr: pa.Array | pa.ChunkedArray, seed: int = 0) -> np.ndarray:
    """xxh64 of every string (null hashes as the empty string)."""
    offsets, data = string_buffers(arr)
    return _xxh64_rows(offsets, data, np.uint64(seed))


_HEX = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)


@nb.njit(inline="always")
def load64(buf, i):
    """_read64 with an unsigned index: without negative-index wraparound LLVM fuses it into one load."""
    j = np.uint64(i)
    v = np.uint64(0)
    for k in range(8):
        v |= np.uint64(buf[j + np.uint64(k)]) << np.uint64(8 * k)
    return v


@nb.njit(inline="always")
def _load32(buf, i):
    j = np.uint64(i)
    v = np.uint64(0)
    for k in range(4):
        v |= np.uint64(buf[j + np.uint64(k)]) << np.uint64(8 * k)
    return v


@nb.njit(inline="always")
def _avalanche(h):
    h = h ^ (h >> np.uint64(33))
    h = h * _P2
    h = h ^ (h >> np.uint64(29))
    h = h * _P3
    return h ^ (h >> np.uint64(32))


@nb.njit(inline="always")
def _xxh64_pair_span(buf, start, end):
    """(xxh64 seed 0, xxh64 seed 1) of buf[start:end] in one sweep: each lane is read once for both."""
    n = end - start
    i = start
    zero, one = np.uint64(0), np.uint64(1)
    if n >= 32:
        a1, a2, a3, a4 = zero + _P1 + _P2, zero + _P2, zero, zero - _P1
        b1, b2, b3, b4 = one + _P1 + _P2, one + _P2, one, one - _P1
        limit = end - 32
        while i <= limit:
            l1 = load64(buf, i)
            l2 = load64(buf, i + 8)
            l3 = load64(buf, i + 16)
            l4 = load64(buf, i + 24)
            a1, b1 = _round(a1, l1), _round(b1, l1)
            a2, b2 = _round(a2, l2), _round(b2, l2)
            a3, b3 = _round(a3, l3), _round(b3, l3)
            a4, b4 = _round(a4, l4), _round(b4, l4)
            i += 32
        ha = _rotl(a1, 1) + _rotl(a2, 7) + _rotl(a3, 12) + _rotl(a4, 18)
        ha = _merge(_merge(_merge(_merge(ha, a1), a2), a3), a4)
        hb = _rotl(b1, 1) + _rotl(b2, 7) + _rotl(b3, 12) + _rotl(b4, 18)
        hb = _merge(_merge(_merge(_merge(hb, b1), b2), b3), b4)
    else:
        ha = zero + _P5
        hb = one + _P5
    ha = ha + np.uint64(n)
    hb = hb + np.uint64(n)
    while i + 8 <= end:
        k = _round(zero, load64(buf, i))
        ha = _rotl(ha ^ k, 27) * _P1 + _P4
        hb = _rotl(hb ^ k, 27) * _P1 + _P4
        i += 8
    if i + 4 <= end:
        k = _load32(buf, i) * _P1
        ha = _rotl(ha ^ k, 23) * _P2 + _P3
        hb = _rotl(hb ^ k, 23) * _P2 + _P3
        i += 4
    while i < end:
        k = np.uint64(buf[i]) * _P5
        ha = _rotl(ha ^ k, 11) * _P1
        hb = _rotl(hb ^ k, 11) * _P1
        i += 1
    return _avalanche(ha), _avalanche(hb)


@nb.njit(inline="always")
def _put_hex(out, at, h):
    for k in range(16):
        out[at + k] = _HEX[(h >> np.uint64(60 - 4 * k)) & np.uint64(15)]


@nb.njit(nogil=True, cache=True)
def _xxh64_pair_hex_rows(offsets, data):
    n = offsets.shape[0] - 1
    out = np.empty(n * 32, dtype=np.uint8)
    for r in range(n):
        ha, hb = _xxh64_pair_span(data, offsets[r], offsets[r + 1])
        _put_hex(out, 32 * r, ha)
        _put_hex(out, 32 * r + 16, hb)
    return out


def xxh64_pair_hex(arr: pa.Array | pa.ChunkedArray) -> pa.Array:
    """Per string, 32 hex chars: xxh64 with seed 0, then seed 1 (each big-endian), in one sweep over the bytes.

    Equal to `format(xxh64(s, 0), "016x") + format(xxh64(s, 1), "016x")`; null hashes as the empty string.
    The kernel holds no GIL, so other threads (a Parquet writer) run beside it.
    """
    offsets, data = string_buffers(arr)
    n = len(offsets) - 1
    hexed = _xxh64_pair_hex_rows(offsets, data)
    out_offsets = np.arange(0, 32 * (n + 1), 32, dtype=np.int64)
    return pa.LargeStringArray.from_buffers(n, pa.py_buffer(out_offsets), pa.py_buffer(hexed))


quick_load(globals())  # cached kernels load without numba's registries (engine.stages.numba_registries)
