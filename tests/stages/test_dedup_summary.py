"""The dedup summary's size histogram and example pairs against per-cluster Python references."""

from __future__ import annotations

import numpy as np
import polars as pl

from engine.stages.dedup_summary import _pairs, size_histogram, true_jaccard
from engine.stages.minhash import MinhashConfig
from tests.conftest import DATA


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


def _reference_pairs(members: pl.DataFrame, picked: list[int], examples: int) -> list[tuple[str, str, float]]:
    """Cluster by cluster in `picked` order: its first kept row and its first other row; least similar first,
    ties in `picked` order."""
    rows = members.to_dicts()
    found = []
    for cid in picked:
        group = [r for r in rows if r["mh_cluster"] == cid]
        a = next(r for r in group if r["dup_keep"])
        b = next(r for r in group if not r["dup_keep"])
        found.append((a["id"], b["id"], true_jaccard(a["raw"], b["raw"], MinhashConfig())))
    return sorted(found, key=lambda e: e[2])[:examples]


def test_example_pairs_match_the_reference_with_ties_and_kept_rows_not_first() -> None:
    t = pl.read_ndjson(DATA / "c4_demo.jsonl")["text"].head(6).to_list()
    rows = [  # (cluster, kept, id, text), in the order the side table holds them
        (5, False, "x1", t[0]), (5, True, "k5", t[0] + " and a few more words at the end"), (5, False, "x2", t[1]),
        (2, True, "k2", t[2]), (2, False, "y1", t[2]),  # J = 1 ...
        (9, False, "z1", t[3]), (9, True, "k9", t[3]), (9, True, "k9b", t[4]),  # ... and J = 1: a tie
        (7, True, "k7", t[5]), (7, False, "w1", t[5][: len(t[5]) // 2]),
    ]  # fmt: skip
    members = pl.DataFrame(rows, schema=["mh_cluster", "dup_keep", "id", "raw"], orient="row")
    for picked in ([9, 2, 5, 7], [2, 9, 7, 5], [7, 5]):
        for examples in (1, 2, 3, 4):
            got = _pairs(members, pl.Series(picked), MinhashConfig(), examples)
            want = _reference_pairs(members, picked, examples)
            assert [(e.kept_id, e.dup_id, e.jaccard) for e in got] == want
            assert all(e.kept_text and e.dup_text for e in got)
    ties = _pairs(members, pl.Series([9, 2]), MinhashConfig(), 2)
    assert [e.kept_id for e in ties] == ["k9", "k2"] and ties[0].jaccard == ties[1].jaccard == 1.0
