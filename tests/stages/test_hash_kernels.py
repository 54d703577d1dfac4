"""The numba xxh64 kernel against the xxhash package, on real rows."""

from __future__ import annotations

import pyarrow as pa
import xxhash

from engine.stages.hash_kernels import xxh64_strings
from tests.conftest import DATA


def test_xxh64_matches_xxhash_on_real_rows_and_edge_lengths() -> None:
    texts = (DATA / "gsm8k_train.jsonl").read_text().splitlines()[:2000]
    texts += ["", "a", "é" * 3, "x" * 31, "x" * 32, "x" * 33, "ünïcödé " * 17]
    for seed in (0, 1, 2**40 + 7):
        got = xxh64_strings(pa.array(texts), seed).tolist()
        assert got == [xxhash.xxh64_intdigest(t.encode(), seed) for t in texts]


def test_sliced_and_chunked_arrays_hash_like_whole_ones() -> None:
    texts = [f"row {i} " * (i % 9) for i in range(100)]
    whole = xxh64_strings(pa.array(texts)).tolist()
    assert xxh64_strings(pa.array(texts).slice(10, 50)).tolist() == whole[10:60]
    chunked = pa.chunked_array([pa.array(texts[:40]), pa.array(texts[40:])])
    assert xxh64_strings(chunked).tolist() == whole
