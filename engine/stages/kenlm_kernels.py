"""The kenlm stage's text normalisation in one numba pass over the Arrow buffers.

Why: KenLM scores a 100-token text in ~10 µs, so the Polars normalisation (lower case, NFD, regexes,
token split: ~25 µs a row) would cost more than the scoring itself. Every character step of
`engine.stages.kenlm.normalize` acts on one code point at a time, so a table says what each code point
becomes and whether that is a word character, a space, punctuation (each mark its own token) or
nothing (a combining accent). The table is built by running the Polars expression itself on every code
point below `TABLE_SIZE`; the kernel then joins tokens with single spaces as `\\w+|[^\\w\\s]` would.
Rows with a code point the table does not cover (beyond the emoji plane, Hangul syllables that decompose
to more than 4 bytes, a capital sigma, whose lower case depends
on its position) are flagged and left to the Polars expression; `tests/stages/test_kenlm.py` checks
that both paths agree on real data.
"""

from __future__ import annotations

from typing import NamedTuple

import numba as nb
import numpy as np

from engine.stages.numba_registries import quick_load

TABLE_SIZE = 0x20000
"""The Basic Multilingual Plane and the emoji plane; beyond it rows take the slow path."""
WORD, SPACE, PUNCT, EMPTY, FALLBACK = 0, 1, 2, 3, 4
_MAX_OUT = 4  # bytes a table entry may produce (so the output buffer is bounded)
_CONTEXT_DEPENDENT = (0x03A3,)  # Σ lower-cases to ς at the end of a word


class CharTable(NamedTuple):
    kind: np.ndarray  # uint8 per code point
    start: np.ndarray  # int64 offsets into `data`, TABLE_SIZE + 1 of them
    data: np.ndarray  # uint8: the UTF-8 of what each code point becomes


def char_table(out: list[str], word: np.ndarray, space: np.ndarray, punct: np.ndarray) -> CharTable:
    """Pack what each code point normalises to (`out`) and its class into flat arrays."""
    kind = np.full(len(out), FALLBACK, dtype=np.uint8)
    encoded = [o.encode() for o in out]
    for cp, (o, b) in enumerate(zip(out, encoded, strict=True)):
        if cp in _CONTEXT_DEPENDENT or len(b) > _MAX_OUT:
            continue
        if o == "":
            kind[cp] = EMPTY
        elif word[cp]:
            kind[cp] = WORD
        elif space[cp]:
            kind[cp] = SPACE
        elif punct[cp] and (len(o) == 1 or o.isascii()):
            kind[cp] = PUNCT
    lengths = np.fromiter((len(b) for b in encoded), dtype=np.int64, count=len(encoded))
    start = np.concatenate([[0], np.cumsum(lengths)])
    data = np.frombuffer(b"".join(encoded), dtype=np.uint8).copy()
    return CharTable(kind, start, data)


@nb.njit(inline="always")
def _decode(data, i):
    """Code point at byte i of valid UTF-8 and its length in bytes."""
    b = data[i]
    if b < 0xE0:
        return ((b & 0x1F) << 6) | (data[i + 1] & 0x3F), 2
    if b < 0xF0:
        return ((b & 0x0F) << 12) | ((data[i + 1] & 0x3F) << 6) | (data[i + 2] & 0x3F), 3
    return ((b & 0x07) << 18) | ((data[i + 1] & 0x3F) << 12) | ((data[i + 2] & 0x3F) << 6) | (data[i + 3] & 0x3F), 4


@nb.njit(cache=True, nogil=True)
def _normalize_rows(offsets, data, r0, r1, kind, tstart, tdata, out, out_offsets, tokens, fallback):
    """Rows r0..r1 into `out` (from byte 0); out_offsets[r + 1] is the end of row r in `out`."""
    w = 0
    for r in range(r0, r1):
        start = w
        prev = SPACE  # class of the last thing written in this row
        ntok = 0
        i = offsets[r]
        end = offsets[r + 1]
        while i < end:
            c = data[i]
            if c < 128:  # ASCII: one byte in, one byte out
                i += 1
                k = kind[c]
                if k == WORD:
                    if prev != WORD:
                        if prev == PUNCT:
                            out[w] = 32
                            w += 1
                        ntok += 1
                    out[w] = tdata[tstart[c]]
                    w += 1
                    prev = WORD
                elif k == SPACE:
                    if prev != SPACE:
                        out[w] = 32
                        w += 1
                        prev = SPACE
                else:  # PUNCT
                    if prev != SPACE:
                        out[w] = 32
                        w += 1
                    out[w] = tdata[tstart[c]]
                    w += 1
                    ntok += 1
                    prev = PUNCT
                continue
            cp, size = _decode(data, i)
            i += size
            if cp >= TABLE_SIZE or kind[cp] == FALLBACK:
                fallback[r] = True
                break
            k = kind[cp]
            if k == EMPTY:
                continue
            if k == SPACE:
                if prev != SPACE:
                    out[w] = 32
                    w += 1
                    prev = SPACE
                continue
            a, b = tstart[cp], tstart[cp + 1]
            if k == WORD:
                if prev != WORD:
                    if prev == PUNCT:
                        out[w] = 32
                        w += 1
                    ntok += 1
                for j in range(a, b):
                    out[w] = tdata[j]
                    w += 1
                prev = WORD
                continue
            # punctuation: every character of the replacement is a token ("…" -> ". . .")
            j = a
            while j < b:
                if prev != SPACE:
                    out[w] = 32
                    w += 1
                step = 1 if tdata[j] < 0xC0 else (2 if tdata[j] < 0xE0 else (3 if tdata[j] < 0xF0 else 4))
                for q in range(step):
                    out[w] = tdata[j + q]
                    w += 1
                j += step
                ntok += 1
                prev = PUNCT
        if fallback[r]:
            w = start
            ntok = 0
        elif prev == SPACE and w > start:
            w -= 1  # the trailing space
        tokens[r] = ntok
        out_offsets[r + 1] = w


@nb.njit(cache=True, parallel=True)
def _normalize(offsets, data, kind, tstart, tdata, chunks):
    n = offsets.shape[0] - 1
    k = chunks.shape[0] - 1
    ends = np.zeros(n + 1, dtype=np.int64)  # per row: end within its chunk's buffer
    tokens = np.zeros(n, dtype=np.int64)
    fallback = np.zeros(n, dtype=np.bool_)
    used = np.zeros(k, dtype=np.int64)
    bufs = [np.empty(0, dtype=np.uint8) for _ in range(k)]
    for c in range(k):  # buffers allocated serially: numba lists are not thread-safe to fill
        r0, r1 = chunks[c], chunks[c + 1]
        bufs[c] = np.empty(4 * (offsets[r1] - offsets[r0]) + 1, dtype=np.uint8)  # a 2-byte mark can become 3 tokens
    for c in nb.prange(k):
        r0, r1 = chunks[c], chunks[c + 1]
        _normalize_rows(offsets, data, r0, r1, kind, tstart, tdata, bufs[c], ends, tokens, fallback)
        used[c] = ends[r1]
    total = 0
    for c in range(k):
        total += used[c]
    out = np.empty(total, dtype=np.uint8)
    out_offsets = np.zeros(n + 1, dtype=np.int64)
    base = 0
    for c in range(k):
        r0, r1 = chunks[c], chunks[c + 1]
        out[base : base + used[c]] = bufs[c][: used[c]]
        for r in range(r0, r1):
            out_offsets[r + 1] = base + ends[r + 1]
        base += used[c]
    return out_offsets, out, tokens, fallback


def _chunks(offsets: np.ndarray, parts: int) -> np.ndarray:
    """Row boundaries that split the text bytes into about equal parts."""
    n = len(offsets) - 1
    if n == 0:
        return np.zeros(1, dtype=np.int64)
    targets = np.linspace(offsets[0], offsets[-1], parts + 1)[1:-1]
    cuts = np.searchsorted(offsets[1:], targets)
    return np.unique(np.concatenate([[0], np.minimum(cuts, n), [n]])).astype(np.int64)


def normalize_fast(
    offsets: np.ndarray, data: np.ndarray, table: CharTable
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Normalised text of each row (offsets, bytes), its token count, and the rows the table could not do (left empty)."""
    parts = 1 if len(data) < 1 << 20 else 4 * nb.get_num_threads()
    return _normalize(offsets, data, table.kind, table.start, table.data, _chunks(offsets, parts))


quick_load(globals())  # cached kernels load without numba's registries (engine.stages.numba_registries)
