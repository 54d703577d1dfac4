"""Numba kernels for MinHash/LSH near-dedup: arrays in, arrays out, no Polars, no I/O.

Signatures follow datasketch 2.x's `affine32` scheme bit for bit, so datasketch is the test oracle
(given the same shingle hash function): every shingle is hashed to 32 bits, pre-mixed with the
MurmurHash3 32-bit finaliser, and permuted by `a*h + b mod 2^32` with odd `a`; `a` and `b` are drawn
from `np.random.RandomState(seed)` exactly as datasketch draws them. The whole path from the Arrow
string buffers to the signature matrix runs here, parallel over rows: tokenising and shingling in
Python is what bounds every Python-level MinHash pipeline.

Shingles (over the normalised text, tokens separated by single spaces):
- words: `ngram` consecutive tokens w_1..w_m, hashed as the low 32 bits of
  mix64(sum_j word_hash(w_j) * P^(m-j) mod 2^64) (`_word_shingles`: one hash per word, rolled;
  `_word_hash`: mix64 chained over the word's 8-byte chunks);
- chars: `ngram` consecutive code points, hashed as the low 32 bits of xxh64 of their UTF-8 bytes.
A text with fewer than `ngram` units is one shingle (itself), so short texts still match; an empty
text has no shingles and keeps the all-`0xFFFFFFFF` signature of an empty datasketch MinHash.
"""

from __future__ import annotations

import numba as nb
import numpy as np

from engine.stages.bit_kernels import ONE, byte_class_masks, low_bits, trailing_zeros
from engine.stages.hash_kernels import load64, xxh64_span
from engine.stages.numba_registries import quick_load
from engine.stages.text_kernels import key_source, normalize_span, space_len

EMPTY = np.uint32(0xFFFFFFFF)
_M32 = np.uint64(0xFFFFFFFF)
_SPACE = byte_class_masks((frozenset({32}),))
# raw text: the ASCII bytes `\s` matches, and the lead bytes of the other Unicode White_Space characters
_RAW_SPACE = byte_class_masks((frozenset({9, 10, 11, 12, 13, 32}), frozenset({0xC2, 0xE1, 0xE2, 0xE3})))


def permutations(num_perm: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The (a, b) parameters of datasketch's affine32 scheme for `num_perm` and `seed`."""
    gen = np.random.RandomState(seed)
    a = gen.randint(0, 1 << 31, num_perm, dtype=np.uint32) * np.uint32(2) + np.uint32(1)
    b = gen.randint(0, 1 << 32, num_perm, dtype=np.uint32)
    return a, b


@nb.njit(inline="always")
def _fmix32(h):
    h = h ^ (h >> np.uint64(16))
    h = (h * np.uint64(0x85EBCA6B)) & _M32
    h = h ^ (h >> np.uint64(13))
    h = (h * np.uint64(0xC2B2AE35)) & _M32
    return h ^ (h >> np.uint64(16))


@nb.njit(inline="always")
def _fold(sig, hashes, n, a, b):
    """Fold n 32-bit shingle hashes into a signature row, eight at a time.

    Each pass over the row loads `a`, `b` and the row once for eight shingles instead of once per shingle;
    the loop over k vectorises. (128 permutations now cost ~10% of the kernel: 0.03 s of 0.3 s on one
    thread for 100K rows.) A short last group repeats its last hash: a minimum does not change for a
    value it has already taken. uint32 a, b and h: LLVM keeps the product in 32 bits (vpmulld, 16 lanes
    per AVX-512 register); the low 32 bits are the same as in 64.
    """
    last = n - 1
    for t in range(0, n, 8):
        h0 = np.uint32(_fmix32(hashes[t]))
        h1 = np.uint32(_fmix32(hashes[min(t + 1, last)]))
        h2 = np.uint32(_fmix32(hashes[min(t + 2, last)]))
        h3 = np.uint32(_fmix32(hashes[min(t + 3, last)]))
        h4 = np.uint32(_fmix32(hashes[min(t + 4, last)]))
        h5 = np.uint32(_fmix32(hashes[min(t + 5, last)]))
        h6 = np.uint32(_fmix32(hashes[min(t + 6, last)]))
        h7 = np.uint32(_fmix32(hashes[min(t + 7, last)]))
        for k in range(sig.shape[0]):
            ak, bk = a[k], b[k]
            v0 = min(np.uint32(ak * h0 + bk), np.uint32(ak * h1 + bk))
            v1 = min(np.uint32(ak * h2 + bk), np.uint32(ak * h3 + bk))
            v2 = min(np.uint32(ak * h4 + bk), np.uint32(ak * h5 + bk))
            v3 = min(np.uint32(ak * h6 + bk), np.uint32(ak * h7 + bk))
            sig[k] = min(sig[k], min(min(v0, v1), min(v2, v3)))


@nb.njit(inline="always")
def _shingle_hash(data, start, end, seed):
    """A code-point n-gram's hash: the low 32 bits of xxh64 of its bytes."""
    return xxh64_span(data, start, end, seed) & _M32


@nb.njit(inline="always")
def _emit(h, out_hashes, n_out):
    """Record one 32-bit shingle hash."""
    out_hashes[n_out] = h
    return n_out + 1


_P = np.uint64(0x9E3779B185EBCA87)
"""The base of the polynomial that combines a word n-gram's word hashes (odd: a unit mod 2^64)."""


_LOW7 = np.uint64(0x7F7F7F7F7F7F7F7F)
_HIGH1 = np.uint64(0x8080808080808080)
_TO_A = np.uint64(0x3F3F3F3F3F3F3F3F)  # 0x80 - ord("A"): a byte's top bit is set from "A" up
_PAST_Z = np.uint64(0x2525252525252525)  # 0x80 - ord("Z") - 1: ... and from the byte after "Z" up


@nb.njit(inline="always")
def _lower8(x):
    """Eight bytes with ASCII capitals in lower case, other bytes unchanged (no carry crosses a byte:
    each sum is at most 0x7F + 0x3F)."""
    low = x & _LOW7
    capital = (low + _TO_A) & ~(low + _PAST_Z) & ~x & _HIGH1
    return x | (capital >> np.uint64(2))  # 0x80 >> 2 == 0x20, the case bit


@nb.njit(inline="always")
def _chunk(data, i, lower):
    v = load64(data, i)
    return _lower8(v) if lower else v


@nb.njit(inline="always")
def _word_hash(data, start, end, seed, lower):
    """A word's 64-bit hash: mix64 chained over its 8-byte little-endian chunks (the last zero-padded),
    starting from seed ^ (length * P); with `lower`, of the word with ASCII capitals in lower case.

    Why not xxh64: a word is ~5 bytes, and xxh64's branches on the length (8-, 4- and 1-byte steps)
    mispredict about once per word; here a word of up to 8 bytes is one load, one mask and one mix64.
    Reads up to 7 bytes past `end` (the kernels' scratch has the slack).
    """
    acc = seed ^ (np.uint64(end - start) * _P)
    i = start
    while end - i > 8:
        acc = _mix64(acc ^ _chunk(data, i, lower))
        i += 8
    return _mix64(acc ^ (_chunk(data, i, lower) & low_bits(8 * (end - i))))


@nb.njit(inline="always")
def _push_word(u, acc, n_tok, slot, top, ngram, ring, out_hashes, n_out):
    """Roll word hash `u` into the n-gram sum; emit the shingle once `ngram` words are in.

    `slot` (the ring position of the word `ngram` back) wraps by a compare, not `n_tok % ngram`: a
    division by a run-time `ngram` per word was a sixth of the shingling time (0.02 of 0.12 s, one thread).
    """
    if n_tok >= ngram:
        acc = acc - ring[slot] * top
    acc = acc * _P + u
    ring[slot] = u
    slot += 1
    if slot == ngram:
        slot = 0
    n_tok += 1
    if n_tok >= ngram:
        n_out = _emit(_mix64(acc) & _M32, out_hashes, n_out)
    return acc, n_tok, slot, n_out


@nb.njit(inline="always")
def _word_shingles(data, lo, hi, ngram, seed, ring, out_hashes, n_out, raw, lower):
    """Record the hash of every word n-gram of data[lo:hi] into out_hashes from n_out; return the new count.

    A shingle of words w_1..w_m hashes to the low 32 bits of mix64(sum of word_hash(w_j) * P^(m-j) mod 2^64):
    each word is hashed once and the sum rolls from one shingle to the next, where hashing every
    shingle's joined bytes read each byte `ngram` times. Words are the runs between spaces, found from
    64-byte space masks (a byte loop cost as much as the hashing), so `data` must be readable for 64
    bytes past `hi`. `ring` (uint64) holds the last `ngram` word hashes.

    `raw`: data[lo:hi] is text before `normalize_span` (default options: whitespace collapsed,
    punctuation kept), and the result is that of its normalised text, which is never written: words
    are the runs between ASCII whitespace bytes, lower-cased as they are hashed when `lower`. Returns
    -1 for a text with other Unicode whitespace (rare; the caller normalises it first).
    """
    top = np.uint64(1)
    for _ in range(ngram - 1):
        top = top * _P
    acc = np.uint64(0)
    n_tok = 0
    slot = 0
    start = lo
    base = lo
    while base < hi:
        if raw:
            sp, lead = _RAW_SPACE(data, base)
            lead &= low_bits(hi - base)
            while lead:  # a byte that may start a multi-byte space
                if space_len(data, base + trailing_zeros(lead), hi):
                    return -1
                lead &= lead - ONE
        else:
            (sp,) = _SPACE(data, base)
        sp &= low_bits(hi - base)
        while sp:
            p = base + trailing_zeros(sp)
            sp &= sp - ONE
            if p > start:
                u = _word_hash(data, start, p, seed, lower)
                acc, n_tok, slot, n_out = _push_word(u, acc, n_tok, slot, top, ngram, ring, out_hashes, n_out)
            start = p + 1
        base += 64
    if hi > start:
        u = _word_hash(data, start, hi, seed, lower)
        acc, n_tok, slot, n_out = _push_word(u, acc, n_tok, slot, top, ngram, ring, out_hashes, n_out)
    if 0 < n_tok < ngram:
        n_out = _emit(_mix64(acc) & _M32, out_hashes, n_out)
    return n_out


@nb.njit(inline="always")
def _char_shingles(data, lo, hi, ngram, seed, out_hashes, n_out):
    """Record the hash of every window of `ngram` code points of data[lo:hi] (UTF-8: skip continuation bytes)."""
    # `ring` holds the byte offsets of the last ngram code-point starts.
    ring = np.empty(ngram, dtype=np.int64)
    count = 0
    i = lo
    while i <= hi:
        if i == hi or (data[i] & 0xC0) != 0x80:
            if count >= ngram:
                h = _shingle_hash(data, ring[count % ngram], i, seed)
                n_out = _emit(h, out_hashes, n_out)
            if i < hi:
                ring[count % ngram] = i
                count += 1
        i += 1
    if 0 < count < ngram:
        h = _shingle_hash(data, lo, hi, seed)
        n_out = _emit(h, out_hashes, n_out)
    return n_out


_BLOCK = 256
"""Rows per task of the key kernels (each task reuses one scratch buffer for its rows' normalised text)."""


@nb.njit(inline="always")
def _room(size, chars):
    """The most shingles a normalised text of `size` bytes has: a code point per byte, or a word per two
    bytes (counting its space); one more for the short-text shingle."""
    return (size if chars else (size + 1) // 2) + 1


@nb.njit(inline="always")
def _normalised(keys, r, scratch):
    """Row r's normalised key in scratch (grown when too small): (scratch, length)."""
    src, lo, hi = key_source(keys, r)
    if scratch.shape[0] < hi - lo + 64:  # 64 bytes of slack: `_word_shingles` reads whole blocks
        scratch = np.empty(2 * (hi - lo) + 64, dtype=np.uint8)
    return scratch, normalize_span(src, lo, hi, scratch, keys[8], keys[9], keys[10])


@nb.njit(inline="always")
def _shingles(keys, r, scratch, chars, ngram, seed, ring, out):
    """Record the shingle hashes of row r's normalised key into `out` (room for `_room` of its raw
    length); return (scratch, how many).

    Word shingles under the default normalisation come straight from the raw bytes (`_word_shingles`
    with `raw`): writing the normalised text first cost a third of the kernel. Other options, char
    shingles, a row near the end of its buffer (64 bytes are read past its end) or one with Unicode
    whitespace are normalised into `scratch` (grown when too small) first.
    """
    src, lo, hi = key_source(keys, r)
    if not chars and keys[10] and not keys[9] and hi + 64 <= src.shape[0]:
        k = _word_shingles(src, lo, hi, ngram, seed, ring, out, 0, True, keys[8])
        if k >= 0:
            return scratch, k
    scratch, m = _normalised(keys, r, scratch)
    if chars:
        return scratch, _char_shingles(scratch, 0, m, ngram, seed, out, 0)
    return scratch, _word_shingles(scratch, 0, m, ngram, seed, ring, out, 0, False, False)


@nb.njit(inline="always")
def _hash_bands(sig, rows, out):
    """`out[j]`: the hash of signature values j * rows .. (j + 1) * rows - 1, seeded by the band index."""
    for j in range(out.shape[0]):
        h = np.uint64(j + 1) * np.uint64(0x9E3779B97F4A7C15)
        for k in range(j * rows, (j + 1) * rows):
            h = _mix64(h ^ np.uint64(sig[k]))
        out[j] = h


def minhash_keys(keys, ngram, chars, seed, a, b, bands, rows):
    """Signature matrix (rows x num_perm, uint32) of every row's normalised key (`KeyRows.args`), its LSH
    band hashes (rows x bands, uint64, as `band_hashes`; hashed while the signature is in cache), and
    each row's shingle count (uint32).

    The outputs are allocated here by numpy, which asks Linux for huge pages for large arrays; numba's
    allocator does not, and first touching 100K rows' 51 MB of signatures 4 KiB page by page cost
    0.03 s against numpy's 0.007 s (measured on 2 cores). `minhash_into` fills them.
    """
    n = keys[3].shape[0]
    out = np.empty((n, a.shape[0]), dtype=np.uint32)
    banded = np.empty((n, bands), dtype=np.uint64)
    shingles = np.empty(n, dtype=np.uint32)
    minhash_into(keys, ngram, chars, seed, a, b, rows, out, banded, shingles)
    return out, banded, shingles


@nb.njit(parallel=True, cache=True, nogil=True)
def minhash_into(keys, ngram, chars, seed, a, b, rows, out, banded, shingles):
    """`minhash_keys`' kernel: fills `out`, `banded` and `shingles` (every row is written)."""
    n = keys[3].shape[0]
    a32 = a.astype(np.uint32)
    b32 = b.astype(np.uint32)
    n_blocks = (n + _BLOCK - 1) // _BLOCK
    for blk in nb.prange(n_blocks):
        scratch = np.empty(4096, dtype=np.uint8)
        hashes = np.empty(4096, dtype=np.uint32)
        ring = np.empty(ngram, np.uint64)
        for r in range(blk, n, n_blocks):  # strided: neighbouring rows can differ much in length
            _, lo, hi = key_source(keys, r)
            if hashes.shape[0] < _room(hi - lo, chars):
                hashes = np.empty(2 * _room(hi - lo, chars), dtype=np.uint32)
            scratch, k = _shingles(keys, r, scratch, chars, ngram, seed, ring, hashes)
            out[r, :] = EMPTY
            _fold(out[r], hashes, k, a32, b32)
            _hash_bands(out[r], rows, banded[r])
            shingles[r] = k


@nb.njit(inline="always")
def _radix_sort(a, spare, counts):
    """Sort uint32 `a` in place: four 8-bit counting passes through `spare` (at least as long as `a`).

    A row's ~100 shingle hashes sort 4x faster this way than with numba's quicksort (measured on 16.8K
    rows: 0.013 vs 0.051 s on one thread), whose comparisons of random hashes mispredict half the time.
    """
    n = a.shape[0]
    src, dst = a, spare[:n]
    for p in range(4):
        shift = np.uint32(8 * p)
        counts[:] = 0
        for x in src:
            counts[(x >> shift) & np.uint32(255)] += 1
        total = 0
        for d in range(256):
            c = counts[d]
            counts[d] = total
            total += c
        for x in src:
            d = (x >> shift) & np.uint32(255)
            dst[counts[d]] = x
            counts[d] += 1
        src, dst = dst, src  # after an even number of passes the result is back in `a`


@nb.njit(parallel=True, cache=True, nogil=True)
def shingle_sets(keys, ngram, chars, seed):
    """Sorted distinct 32-bit shingle hashes of every row's normalised key: (flat uint32, starts, counts);
    row r is flat[starts[r]:][:counts[r]].

    Rows get room for their largest possible shingle count (`_room`), so no second pass is needed.
    """
    n = keys[3].shape[0]
    starts = np.empty(n + 1, dtype=np.int64)
    starts[0] = 0
    for r in range(n):
        _, lo, hi = key_source(keys, r)
        starts[r + 1] = starts[r] + _room(hi - lo, chars)
    flat = np.empty(starts[n], dtype=np.uint32)
    counts = np.zeros(n, dtype=np.int64)
    n_blocks = (n + _BLOCK - 1) // _BLOCK
    for blk in nb.prange(n_blocks):
        scratch = np.empty(4096, dtype=np.uint8)
        ring = np.empty(ngram, np.uint64)
        spare = np.empty(2048, dtype=np.uint32)
        counts256 = np.empty(256, dtype=np.int64)
        for r in range(blk, n, n_blocks):  # strided: neighbouring rows can differ much in length
            room = flat[starts[r] : starts[r + 1]]
            scratch, k = _shingles(keys, r, scratch, chars, ngram, seed, ring, room)
            if spare.shape[0] < k:
                spare = np.empty(2 * k, dtype=np.uint32)
            _radix_sort(room[:k], spare, counts256)
            u = 0
            for x in range(k):
                if u == 0 or room[x] != room[u - 1]:
                    room[u] = room[x]
                    u += 1
            counts[r] = u
    return flat, starts[:n], counts


@nb.njit(inline="always")
def _set_jaccard(flat, sa, na, sb, nb_):
    """Exact Jaccard of two sorted distinct runs of flat (two empty sets are identical)."""
    if na == 0 and nb_ == 0:
        return 1.0
    i = j = inter = 0
    while i < na and j < nb_:
        x, y = flat[sa + i], flat[sb + j]
        if x == y:
            inter += 1
            i += 1
            j += 1
        elif x < y:
            i += 1
        else:
            j += 1
    return inter / (na + nb_ - inter)


@nb.njit(inline="always")
def _mix64(h):
    h = h ^ (h >> np.uint64(33))
    h = h * np.uint64(0xFF51AFD7ED558CCD)
    h = h ^ (h >> np.uint64(33))
    h = h * np.uint64(0xC4CEB9FE1A85EC53)
    return h ^ (h >> np.uint64(33))


@nb.njit(parallel=True, cache=True)
def band_hashes(sigs, bands, rows):
    """One 64-bit hash per (row, band) of the band's `rows` signature values.

    Equal bands hash equal; unequal bands collide with probability ~2^-64, so grouping by this hash
    gives the buckets of an LSH index keyed by the band values themselves.
    """
    n = sigs.shape[0]
    out = np.empty((n, bands), dtype=np.uint64)
    for i in nb.prange(n):
        _hash_bands(sigs[i], rows, out[i])
    return out


_PART_VALUES = 16384
"""Values per part of `repeated_groups` (a part's hash table, 32K slots, stays in the core's L2 cache)."""


@nb.njit(inline="always")
def _part_of(v, bits):
    return np.int64(v >> np.uint64(64 - bits)) if bits else np.int64(0)


@nb.njit(parallel=True, cache=True, nogil=True)
def repeated_groups(flat, ords):
    """LSH buckets of two or more: the values of `flat` (uniform 64-bit band hashes) that occur more
    than once, each as the run of its members' `ords` (uint32, ords[i] belongs to flat[i]): (members
    int64, run starts + end). Runs and members come in no particular order.

    Why not sort: sorting 11.5M band hashes (674K rows x 17 bands) to find equal ones cost more than
    half of near_dedup's global step. Here the values are split by their top bits into parts of ~16K
    (a counting pass and a scatter, parallel over chunks), and each part finds its repeats in a hash
    table that fits in cache (parallel over parts); a last pass packs the parts' runs together.
    """
    n = flat.shape[0]
    bits = 0
    while (n >> bits) > _PART_VALUES and bits < 20:
        bits += 1
    parts = 1 << bits
    n_chunks = max(1, min(64, n // 65536))
    hist = np.zeros((n_chunks, parts), dtype=np.int64)
    for c in nb.prange(n_chunks):
        for i in range(c * n // n_chunks, (c + 1) * n // n_chunks):
            hist[c, _part_of(flat[i], bits)] += 1
    part_start = np.empty(parts + 1, dtype=np.int64)
    total = 0
    for p in range(parts):
        part_start[p] = total
        for c in range(n_chunks):
            at = hist[c, p]
            hist[c, p] = total  # now where chunk c writes its values of part p
            total += at
    part_start[parts] = total
    vals = np.empty(n, dtype=np.uint64)
    owner = np.empty(n, dtype=np.uint32)
    for c in nb.prange(n_chunks):
        for i in range(c * n // n_chunks, (c + 1) * n // n_chunks):
            p = _part_of(flat[i], bits)
            k = hist[c, p]
            vals[k] = flat[i]
            owner[k] = ords[i]
            hist[c, p] = k + 1
    # each part: count every value in a hash table, then write the repeated ones' members run by run
    # into the part's own span of `spread` (run starts into `spread_starts`, at most one per two values)
    spread = np.empty(n, dtype=np.uint32)
    spread_starts = np.empty(n, dtype=np.int32)
    n_members = np.zeros(parts, dtype=np.int64)
    n_runs = np.zeros(parts, dtype=np.int64)
    for p in nb.prange(parts):
        lo, hi = part_start[p], part_start[p + 1]
        cap = 16
        while cap < 2 * (hi - lo):
            cap *= 2
        mask = np.uint64(cap - 1)
        slot_of = np.full(cap, -1, dtype=np.int64)  # a slot's first value (an index into vals)
        count = np.zeros(cap, dtype=np.int64)
        where = np.empty(hi - lo, dtype=np.int64)  # each value's slot
        for k in range(lo, hi):
            h = vals[k] & mask
            while slot_of[h] >= 0 and vals[slot_of[h]] != vals[k]:
                h = (h + np.uint64(1)) & mask
            if slot_of[h] < 0:
                slot_of[h] = k
            count[h] += 1
            where[k - lo] = h
        m = np.int32(0)
        g = 0
        for h in range(cap):  # a run per repeated value: `count` becomes where its next member goes
            c = count[h]
            if c >= 2:
                spread_starts[lo + g] = m
                g += 1
                count[h] = m
                m += np.int32(c)
            else:
                count[h] = -1
        for k in range(lo, hi):
            h = where[k - lo]
            at = count[h]
            if at >= 0:
                spread[lo + at] = owner[k]
                count[h] = at + 1
        n_members[p] = m
        n_runs[p] = g
    member_at = np.empty(parts + 1, dtype=np.int64)
    run_at = np.empty(parts + 1, dtype=np.int64)
    member_at[0] = run_at[0] = 0
    for p in range(parts):
        member_at[p + 1] = member_at[p] + n_members[p]
        run_at[p + 1] = run_at[p] + n_runs[p]
    members = np.empty(member_at[parts], dtype=np.int64)
    starts = np.empty(run_at[parts] + 1, dtype=np.int64)
    for p in nb.prange(parts):
        lo = part_start[p]
        members[member_at[p] : member_at[p + 1]] = spread[lo : lo + n_members[p]]
        for g in range(n_runs[p]):
            starts[run_at[p] + g] = member_at[p] + spread_starts[lo + g]
    starts[run_at[parts]] = member_at[parts]
    return members, starts


@nb.njit(inline="always")
def find_root(parent, x):
    """Root of x in a union-find forest, with path halving (shared with the semantic kernels)."""
    while parent[x] != x:
        parent[x] = parent[parent[x]]
        x = parent[x]
    return x


VERIFY_NONE, VERIFY_ESTIMATE, VERIFY_EXACT = 0, 1, 2


@nb.njit(cache=True)
def cluster_buckets(members, bucket_starts, threshold, mode, sigs, flat, set_starts, set_counts):
    """Connected components over LSH buckets, by union-find with path halving.

    `members` lists row indices bucket after bucket; `bucket_starts` has one entry per bucket plus a
    final end. Within a bucket every pair not already joined is compared, and joined when its Jaccard is
    >= threshold: estimated from `sigs` (VERIFY_ESTIMATE), exact from the shingle sets (VERIFY_EXACT),
    or not checked at all (VERIFY_NONE). Returns (parent, pairs_checked): parent[i] is the smallest row
    index of i's component.
    """
    n = set_counts.shape[0] if mode == VERIFY_EXACT else sigs.shape[0]
    parent = np.arange(n, dtype=np.int64)
    num_perm = sigs.shape[1]
    need = np.int64(np.ceil(threshold * num_perm - 1e-9))
    checked = 0
    for g in range(bucket_starts.shape[0] - 1):
        lo, hi = bucket_starts[g], bucket_starts[g + 1]
        for x in range(lo + 1, hi):
            u = members[x]
            for y in range(lo, x):
                v = members[y]
                ru, rv = find_root(parent, u), find_root(parent, v)
                if ru == rv:
                    continue
                ok = True
                if mode == VERIFY_ESTIMATE:
                    checked += 1
                    same = 0
                    for k in range(num_perm):
                        if sigs[u, k] == sigs[v, k]:
                            same += 1
                    ok = same >= need
                elif mode == VERIFY_EXACT:
                    checked += 1
                    jac = _set_jaccard(flat, set_starts[u], set_counts[u], set_starts[v], set_counts[v])
                    ok = jac >= threshold - 1e-12
                if ok:
                    if ru < rv:
                        parent[rv] = ru
                    else:
                        parent[ru] = rv
    for i in range(n):
        parent[i] = find_root(parent, i)
    return parent, checked


@nb.njit(cache=True)
def union_pairs(a, b, n):
    """Components of n nodes joined by the edges a[i]-b[i]: parent[i] is the smallest node of i's component."""
    parent = np.arange(n, dtype=np.int64)
    for i in range(a.shape[0]):
        ru, rv = find_root(parent, a[i]), find_root(parent, b[i])
        if ru < rv:
            parent[rv] = ru
        elif rv < ru:
            parent[ru] = rv
    for i in range(n):
        parent[i] = find_root(parent, i)
    return parent


quick_load(globals())  # cached kernels load without numba's registries (engine.stages.numba_registries)
