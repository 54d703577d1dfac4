"""Dedup text normalisation in numba, done by the kernels as they read each row (`normalize_span`).

Polars' NFKC and `\\s+` regex cost ~24 us per 100-word row, more than the MinHash itself. On ASCII text
NFKC is the identity and lower case, `\\s` and `\\w` are byte classes, so one pass over the bytes gives
exactly what the Polars expressions give. Rows whose characters NFKC or lower case may change (found by
`non_ascii` and `rows_using`; see `engine.stages.dedup_text.key_rows`) get NFKC, lower case and
punctuation removal first, in Python; this pass then collapses their whitespace too, recognising every
Unicode White_Space character the regex `\\s` matches.
"""

from __future__ import annotations

import numba as nb
import numpy as np

from engine.stages.bit_kernels import ONE, byte_class_masks, bytes_at, low_bits, trailing_zeros
from engine.stages.numba_registries import quick_load


@nb.njit(inline="always")
def space_len(data, i, hi):
    """Bytes of the Unicode White_Space character at data[i] (what the regex `\\s` matches), else 0."""
    c = data[i]
    if c == 32 or 9 <= c <= 13:
        return 1
    if c < 128:
        return 0
    c1 = data[i + 1] if i + 1 < hi else 0
    if c == 0xC2 and (c1 == 0x85 or c1 == 0xA0):  # U+0085, U+00A0
        return 2
    c2 = data[i + 2] if i + 2 < hi else 0
    if c == 0xE1 and c1 == 0x9A and c2 == 0x80:  # U+1680
        return 3
    if c == 0xE2 and c1 == 0x80 and (0x80 <= c2 <= 0x8A or c2 == 0xA8 or c2 == 0xA9 or c2 == 0xAF):
        return 3  # U+2000-200A, U+2028, U+2029, U+202F
    if c == 0xE2 and c1 == 0x81 and c2 == 0x9F:  # U+205F
        return 3
    if c == 0xE3 and c1 == 0x80 and c2 == 0x80:  # U+3000
        return 3
    return 0


@nb.njit(inline="always")
def _is_word(c):
    return (48 <= c <= 57) or (65 <= c <= 90) or (97 <= c <= 122) or c == 95 or c >= 128


_SPACE_HIGH = byte_class_masks((frozenset({9, 10, 11, 12, 13, 32}), frozenset(range(128, 256))))
_HIGH = byte_class_masks((frozenset(range(128, 256)),))


@nb.njit(inline="always")
def _put(src, i, dst, w, n, lower):
    """Copy n ASCII bytes, ASCII whitespace as a space and (when `lower`) capitals in lower case."""
    for k in range(n):
        c = src[i + k]
        if c == 32 or 9 <= c <= 13:
            c = 32
        elif lower and 65 <= c <= 90:
            c += 32
        dst[w + k] = c


@nb.njit(inline="always")
def normalize_span(src, lo, hi, dst, lower, strip_punct, collapse):
    """Write src[lo:hi] normalised into dst (room for hi - lo bytes); return the length written.

    Lower-cases ASCII letters, drops ASCII punctuation, collapses whitespace runs (any Unicode
    White_Space) to one space and trims both ends; other bytes >= 128 pass through. With the default
    options a 64-byte block without non-ASCII bytes is done from its whitespace mask: when no byte is
    dropped (a run's later bytes, leading whitespace) it is one straight copy, else one copy per kept run.
    """
    w = 0
    after_space = True  # leading whitespace is dropped like a run's later bytes
    blocks = collapse and not strip_punct
    i = lo
    while i < hi:
        stop = hi
        if blocks and i + 64 <= hi:
            sp, high = _SPACE_HIGH(src, i)
            if high == 0:
                dropped = sp & ((sp << ONE) | (ONE if after_space else np.uint64(0)))
                if dropped == 0:
                    _put(src, i, dst, w, 64, lower)
                    w += 64
                else:
                    keep = ~dropped
                    while keep:
                        t = trailing_zeros(keep)
                        run = trailing_zeros(~(keep >> np.uint64(t)))
                        _put(src, i + t, dst, w, run, lower)
                        w += run
                        if t + run >= 64:
                            break
                        keep &= ~low_bits(t + run)
                after_space = (sp >> np.uint64(63)) != 0
                i += 64
                continue
            stop = i + 64  # a block with non-ASCII bytes: byte by byte
        while i < stop:
            c = src[i]
            k = space_len(src, i, hi) if collapse else 0
            if k:
                if not after_space:
                    dst[w] = 32
                    w += 1
                after_space = True
                i += k
                continue
            i += 1
            if strip_punct and not _is_word(c) and not (c == 32 or 9 <= c <= 13):
                continue
            if lower and 65 <= c <= 90:
                c += 32
            dst[w] = c
            w += 1
            after_space = False
    if collapse and w > 0 and dst[w - 1] == 32:
        w -= 1  # a trailing run (with collapse every 32 written is a run's space)
    return w


@nb.njit(inline="always")
def key_source(keys, r):
    """Row r's bytes as the key kernels read them: (bytes, start, end)."""
    addresses, sizes, buffer, start, end, prepared, prep_offsets, prep_data = keys[:8]
    k = prepared[r]
    if k >= 0:
        return prep_data, prep_offsets[k], prep_offsets[k + 1]
    return bytes_at(addresses[buffer[r]], sizes[buffer[r]]), start[r], end[r]


@nb.njit(inline="always")
def _first_wide(data, i, hi):
    """The offset of the first byte >= 128 in data[i:hi], or hi."""
    while i + 64 <= hi:
        (high,) = _HIGH(data, i)
        if high:
            return i + trailing_zeros(high)
        i += 64
    while i < hi and data[i] < 128:
        i += 1
    return i


@nb.njit(inline="always")
def _code_point(data, i):
    """The code point whose UTF-8 lead byte is data[i] (valid UTF-8, as Arrow strings are), and its length."""
    c = np.int64(data[i])
    if c < 0xE0:
        return ((c & 0x1F) << 6) | (data[i + 1] & 0x3F), 2
    if c < 0xF0:
        return ((c & 0x0F) << 12) | ((data[i + 1] & 0x3F) << 6) | (data[i + 2] & 0x3F), 3
    return ((c & 0x07) << 18) | ((data[i + 1] & 0x3F) << 12) | ((data[i + 2] & 0x3F) << 6) | (data[i + 3] & 0x3F), 4


@nb.njit(parallel=True, cache=True, nogil=True)
def non_ascii(addresses, sizes, buffer, start, end):
    """Which rows have non-ASCII bytes, and a mark (uint8 per code point) on every non-ASCII code point used."""
    n = start.shape[0]
    wide = np.zeros(n, dtype=np.bool_)
    seen = np.zeros(0x110000, dtype=np.uint8)
    for r in nb.prange(n):
        data = bytes_at(addresses[buffer[r]], sizes[buffer[r]])
        hi = end[r]
        i = _first_wide(data, start[r], hi)
        wide[r] = i < hi
        while i < hi:
            cp, k = _code_point(data, i)
            seen[cp] = 1  # threads may race to write the same 1
            i = _first_wide(data, i + k, hi)
    return wide, seen


@nb.njit(parallel=True, cache=True, nogil=True)
def rows_using(addresses, sizes, buffer, start, end, rows, marked):
    """For each of `rows`, whether it uses a code point whose mark is set."""
    out = np.zeros(rows.shape[0], dtype=np.bool_)
    for x in nb.prange(rows.shape[0]):
        r = rows[x]
        data = bytes_at(addresses[buffer[r]], sizes[buffer[r]])
        hi = end[r]
        i = _first_wide(data, start[r], hi)
        while i < hi:
            cp, k = _code_point(data, i)
            if marked[cp]:
                out[x] = True
                break
            i = _first_wide(data, i + k, hi)
    return out


@nb.njit(parallel=True, cache=True, nogil=True)
def normalize_keys(keys):
    """Every row's dedup key (see `engine.stages.dedup_text.KeyRows`) normalised: new (offsets, data)."""
    lower, strip_punct, collapse = keys[8:]
    n = keys[3].shape[0]
    room = np.empty(n + 1, dtype=np.int64)
    room[0] = 0
    for r in range(n):
        _, lo, hi = key_source(keys, r)
        room[r + 1] = room[r] + (hi - lo)
    scratch = np.empty(room[n], dtype=np.uint8)
    lengths = np.empty(n, dtype=np.int64)
    for r in nb.prange(n):
        src, lo, hi = key_source(keys, r)
        lengths[r] = normalize_span(src, lo, hi, scratch[room[r] : room[r + 1]], lower, strip_punct, collapse)
    offsets = np.empty(n + 1, dtype=np.int64)
    offsets[0] = 0
    for r in range(n):
        offsets[r + 1] = offsets[r] + lengths[r]
    out = np.empty(offsets[n], dtype=np.uint8)
    for r in nb.prange(n):
        out[offsets[r] : offsets[r + 1]] = scratch[room[r] : room[r] + lengths[r]]
    return offsets, out


quick_load(globals())  # cached kernels load without numba's registries (engine.stages.numba_registries)
