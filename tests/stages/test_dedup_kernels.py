"""MinHash/LSH kernels against their oracles: datasketch 2.x signatures, parameters and LSH candidates."""

from __future__ import annotations

import itertools
import json
import random
from itertools import pairwise

import numpy as np
import polars as pl
import pytest
import xxhash
from datasketch import MinHash, MinHashLSH

from engine.stages.dedup_kernels import (
    VERIFY_ESTIMATE,
    VERIFY_EXACT,
    VERIFY_NONE,
    band_hashes,
    cluster_buckets,
    minhash_keys,
    permutations,
    shingle_sets,
)
from engine.stages.dedup_text import KeyRows, TextKeyConfig, key_rows, key_text_reference
from engine.stages.minhash import MinhashConfig, sketch
from engine.stages.near_dedup import BAND_SCHEMA, buckets
from tests.conftest import DATA

# Rows the kernels shingle from their raw bytes (`_word_shingles` with `raw`): first in RAW, so that 64
# bytes follow them in the buffer. Capitals and the bytes next to "A" and "Z" at every chunk offset;
# ASCII whitespace runs; bytes that may start a Unicode space (the row is then normalised first).
EDGE = [
    "@AZ[ `az{ ABCDEFGHIJKLMNOPQRSTUVWXYZ @@@[[[```{{{ MiXeD CaSe WoRdS LongerThanEightBytesInOneWord",
    "Tab\tSeparated\nLines\r\nAnd  Double  Spaces\x0bvertical\x0cfeed and more words",
    "\x7f control \x01 bytes stay inside WORDS ~ tilde _under_ 9Z0 Z9A A@Z",
    "“Curly quotes” — em dash … ellipsis ÀÉÎ Ünïcödé words after them",
    "non\u00a0breaking space and\u3000ideographic and\u2028line sep and\u0085next line words here",
    " \t leading and trailing whitespace \n ",
]


def _raw() -> list[str]:
    alpaca = json.loads((DATA / "alpaca_en_demo.json").read_text())
    raw = EDGE + [f"{r['instruction']}\n{r['input']}\n{r['output']}" for r in alpaca]
    raw += [json.loads(line)["text"] for line in (DATA / "c4_demo.jsonl").read_text().splitlines()[:200]]
    raw += ["", "Short one", "x"]  # no shingles; fewer tokens than ngram; a single character
    raw += ["Ｆｕｌｌ Ｗｉｄｔｈ … ΟΔΟΣ  Café\u00a0NAÏVE “quoted” 中文 e\u0301 ﬁne", "  Lead and trail \t\n "]
    return raw


def _normalised(raw: list[str]) -> list[str]:
    """The reference normalisation (Polars NFKC, lower case, single spaces): the oracle's input."""
    frame = pl.DataFrame({"text": raw, "kind": "text"})
    return frame.select(key_text_reference(TextKeyConfig(fields=("text",)))).to_series().to_list()


def _keys(texts: list[str]) -> KeyRows:
    """The kernels' input for raw texts (they normalise each row as they read it); keep it alive while a
    kernel reads its `.args`, which point into its memory."""
    return key_rows(pl.Series(texts), TextKeyConfig())


def _shingles(text: str, n: int, chars: bool) -> list[str]:
    units = list(text) if chars else (text.split(" ") if text else [])
    glue = "" if chars else " "
    if 0 < len(units) < n:
        return [glue.join(units)]
    return [glue.join(units[i : i + n]) for i in range(len(units) - n + 1)]


M64 = (1 << 64) - 1


def _mix64(h: int) -> int:
    h ^= h >> 33
    h = (h * 0xFF51AFD7ED558CCD) & M64
    h ^= h >> 33
    h = (h * 0xC4CEB9FE1A85EC53) & M64
    return h ^ (h >> 33)


P = 0x9E3779B185EBCA87


def _word_hash(word: bytes) -> int:
    acc = (len(word) * P) & M64
    for i in range(0, len(word), 8):
        acc = _mix64(acc ^ int.from_bytes(word[i : i + 8], "little"))
    return acc


def _shingle_hash(shingle: str, chars: bool) -> int:
    """The documented shingle hash, written plainly: xxh64 of a char n-gram's bytes; for a word n-gram
    w_1..w_m, mix64(sum_j word_hash(w_j) * P^(m-j) mod 2^64) (Horner's rule); the low 32 bits."""
    if chars:
        return xxhash.xxh64_intdigest(shingle.encode()) & 0xFFFFFFFF
    acc = 0
    for word in shingle.split(" "):
        acc = (acc * P + _word_hash(word.encode())) & M64
    return _mix64(acc) & 0xFFFFFFFF


def _oracle(text: str, n: int, chars: bool, num_perm: int, seed: int) -> np.ndarray:
    m = MinHash(num_perm=num_perm, seed=seed, scheme="affine32", hashfunc=lambda s: _shingle_hash(s, chars))
    m.update_batch(_shingles(text, n, chars))
    return m.hashvalues


RAW = _raw()
TEXTS = _normalised(RAW)


@pytest.mark.parametrize(
    ("ngram", "chars", "num_perm", "seed"), [(5, False, 128, 1), (1, False, 64, 7), (3, True, 128, 42)]
)
def test_signatures_are_bit_identical_to_datasketch_affine32(ngram: int, chars: bool, num_perm: int, seed: int) -> None:
    a, b = permutations(num_perm, seed)
    keys = _keys(RAW)
    sigs, _, shingles = minhash_keys(keys.args, ngram, chars, np.uint64(0), a, b, 1, 1)
    assert sigs.shape == (len(TEXTS), num_perm) and sigs.dtype == np.uint32
    assert shingles.tolist() == [len(_shingles(t, ngram, chars)) for t in TEXTS]  # with repeats: n-grams, not a set
    mismatched = [
        i for i, t in enumerate(TEXTS) if not np.array_equal(sigs[i], _oracle(t, ngram, chars, num_perm, seed))
    ]
    assert mismatched == []
    assert (sigs[TEXTS.index("")] == 0xFFFFFFFF).all()


def test_shingle_hashes_follow_the_documented_definition() -> None:
    # every EDGE row; the last two: "short one" (< ngram words), "x"
    rows = [*range(len(EDGE)), 999, len(TEXTS) - 4, len(TEXTS) - 3]
    keys = _keys([RAW[i] for i in rows])  # raw: the kernel normalises as it reads
    for n, chars in ((5, False), (1, False), (4, True)):
        flat, starts, counts = shingle_sets(keys.args, n, chars, np.uint64(0))
        for k, i in enumerate(rows):
            got = flat[starts[k] : starts[k] + counts[k]].tolist()
            assert got == sorted({_shingle_hash(s, chars) for s in _shingles(TEXTS[i], n, chars)})


def test_permutations_match_datasketch() -> None:
    a, b = permutations(128, 3)
    ref = MinHash(num_perm=128, seed=3, scheme="affine32").permutations
    assert np.array_equal(a, ref[0]) and np.array_equal(b, ref[1])


def _edited(text: str, rng: random.Random, edits: int) -> str:
    words = text.split(" ")
    for _ in range(edits):
        words[rng.randrange(len(words))] = f"w{rng.randrange(10**6)}"
    return " ".join(words)


def test_lsh_candidates_equal_datasketch_minhashlsh() -> None:
    rng = random.Random(0)
    base = [t for t in TEXTS if len(t.split(" ")) >= 40][:400]
    texts = base + [_edited(t, rng, rng.choice([1, 2, 4, 8])) for t in base[:150]]
    a, b = permutations(128, 1)
    keys = _keys(texts)
    bands, rows = 12, 10
    sigs, h, _ = minhash_keys(keys.args, 5, False, np.uint64(0), a, b, bands, rows)
    assert np.array_equal(h, band_hashes(sigs, bands, rows))  # hashed in the kernel = hashed from the signatures
    lsh = MinHashLSH(num_perm=128, params=(bands, rows))
    for i, sig in enumerate(sigs):
        lsh.insert(i, MinHash(num_perm=128, seed=1, hashvalues=sig, scheme="affine32"))
    ours: dict[int, set[int]] = {i: {i} for i in range(len(texts))}
    for j in range(bands):
        groups: dict[int, list[int]] = {}
        for i, v in enumerate(h[:, j].tolist()):
            groups.setdefault(v, []).append(i)
        for members in groups.values():
            for i in members:
                ours[i].update(members)
    for i, sig in enumerate(sigs):
        theirs = set(lsh.query(MinHash(num_perm=128, seed=1, hashvalues=sig, scheme="affine32")))
        assert ours[i] == theirs, i
    assert sum(len(s) > 1 for s in ours.values()) >= 150  # most injected copies do collide


def test_cluster_buckets_equals_reference_components() -> None:
    rng = np.random.default_rng(0)
    n, num_perm = 300, 64
    sigs = rng.integers(0, 4, size=(n, num_perm), dtype=np.uint32)  # small alphabet: many similar pairs
    buckets = [rng.choice(n, size=rng.integers(2, 6), replace=False) for _ in range(200)]
    members = np.concatenate(buckets).astype(np.int64)
    starts = np.r_[0, np.cumsum([len(x) for x in buckets])].astype(np.int64)
    none_u32, none_i64 = np.zeros(0, np.uint32), np.zeros(0, np.int64)
    parent, _ = cluster_buckets(members, starts, 0.3, VERIFY_ESTIMATE, sigs, none_u32, none_i64, none_i64)
    # reference: join every bucket pair whose estimated Jaccard passes, then label by the smallest member
    label = list(range(n))

    def find(x: int) -> int:
        while label[x] != x:
            x = label[x]
        return x

    for bucket in buckets:
        for x in bucket:
            for y in bucket:
                if x < y and (sigs[x] == sigs[y]).mean() >= 0.3 - 1e-9:
                    rx, ry = find(x), find(y)
                    label[max(rx, ry)] = min(rx, ry)
    assert parent.tolist() == [find(i) for i in range(n)]
    unverified, _ = cluster_buckets(members, starts, 0.99, VERIFY_NONE, sigs, none_u32, none_i64, none_i64)
    assert len(set(unverified.tolist())) < len(set(parent.tolist()))


def test_exact_verification_uses_true_shingle_set_jaccard() -> None:
    rng = random.Random(3)
    base = [t for t in TEXTS if len(t.split(" ")) >= 30][:60]
    texts = base + [_edited(t, rng, rng.choice([1, 2, 3, 5])) for t in base]
    keys = _keys(texts)
    flat, set_starts, counts = shingle_sets(keys.args, 5, False, np.uint64(0))
    sets = [set(_shingles(t, 5, False)) for t in texts]
    assert counts.tolist() == [len(x) for x in sets]
    n = len(texts)
    members = np.arange(n, dtype=np.int64)  # one bucket holding every row: every pair is compared
    starts = np.array([0, n], dtype=np.int64)
    sigs = np.zeros((n, 1), np.uint32)
    parent, checked = cluster_buckets(members, starts, 0.8, VERIFY_EXACT, sigs, flat, set_starts, counts)
    assert checked > 0
    # oracle: components of the graph "exact Jaccard >= 0.8", by brute force over all pairs
    label = list(range(n))

    def find(x: int) -> int:
        while label[x] != x:
            x = label[x]
        return x

    for x in range(n):
        for y in range(x + 1, n):
            union = sets[x] | sets[y]
            if union and len(sets[x] & sets[y]) / len(union) >= 0.8:
                rx, ry = find(x), find(y)
                label[max(rx, ry)] = min(rx, ry)
    assert parent.tolist() == [find(i) for i in range(n)]
    assert len(set(parent.tolist())) < n  # some edited copies did join their originals


@pytest.mark.parametrize("n", [0, 1, 7, 50_000, 300_000])  # one part; one part; 4 and 32 parts of the table
def test_buckets_group_every_repeated_band_hash(n: int) -> None:
    """`buckets` (`repeated_groups`) equals a plain grouping of the band hashes by value."""
    rng = np.random.default_rng(5)
    values = rng.integers(0, 2**64, size=n, dtype=np.uint64)
    k = n // 15
    values[rng.choice(n, k, replace=False)] = values[rng.choice(n, k)]  # injected repeats
    if n:
        values[: min(n, 4)] = values[0]  # a run of four
    counts: dict[int, list[int]] = {}
    for i, v in enumerate(values.tolist()):
        counts.setdefault(v, []).append(i)
    ords = np.arange(n, dtype=np.uint32) * 3  # a row ordinal per value, not its index
    members, starts = buckets(pl.DataFrame({"_ord": ords, "_band": values}, schema=BAND_SCHEMA))
    assert starts[0] == 0 and starts[-1] == len(members)
    got = sorted(sorted(members[a:b].tolist()) for a, b in pairwise(starts.tolist()))
    want = sorted(sorted(3 * i for i in idx) for idx in counts.values() if len(idx) > 1)
    assert got == want


@pytest.mark.parametrize("options", list(itertools.product([True, False], repeat=4)))
def test_signatures_of_raw_text_equal_those_of_its_normalised_text(options: tuple[bool, ...]) -> None:
    """Under every normalisation option the kernels' signatures of raw rows (word shingles from the raw
    bytes where the options allow) equal those of the reference normalisation of the same rows."""
    nfkc, casefold, collapse, punct = options
    cfg = MinhashConfig(
        fields=("text",), nfkc=nfkc, casefold=casefold, collapse_whitespace=collapse, strip_punctuation=punct
    )
    normalised = pl.DataFrame({"text": RAW, "kind": "text"}).select(key_text_reference(cfg)).to_series()
    assert np.array_equal(sketch(pl.Series(RAW), cfg)[0], sketch(normalised, cfg)[0])
