"""One-pass counting kernel for the heuristic stage: Arrow string buffers in, count arrays out.

Why: the heuristic scorer needs about a dozen counts per text (words, sentences, syllables, paragraphs,
list and step lines, code markers, sentence-length spread, distinct words and bigrams). As Polars regexes
that is a dozen passes over every byte plus list columns; here it is one pass over the bytes (and a
short second one over the first `window` words), parallel over blocks of rows. The stage combines the
counts into scores with Polars expressions.

Definitions (byte level, UTF-8; ASCII letters only are letters, as the regexes they replace):
- word: a whitespace-separated token with a word character (ASCII alnum or `_`, or a non-ASCII
  character outside Latin-1 punctuation U+0080-U+00BF, U+2000-U+2FFF and 4-byte emoji).
- sentence: textstat's segment (`\\b[^.!?]+[.!?]*`) with three or more words.
- syllable: a vowel group (`[aeiouy]+`, any case), less a silent final e / -ed / -es after a consonant
  run (see `_silent`), plus one for every word without a vowel ("2", "html").
- paragraph breaks: runs of blank lines (`\\n([ \\t]*\\n)+`); list items and step lines: lines opening
  with a bullet or `1.`/`2)` (list), `1.`/`2)` plus a blank or `Step N` (step); step words: first(ly),
  second(ly), third(ly), then, next, finally, lastly, afterwards as whole ASCII words (first letter any case).
- code: any of `CODE_MARKERS` anywhere.
- spread: the coefficient of variation (sample std / mean) of the byte spans between sentence ends
  (". ", "! ", "? ", a newline), ignoring spans shorter than `SPAN_MIN_BYTES`; 0 with fewer than two spans.
- type/token and bigram ratios over the first `window` tokens of the first `window * 10` characters,
  lower-cased (ASCII) and split at single spaces and newlines (empty tokens count, as `str.split(" ")`).
"""

from __future__ import annotations

import numba as nb
import numpy as np

# --- byte classes -----------------------------------------------------------------------------------
SPACE, AWORD, VOWEL, CONSONANT, TERM, UWORD, TRIGGER = 1, 2, 4, 8, 16, 32, 64


def _classes() -> np.ndarray:
    t = np.zeros(256, dtype=np.uint8)
    for c in (9, 10, 11, 12, 13, 32):
        t[c] |= SPACE
    for c in b"0123456789_abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ":
        t[c] |= AWORD | UWORD
    for c in b"aeiouyAEIOUY":
        t[c] |= VOWEL
    for c in b"bcdfghjklmnpqrstvwxzBCDFGHJKLMNPQRSTVWXZ":
        t[c] |= CONSONANT
    for c in b".!?":
        t[c] |= TERM
    for c in range(0xC3, 0xF0):  # lead bytes of letters; not Latin-1 punctuation (C2) or U+2000-U+2FFF (E2)
        if c != 0xE2:
            t[c] |= UWORD
    for m in CODE_MARKERS:
        if not m[0].isalnum():
            t[m.encode()[0]] |= TRIGGER
    return t


CODE_MARKERS = (
    "```",
    "#include",
    "();",
    "{\n",
    "};",
    "</",
    "=>",
    "def ",
    "function ",
    "function(",
    "print(",
    "console.log",
    "import ",
    "public static",
    "SELECT ",
)
"""A text has code when one of these occurs; the ones that open with a letter only at the start of a word
("malfunction " is not code)."""
STEP_WORDS = ("first", "firstly", "second", "secondly", "third", "thirdly", "then", "next", "finally", "lastly")
STEP_WORDS += ("afterwards",)
SPAN_MIN_BYTES = 3
"""Spans between sentence ends shorter than this ("\n\n", ". \n") are gaps, not sentences."""
CHARS_PER_WORD = 10
"""Diversity reads the first `window` tokens of the first `window * 10` characters."""


def _packed(words: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Words as one byte array, their offsets, and the length of each one's leading ASCII word run."""
    blob = [w.encode() for w in words]
    offsets = np.zeros(len(blob) + 1, dtype=np.int64)
    offsets[1:] = np.cumsum([len(b) for b in blob])
    heads = np.array(
        [
            next((k for k, ch in enumerate(w) if not (ch.isascii() and (ch.isalnum() or ch == "_"))), len(w))
            for w in words
        ],
        dtype=np.int64,
    )
    return np.frombuffer(b"".join(blob), dtype=np.uint8).copy(), offsets, heads


_CLASS = _classes()
_CODE, _CODE_OFF, _CODE_HEAD = _packed(CODE_MARKERS)
_STEP, _STEP_OFF, _ = _packed(STEP_WORDS)
MAX_WORD = 10


def _word_keys() -> np.ndarray:
    """(first byte, length) of an ASCII word -> bit w for step word w, bit 16 + m for code marker m.

    One table load per word decides whether any comparison is needed.
    """
    keys = np.zeros((256, MAX_WORD + 1), dtype=np.int32)
    for w, word in enumerate(STEP_WORDS):
        for first in (word[0], word[0].upper()):
            keys[ord(first), len(word)] |= 1 << w
    for m, marker in enumerate(CODE_MARKERS):
        if _CODE_HEAD[m] > 0:
            keys[ord(marker[0]), _CODE_HEAD[m]] |= 1 << (16 + m)
    return keys


_KEYS = _word_keys()
_SYMBOLS = sum(1 << m for m in range(len(CODE_MARKERS)) if _CODE_HEAD[m] == 0)
"""Bits of the code markers that open with a symbol ("```", "</"), checked at their first byte."""

# columns of the count matrix
WORDS, SENTENCES, SYLLABLES, VOWELLESS, BREAKS, LIST_ITEMS, STEPS, CODE = range(8)
N_COUNTS = 8
# columns of the ratio matrix
SPREAD, TTR, BIGRAMS = range(3)


@nb.njit(inline="always")
def _starts_with(data, i, hi, pat, lo, end):
    """data[i:] starts with pat[lo:end]."""
    if i + (end - lo) > hi:
        return False
    for k in range(end - lo):  # noqa: SIM110 (numba compiles loops, not generators)
        if data[i + k] != pat[lo + k]:
            return False
    return True


@nb.njit(inline="always")
def _is_step_word(data, s, e, bits, pat, off):
    """data[s:e] is the step word of one of `bits` (first letter in either case)."""
    for w in range(off.shape[0] - 1):
        if (bits >> w) & 1 and _starts_with(data, s + 1, e, pat, off[w] + 1, off[w + 1]):
            return True
    return False


@nb.njit(inline="always")
def _code_at(data, i, hi, bits, pat, off):
    """A code marker of `bits` (bit m: marker m) starts at data[i]."""
    for m in range(off.shape[0] - 1):  # noqa: SIM110
        if (bits >> m) & 1 and _starts_with(data, i, hi, pat, off[m], off[m + 1]):
            return True
    return False


@nb.njit(inline="always")
def _skip_blanks(data, k, hi):
    while k < hi and (data[k] == 32 or data[k] == 9):
        k += 1
    return k


@nb.njit(inline="always")
def _line_start(data, i, hi, cls):
    """(list item, step line) flags of the line starting at data[i]."""
    j = _skip_blanks(data, i, hi)
    if j >= hi:
        return 0, 0
    c = data[j]
    k = -1  # the index after a list marker, when there is one
    step = 0
    if c == 45 or c == 42 or c == 43:  # - * +
        k = j + 1
    elif c == 0xE2 and j + 2 < hi and data[j + 1] == 0x80 and data[j + 2] == 0xA2:  # •
        k = j + 3
    elif 48 <= c <= 57:
        d = j
        while d < hi and 48 <= data[d] <= 57:
            d += 1
        if d - j <= 3 and d < hi and (data[d] == 46 or data[d] == 41):  # 1. or 1)
            k = d + 1
            if k < hi and (data[k] == 32 or data[k] == 9):
                step = 1
    elif (c == 83 or c == 115) and j + 3 < hi and data[j + 1] == 116 and data[j + 2] == 101 and data[j + 3] == 112:
        d = _skip_blanks(data, j + 4, hi)
        if d < hi and 48 <= data[d] <= 57:
            step = 1
    item = 0
    if k >= 0:
        m = _skip_blanks(data, k, hi)
        if m > k and m < hi and not (cls[data[m]] & SPACE):
            item = 1
    return item, step


@nb.njit(inline="always")
def _silent_end(data, s, e, cls):
    """1 when the ASCII word data[s:e] ends in a silent e / -ed / -es after a consonant run, else 0.

    The run must follow a vowel. Silent when it ends in a consonant outside the ending's set (e: l;
    ed: l t d; es: l s x z c g h), or is "l" or ends in "ll": "make", "named", "types", "whale" lose a
    syllable, "table", "wanted", "boxes" do not.
    """
    last = data[e - 1] | 32
    ending = 0  # 0: e, 1: ed, 2: es
    p = e - 1
    if last == 100 or last == 115:
        p = e - 2
        if p < s or (data[p] | 32) != 101:
            return 0
        ending = 1 if last == 100 else 2
    elif last != 101:
        return 0
    k = p - 1
    while k >= s and (cls[data[k]] & CONSONANT):
        k -= 1
    crun = p - 1 - k
    if crun == 0 or k < s or not (cls[data[k]] & VOWEL):
        return 0
    clast = data[p - 1] | 32
    if clast == 108:  # l: silent when the run is "l" or ends in "ll"
        return 1 if crun == 1 or (data[p - 2] | 32) == 108 else 0
    if ending == 1:
        return 0 if clast == 116 or clast == 100 else 1
    if ending == 2:
        return 0 if clast in (115, 120, 122, 99, 103, 104) else 1
    return 1


@nb.njit(inline="always")
def _count_text(data, lo, hi, cls, keys, symbols, code, code_off, step, step_off, counts):
    """Fill counts[:] for data[lo:hi]; return the sentence-length spread (coefficient of variation)."""
    words = sentences = syllables = vowelless = breaks = items = steps = 0
    has_code = False
    tok_word = tok_vowel = 0  # the current whitespace token has a word character / a vowel
    seg_words = 0  # words in the current sentence segment
    seg_tok = 0  # the current token has been counted in the segment
    in_vowels = 0
    run_start = -1  # start of the current ASCII word run, -1 outside one
    last_nl = -1
    last_solid = -1  # the last byte that is not a blank, tab or newline
    in_break = False
    last_bound = lo
    n_span = 0
    s1 = s2 = 0.0
    item, st = _line_start(data, lo, hi, cls)
    items += item
    steps += st
    for i in range(lo, hi):
        c = data[i]
        f = cls[c]
        if f & AWORD:  # the hot path, kept branch-light: flags are 0/1 integers
            if run_start < 0:
                run_start = i
            v = (f >> 2) & 1
            tok_word = 1
            tok_vowel |= v
            seg_words += 1 - seg_tok
            seg_tok = 1
            syllables += v & (1 - in_vowels)
            in_vowels = v
            continue
        # anything else ends an ASCII word run, a vowel group and a consonant run
        in_vowels = 0
        if run_start >= 0:
            last_solid = i - 1
            syllables -= _silent_end(data, run_start, i, cls)
            n = i - run_start
            bits = keys[data[run_start], n] if n <= MAX_WORD else 0
            if bits:
                if (bits & 0xFFFF) and _is_step_word(data, run_start, i, bits & 0xFFFF, step, step_off):
                    steps += 1
                elif not has_code and _code_at(data, run_start, hi, bits >> 16, code, code_off):
                    has_code = True
            run_start = -1
        if f & SPACE:
            if tok_word:
                words += 1
                if not tok_vowel:
                    vowelless += 1
            tok_word = tok_vowel = 0
            seg_tok = 0
            if c == 10:
                if last_nl >= 0 and last_solid < last_nl:
                    if not in_break:
                        breaks += 1
                        in_break = True
                else:
                    in_break = False
                last_nl = i
                span = i - last_bound
                if span >= SPAN_MIN_BYTES:
                    n_span += 1
                    s1 += span
                    s2 += span * span
                last_bound = i
                item, st = _line_start(data, i + 1, hi, cls)
                items += item
                steps += st
            elif c != 32 and c != 9:
                last_solid = i
            continue
        last_solid = i
        if f & UWORD:
            tok_word = 1
            seg_words += 1 - seg_tok
            seg_tok = 1
        elif f & TERM:
            if seg_words >= 3:
                sentences += 1
            seg_words = 0
            seg_tok = 0
            if i + 1 < hi and data[i + 1] == 32:
                span = i - last_bound
                if span >= SPAN_MIN_BYTES:
                    n_span += 1
                    s1 += span
                    s2 += span * span
                last_bound = i
        elif (f & TRIGGER) and not has_code and _code_at(data, i, hi, symbols, code, code_off):
            has_code = True
    # the end of the text closes the last word run, token, segment and span
    if run_start >= 0:
        syllables -= _silent_end(data, run_start, hi, cls)
    if run_start >= 0 and hi - run_start <= MAX_WORD:
        bits = keys[data[run_start], hi - run_start] & 0xFFFF
        if bits and _is_step_word(data, run_start, hi, bits, step, step_off):
            steps += 1
    if tok_word:
        words += 1
        if not tok_vowel:
            vowelless += 1
    if seg_words >= 3:
        sentences += 1
    span = hi - last_bound
    if span >= SPAN_MIN_BYTES:
        n_span += 1
        s1 += span
        s2 += span * span
    counts[WORDS] = words
    counts[SENTENCES] = sentences
    counts[SYLLABLES] = syllables + vowelless
    counts[VOWELLESS] = vowelless
    counts[BREAKS] = breaks
    counts[LIST_ITEMS] = items
    counts[STEPS] = steps
    counts[CODE] = 1 if has_code else 0
    if n_span < 2:
        return 0.0
    mean = s1 / n_span
    var = max(s2 - n_span * mean * mean, 0.0) / (n_span - 1)
    return np.sqrt(var) / mean


@nb.njit(inline="always")
def _insert(keys, stamps, stamp, h):
    """Add h to the set of this row (entries of other rows are stale by stamp); True when new."""
    mask = keys.shape[0] - 1
    slot = (h ^ (h >> np.uint64(29))) & np.uint64(mask)
    while True:
        s = np.int64(slot)
        if stamps[s] != stamp:
            stamps[s] = stamp
            keys[s] = h
            return True
        if keys[s] == h:
            return False
        slot = (slot + np.uint64(1)) & np.uint64(mask)


_FNV_OFFSET = np.uint64(0xCBF29CE484222325)
_FNV_PRIME = np.uint64(0x100000001B3)
_MIX = np.uint64(0x9E3779B97F4A7C15)


@nb.njit(parallel=True, cache=True)
def _count_rows(offsets, data, window, cls, word_keys, symbols, code, code_off, step, step_off):
    n = offsets.shape[0] - 1
    counts = np.zeros((n, N_COUNTS), dtype=np.int32)
    ratios = np.zeros((n, 3), dtype=np.float64)
    block = 512
    n_blocks = (n + block - 1) // block
    size = 1
    while size < 4 * window:
        size *= 2
    for b in nb.prange(n_blocks):
        # one table for words, one for bigrams; a row stamps its entries with r + 1, so no clearing
        keys = np.empty(size, dtype=np.uint64)
        stamps = np.zeros(size, dtype=np.int64)
        keys2 = np.empty(size, dtype=np.uint64)
        stamps2 = np.zeros(size, dtype=np.int64)
        for r in range(b * block, min(n, (b + 1) * block)):
            lo, hi = offsets[r], offsets[r + 1]
            ratios[r, SPREAD] = _count_text(
                data, lo, hi, cls, word_keys, symbols, code, code_off, step, step_off, counts[r]
            )
            ttr, big = _diversity(data, lo, hi, window, keys, stamps, keys2, stamps2, r + 1)
            ratios[r, TTR] = ttr
            ratios[r, BIGRAMS] = big
    return counts, ratios


@nb.njit(inline="always")
def _diversity(data, lo, hi, window, keys, stamps, keys2, stamps2, stamp):
    """(type/token ratio, distinct-bigram ratio) of the first `window` tokens of the first window*10 chars."""
    max_chars = window * CHARS_PER_WORD
    chars = 0
    n = 0
    uni = bi = 0
    h = _FNV_OFFSET
    prev = np.uint64(0)
    i = lo
    while n < window:
        end = i >= hi or chars >= max_chars
        c = data[i] if not end else 32
        if end or c == 32 or c == 10:
            if _insert(keys, stamps, stamp, h):
                uni += 1
            if n > 0 and _insert(keys2, stamps2, stamp, prev * _MIX + h):
                bi += 1
            n += 1
            prev = h
            h = _FNV_OFFSET
            if end:
                break
        else:
            if 65 <= c <= 90:
                c += 32
            h = (h ^ np.uint64(c)) * _FNV_PRIME
        if (c & 0xC0) != 0x80:
            chars += 1
        i += 1
    ttr = uni / n
    big = bi / (n - 1) if n > 1 else 0.0
    return ttr, big


def count_rows(offsets: np.ndarray, data: np.ndarray, window: int) -> tuple[np.ndarray, np.ndarray]:
    """Counts (rows x N_COUNTS int32: WORDS ... CODE) and ratios (rows x 3: SPREAD, TTR, BIGRAMS) of every string."""
    return _count_rows(offsets, data, window, _CLASS, _KEYS, _SYMBOLS, _CODE, _CODE_OFF, _STEP, _STEP_OFF)
