"""One-pass counting kernel for the heuristic stage: Arrow string buffers in, count arrays out.

Why: the heuristic scorer needs about a dozen counts per text (words, sentences, syllables, paragraphs,
list and step lines, code markers, sentence-length spread, distinct words and bigrams). As Polars regexes
that is a dozen passes over every byte plus list columns; here it is one pass over the bytes, parallel
over blocks of rows. Word runs go through a tight inner loop; work per word (silent ending, step and
code words: a branch-free test and a one-load filter) and per line is done once at its end, and the
pass records where the diversity tokens end, which are then hashed 8 bytes at a time into sets
cleared per row. The stage combines the counts into scores with Polars expressions.

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


def _word_filter() -> np.ndarray:
    """(first byte & 31) * 32 + (last byte & 31) of an ASCII word -> bit n for each length n of a step
    word or letter-led code marker head with those letters: one load rejects nearly every other word."""
    t = np.zeros(32 * 32, dtype=np.uint16)
    heads = [w for w in STEP_WORDS] + [m[:h] for m, h in zip(CODE_MARKERS, _CODE_HEAD, strict=True) if h]
    for w in heads:
        t[(ord(w[0]) & 31) * 32 + (ord(w[-1]) & 31)] |= 1 << len(w)
    return t


_FILTER = _word_filter()
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


def _letter_bits(letters: str) -> int:
    """Bit (ord(c) & 31) for each letter: a 32-bit set that `(c | 32) & 31` indexes, any case."""
    return sum(1 << (ord(c) & 31) for c in letters)


_KEEP_ED = _letter_bits("td")
_KEEP_ES = _letter_bits("sxzcgh")
_VOWELS = _letter_bits("aeiouy")


@nb.njit(inline="always")
def _silent(data, s, e, k, lo):
    """1 when the ASCII word data[s:e] ends in a silent e / -ed / -es after a consonant run, else 0.

    `k` is the last non-consonant before the ending's e (the run's vowel when there is one). The run must
    follow a vowel. Silent when it ends in a consonant outside the ending's set (e: l; ed: l t d; es: l s
    x z c g h), or is "l" or ends in "ll": "make", "named", "types", "whale" lose a syllable, "table",
    "wanted", "boxes" do not. Branch-free: half of all English words end in e, d or s, so a branch per
    test mispredicts; reads clamp to `lo` and are masked out when out of the word.
    """
    b1 = data[e - 1] | 32
    two = e - 2 >= s
    b2 = data[max(e - 2, lo)] | 32
    is_e = b1 == 101
    is_ed = (b1 == 100) & two & (b2 == 101)
    is_es = (b1 == 115) & two & (b2 == 101)
    p = e - 2 + np.int64(is_e)  # the ending's e
    crun = p - 1 - k
    vowel = (_VOWELS >> (np.int64(data[max(k, lo)]) & 31)) & 1
    ok = (is_e | is_ed | is_es) & (k >= s) & (crun >= 1) & (vowel == 1)
    clast = np.int64(data[max(p - 1, lo)] | 32)
    bit = clast & 31
    ll = (np.int64(data[max(p - 2, lo)]) | 32) == 108
    other = is_e | (is_ed & (((_KEEP_ED >> bit) & 1) == 0)) | (is_es & (((_KEEP_ES >> bit) & 1) == 0))
    l_case = clast == 108
    return np.int64(ok & ((l_case & ((crun == 1) | ll)) | (~l_case & other)))


@nb.njit(inline="always")
def _word_marks(data, s, e, hi, keys, filt, code, code_off, step, step_off):
    """(1 if data[s:e] is a step word, 1 if a code marker opens at it) for the ASCII word data[s:e].

    `filt` (first letter, last letter) -> lengths with a candidate rejects nearly every word with one load.
    """
    n = e - s
    if not (filt[(data[s] & 31) * 32 + (data[e - 1] & 31)] >> min(n, 15)) & 1:
        return 0, 0
    bits = keys[data[s], n]
    if (bits & 0xFFFF) and _is_step_word(data, s, e, bits & 0xFFFF, step, step_off):
        return 1, 0
    if (bits >> 16) and _code_at(data, s, hi, bits >> 16, code, code_off):
        return 0, 1
    return 0, 0


@nb.njit(inline="always")
def _char_limit(data, lo, hi, max_chars):
    """The byte index after the `max_chars`-th UTF-8 character of data[lo:hi] (hi when there are fewer)."""
    if hi - lo <= max_chars:
        return hi
    end = lo + max_chars  # ASCII fast path: every byte a character, confirmed by a vectorisable count
    cont = 0
    for i in range(lo, end):
        cont += (data[i] & 0xC0) == 0x80
    if cont == 0:
        return end
    chars = 0
    for i in range(lo, hi):
        chars += (data[i] & 0xC0) != 0x80
        if chars >= max_chars:
            return i + 1
    return hi


@nb.njit(inline="always")
def _count_text(data, lo, hi, window, cls, keys, filt, symbols, code, code_off, step, step_off, counts, ends):
    """Fill counts[:] for data[lo:hi] and ends[:n] with the diversity tokens' ends; return (spread, n).

    Word runs go through a tight inner loop (a few operations per letter); everything per word (silent
    ending, step and code words) and per line is done once at its end.
    """
    words = sentences = syllables = vowelless = breaks = items = steps = 0
    has_code = 0
    tok_word = tok_vowel = 0  # the current whitespace token has a word character / a vowel
    seg_words = 0  # words in the current sentence segment
    seg_tok = 0  # the current token has been counted in the segment
    last_nl = -1
    last_solid = -1  # the last byte that is not a blank, tab or newline
    in_break = False
    last_bound = lo
    n_span = 0
    s1 = s2 = 0.0
    limit = _char_limit(data, lo, hi, window * CHARS_PER_WORD)  # diversity tokens end before it
    n_tok = 0
    item, st = _line_start(data, lo, hi, cls)
    items += item
    steps += st
    i = lo
    # data[np.uint64(i)]: an unsigned index compiles without numba's negative-index wraparound test,
    # which costs ~3% in this loop (one per byte)
    while i < hi:
        c = data[np.uint64(i)]
        f = cls[c]
        if f & AWORD:
            s = i
            prev_v = 0
            ln0 = ln1 = s - 1  # the last two non-consonants: the silent-ending test's vowel
            while True:
                v = (f >> 2) & 1
                syllables += v & (prev_v ^ 1)
                prev_v = v
                tok_vowel |= v
                if not (f & CONSONANT):
                    ln0 = ln1
                    ln1 = i
                i += 1
                if i >= hi:
                    break
                f = cls[data[np.uint64(i)]]
                if not (f & AWORD):
                    break
            tok_word = 1
            seg_words += 1 - seg_tok
            seg_tok = 1
            last_solid = i - 1
            syllables -= _silent(data, s, i, ln0, lo)
            is_step, is_code = _word_marks(data, s, i, hi, keys, filt, code, code_off, step, step_off)
            steps += is_step
            has_code |= is_code
            continue
        if f & SPACE:
            words += tok_word
            vowelless += tok_word & (tok_vowel ^ 1)
            tok_word = tok_vowel = 0
            seg_tok = 0
            if (c == 32 or c == 10) and i < limit and n_tok < window:
                ends[n_tok] = i
                n_tok += 1
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
            i += 1
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
            has_code = 1
        i += 1
    # the end of the text closes the last token, segment, span and diversity token
    words += tok_word
    vowelless += tok_word & (tok_vowel ^ 1)
    if seg_words >= 3:
        sentences += 1
    span = hi - last_bound
    if span >= SPAN_MIN_BYTES:
        n_span += 1
        s1 += span
        s2 += span * span
    if n_tok < window:
        ends[n_tok] = limit
        n_tok += 1
    counts[WORDS] = words
    counts[SENTENCES] = sentences
    counts[SYLLABLES] = syllables + vowelless
    counts[VOWELLESS] = vowelless
    counts[BREAKS] = breaks
    counts[LIST_ITEMS] = items
    counts[STEPS] = steps
    counts[CODE] = has_code
    if n_span < 2:
        return 0.0, n_tok
    mean = s1 / n_span
    var = max(s2 - n_span * mean * mean, 0.0) / (n_span - 1)
    return np.sqrt(var) / mean, n_tok


_ONES = np.uint64(0x0101010101010101)
_HIGH = np.uint64(0x8080808080808080)
_MUL = np.uint64(0x9E3779B97F4A7C15)
_MUL2 = np.uint64(0xC2B2AE3D27D4EB4F)


@nb.njit(inline="always")
def _chunk(data, i, n):
    """Up to 8 bytes data[i:i+n] (n <= 8) as a little-endian uint64, ASCII upper case folded to lower.

    SWAR: a byte is upper case when it is ASCII and in 'A'..'Z'; adding 32 is OR-ing bit 5.
    """
    x = np.uint64(0)
    j = np.uint64(i)
    if i + 8 <= data.shape[0]:  # a fixed-length loop LLVM fuses into one load, then mask to n bytes
        for k in range(8):
            x |= np.uint64(data[j + np.uint64(k)]) << np.uint64(8 * k)
        x &= np.uint64(0xFFFFFFFFFFFFFFFF) >> np.uint64(64 - 8 * n)
    else:
        for k in range(n):
            x |= np.uint64(data[j + np.uint64(k)]) << np.uint64(8 * k)
    low7 = x & ~_HIGH
    ge_a = low7 + np.uint64(0x80 - 65) * _ONES  # high bit set where byte >= 'A'
    gt_z = low7 + np.uint64(0x7F - 90) * _ONES  # high bit set where byte > 'Z'
    upper = ge_a & ~gt_z & ~x & _HIGH
    return x | (upper >> np.uint64(2))


@nb.njit(inline="always")
def _token_hash(data, s, e):
    """64-bit hash of the lower-cased token data[s:e], 8 bytes at a time (never 0: 0 marks a free slot)."""
    h = np.uint64(e - s) * _MUL2
    i = s
    while i < e:
        n = min(8, e - i)
        h = (h ^ _chunk(data, i, n)) * _MUL
        h ^= h >> np.uint64(29)
        i += 8
    h = (h ^ (h >> np.uint64(32))) * _MUL2
    h ^= h >> np.uint64(29)
    return h | np.uint64(1)


@nb.njit(inline="always")
def _insert(table, mask, h):
    """Add h to an open-addressing set in table[:mask + 1] (0 = free); 1 when it was new."""
    slot = (h >> np.uint64(40)) & mask
    k = table[slot]
    while k != 0 and k != h:  # at most a quarter full: nearly always one probe, so this predicts well
        slot = (slot + np.uint64(1)) & mask
        k = table[slot]
    table[slot] = h  # no branch on "new": whether a word repeats is what the predictor cannot guess
    return np.int64(k == 0)


@nb.njit(inline="always")
def _diversity(data, lo, ends, n, uni, bi):
    """(type/token ratio, distinct-bigram ratio) of the n tokens that end at ends[:n] (the first starts at lo)."""
    size = 8
    while size < 4 * n:  # a quarter full at most; only this prefix is cleared, so short texts stay cheap
        size *= 2
    uni[:size] = 0
    bi[:size] = 0
    mask = np.uint64(size - 1)
    distinct = pairs = 0
    prev = np.uint64(0)
    s = lo
    for t in range(n):
        h = _token_hash(data, s, ends[t])
        distinct += _insert(uni, mask, h)
        if t > 0:
            pairs += _insert(bi, mask, (prev * _MUL + h) | np.uint64(1))
        prev = h
        s = ends[t] + 1
    return distinct / n, pairs / (n - 1) if n > 1 else 0.0


@nb.njit(parallel=True, cache=True)
def _count_rows(offsets, data, window, cls, word_keys, filt, symbols, code, code_off, step, step_off):
    n = offsets.shape[0] - 1
    counts = np.zeros((n, N_COUNTS), dtype=np.int32)
    ratios = np.zeros((n, 3), dtype=np.float64)
    block = 512
    n_blocks = (n + block - 1) // block
    size = 1
    while size < 4 * window:
        size *= 2
    for b in nb.prange(n_blocks):
        ends = np.empty(window + 1, dtype=np.int64)
        uni = np.empty(size, dtype=np.uint64)  # sets of token and bigram hashes, cleared per row
        bi = np.empty(size, dtype=np.uint64)
        # Block b takes every n_blocks-th row: prange hands each thread a contiguous run of blocks, and
        # contiguous rows can differ in cost by orders of magnitude (the stage concatenates responses,
        # prompts and mostly empty rejected texts), so strided rows keep the threads' shares equal.
        for r in range(b, n, n_blocks):
            lo, hi = offsets[r], offsets[r + 1]
            spread, n_tok = _count_text(
                data, lo, hi, window, cls, word_keys, filt, symbols, code, code_off, step, step_off, counts[r], ends
            )
            ratios[r, SPREAD] = spread
            ttr, big = _diversity(data, lo, ends, n_tok, uni, bi)
            ratios[r, TTR] = ttr
            ratios[r, BIGRAMS] = big
    return counts, ratios


def count_rows(offsets: np.ndarray, data: np.ndarray, window: int) -> tuple[np.ndarray, np.ndarray]:
    """Counts (rows x N_COUNTS int32: WORDS ... CODE) and ratios (rows x 3: SPREAD, TTR, BIGRAMS) of every string."""
    return _count_rows(offsets, data, window, _CLASS, _KEYS, _FILTER, _SYMBOLS, _CODE, _CODE_OFF, _STEP, _STEP_OFF)
