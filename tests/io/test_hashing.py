"""Row ids: the one-sweep pair kernel equals two reference xxh64 passes, byte for byte."""

from __future__ import annotations

import numpy as np
import polars as pl
import pyarrow as pa
import xxhash
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.io.canonical import hash_ids
from engine.stages.hash_kernels import xxh64_pair_hex, xxh64_strings


def _reference(s: str | None) -> str:
    b = (s or "").encode()
    return f"{xxhash.xxh64_intdigest(b, 0):016x}{xxhash.xxh64_intdigest(b, 1):016x}"


@settings(max_examples=60, deadline=None)
@given(st.lists(st.one_of(st.none(), st.text(max_size=200)), max_size=40))
def test_pair_kernel_equals_the_xxhash_package(values: list[str | None]) -> None:
    got = xxh64_pair_hex(pa.array(values, pa.string())).to_pylist()
    assert got == [_reference(v) for v in values]


def test_pair_kernel_covers_every_length_branch() -> None:
    # 0..100 bytes crosses the 32-byte stripes and the 8-, 4- and 1-byte tails in every combination
    values = ["".join(chr(33 + (i * 7 + k) % 90) for k in range(n)) for i, n in enumerate(range(101))]
    values += ["é" * 40, "\x00" * 33, "x" * 10_000]
    assert xxh64_pair_hex(pa.array(values)).to_pylist() == [_reference(v) for v in values]


def test_pair_kernel_reads_sliced_and_chunked_arrays() -> None:
    values = [f"row {i} " * (i % 9) for i in range(300)]
    sliced = pa.array(values).slice(17, 200)
    assert xxh64_pair_hex(sliced).to_pylist() == [_reference(v) for v in values[17:217]]
    chunked = pa.chunked_array([pa.array(values[:100]), pa.array(values[100:])], pa.string())
    assert xxh64_pair_hex(chunked).to_pylist() == [_reference(v) for v in values]
    assert xxh64_pair_hex(pa.array([], pa.string())).to_pylist() == []


def test_hash_ids_equals_the_two_pass_definition() -> None:
    keys = pl.Series("k", ["sft\x1fa\x1f\x1fb\x1f\x1f", "", "rlvr\x1fq\x1fs\x1f5", None, "x" * 1000])
    arr = keys.to_arrow()
    h = np.empty((len(keys), 2), dtype=">u8")
    h[:, 0], h[:, 1] = xxh64_strings(arr, 0), xxh64_strings(arr, 1)
    expected = [row.tobytes().hex() for row in h]
    ids = hash_ids(keys)
    assert ids.name == "id" and ids.dtype == pl.String
    assert ids.to_list() == expected
