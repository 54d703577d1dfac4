"""Text normalisation over Arrow string buffers in numba: the ASCII fast path of `dedup_text`.

Polars' NFKC and `\\s+` regex cost ~24 us per 100-word row, more than the MinHash itself. On ASCII text
NFKC is the identity and lower case, `\\s` and `\\w` are byte classes, so one pass over the bytes gives
exactly what the Polars expressions give. Rows with any non-ASCII byte get NFKC, lower case and
punctuation removal first (see `engine.stages.dedup_text.normalize`); this pass then collapses their
whitespace too, recognising every Unicode White_Space character the regex `\\s` matches.
"""

from __future__ import annotations

import numba as nb
import numpy as np


@nb.njit(cache=True)
def ascii_rows(offsets, data):
    """True for rows whose bytes are all ASCII."""
    n = offsets.shape[0] - 1
    out = np.ones(n, dtype=np.bool_)
    for r in range(n):
        for i in range(offsets[r], offsets[r + 1]):
            if data[i] >= 128:
                out[r] = False
                break
    return out


@nb.njit(inline="always")
def _space_len(data, i, hi):
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


@nb.njit(parallel=True, cache=True)
def normalize_ascii(offsets, data, lower, strip_punct, collapse):
    """Lower-case ASCII letters, drop ASCII punctuation, collapse whitespace runs (any Unicode White_Space)
    to one space and trim spaces at both ends. Other bytes >= 128 pass through. Returns new (offsets, data)."""
    n = offsets.shape[0] - 1
    lengths = np.empty(n, dtype=np.int64)
    scratch = np.empty(data.shape[0], dtype=np.uint8)
    for r in nb.prange(n):
        lo, hi = offsets[r], offsets[r + 1]
        w = lo
        pending_space = False
        i = lo
        while i < hi:
            c = data[i]
            k = _space_len(data, i, hi) if collapse else 0
            if k:
                pending_space = True
                i += k
                continue
            if strip_punct and not _is_word(c) and not (c == 32 or 9 <= c <= 13):
                i += 1
                continue
            if pending_space:
                if w > lo:
                    scratch[w] = 32
                    w += 1
                pending_space = False
            if lower and 65 <= c <= 90:
                c += 32
            scratch[w] = c
            w += 1
            i += 1
        lengths[r] = w - lo
    new_offsets = np.empty(n + 1, dtype=np.int64)
    new_offsets[0] = 0
    for r in range(n):
        new_offsets[r + 1] = new_offsets[r] + lengths[r]
    out = np.empty(new_offsets[n], dtype=np.uint8)
    for r in nb.prange(n):
        out[new_offsets[r] : new_offsets[r + 1]] = scratch[offsets[r] : offsets[r] + lengths[r]]
    return new_offsets, out
