"""The dedup summary's size histogram against a per-cluster Python reference."""

from __future__ import annotations

import numpy as np

from engine.stages.dedup_summary import size_histogram


def _reference(sizes: list[int]) -> dict[str, int]:
    """Bucket by bucket, the way a reader counts: "2", then "3-4", "5-8", ... (powers of two)."""
    hist: dict[str, int] = {}
    for size in sorted(sizes):
        if size <= 2:
            label = str(size)
        else:
            lo = 1
            while lo * 2 < size:
                lo *= 2
            label = f"{lo + 1}-{lo * 2}"
        hist[label] = hist.get(label, 0) + 1
    return hist


def test_size_histogram_matches_the_reference_in_order() -> None:
    rng = np.random.default_rng(7)
    edges = [2, 3, 4, 5, 8, 9, 16, 17, 1024, 1025, 2**31, 2**31 + 1, 2**40 + 3]
    sizes = edges + rng.integers(2, 5000, 3000).tolist() + rng.geometric(0.4, 2000).clip(2).tolist()
    got = size_histogram(np.array(sizes))
    assert got == _reference(sizes)
    assert list(got) == list(_reference(sizes))  # smallest bucket first
    assert got["2"] > 0 and got["3-4"] > 0 and got["2147483649-4294967296"] == 1
    assert size_histogram(np.array([], dtype=np.int64)) == {}
