"""Near dedup end to end on real rows with injected near-duplicates, checked against exact Jaccard."""

from __future__ import annotations

import itertools
import json
import random
import shutil
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from engine import api
from engine.errors import ConfigError, SchemaError
from engine.stages.dedup_kernels import band_hashes
from engine.stages.dedup_summary import STORED_CLUSTERS, summarize, true_jaccard
from engine.stages.dedup_text import TextKeyConfig, key_text_reference
from engine.stages.minhash import MinhashConfig, banding
from engine.stages.near_dedup import positions
from engine.store.dataset import open_dataset
from tests.conftest import DATA


def _edit(text: str, rng: random.Random, edits: int) -> str:
    words = text.split()
    for _ in range(edits):
        op, at = rng.randrange(3), rng.randrange(len(words))
        if op == 0:
            words[at] = rng.choice(["alpha", "beta", "gamma", "delta"])
        elif op == 1 and len(words) > 1:
            del words[at]
        else:
            words.insert(at, "extra")
    return " ".join(words)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """~1,000 real alpaca rows plus 300 copies with 0-12 word edits (known, so the answer is known)."""
    root = tmp_path_factory.mktemp("near")
    rng = random.Random(7)
    rows = json.loads((DATA / "alpaca_en_demo.json").read_text())
    long_rows = [r for r in rows if len(r["output"].split()) >= 60]
    extra = []
    for r in rng.sample(long_rows, 300):
        extra.append({**r, "output": _edit(r["output"], rng, rng.randrange(13))})
    path = root / "rows.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows + extra))
    api.ingest([path], root / "ds", partition_rows=400)
    return root / "ds"


def _shingle_set(key: str) -> set[str]:
    words = key.split(" ")
    return {" ".join(words[j : j + 5]) for j in range(max(len(words) - 4, 1))}


def _python_jaccard(a: str, b: str) -> float:
    """The oracle: Jaccard of the word 5-gram sets, as strings, of two texts normalised by the Polars reference."""
    x, y = (
        _shingle_set(k)
        for k in pl.DataFrame({"text": [a, b], "kind": "text"}).select(key_text_reference(CFG)).to_series()
    )
    return len(x & y) / len(x | y)


CFG = TextKeyConfig(fields=("text",))


def _exact_pairs(df: pl.DataFrame) -> dict[tuple[int, int], float]:
    """Exact Jaccard of every pair of rows sharing at least one shingle (an inverted index, not n^2), from
    the shingles as strings of the reference normalisation: independent of the kernels."""
    keys = df.select(key_text_reference(MinhashConfig())).to_series().to_list()
    sets = [_shingle_set(k) for k in keys]
    index: dict[str, list[int]] = {}
    for i, shingles in enumerate(sets):
        for sh in shingles:
            index.setdefault(sh, []).append(i)
    pairs = {p for rows in index.values() if len(rows) < 50 for p in itertools.combinations(rows, 2)}
    return {(a, b): len(sets[a] & sets[b]) / len(sets[a] | sets[b]) for a, b in pairs}


@pytest.fixture(scope="module")
def scored(corpus: Path) -> tuple[pl.DataFrame, dict[tuple[int, int], float]]:
    api.score("minhash", corpus)
    api.score("near_dedup", corpus)
    df = open_dataset(corpus).scan().collect()
    return df, _exact_pairs(df)


def test_clusters_agree_with_exact_jaccard(scored: tuple[pl.DataFrame, dict[tuple[int, int], float]]) -> None:
    df, exact = scored
    cluster = df["mh_cluster"].to_list()
    true = [p for p, j in exact.items() if j >= 0.8]
    found = [p for p in true if cluster[p[0]] == cluster[p[1]]]
    assert len(true) >= 150
    assert len(found) / len(true) >= 0.98  # recall at 0.8 against exact Jaccard (163/163 when written)
    strong = [p for p, j in exact.items() if j >= 0.9]
    assert all(cluster[a] == cluster[b] for a, b in strong)
    members: dict[int, list[int]] = {}
    for i, c in enumerate(cluster):
        members.setdefault(c, []).append(i)
    clustered_pairs = [p for rows in members.values() for p in itertools.combinations(rows, 2)]
    # exact verification: every pair joined directly has J >= 0.8; chains may link a looser pair
    precise = [p for p in clustered_pairs if exact.get(p, 0.0) >= 0.7]
    assert len(precise) / len(clustered_pairs) >= 0.98


def test_true_jaccard_and_summary_examples_match_python_sets(corpus: Path, tmp_path: Path) -> None:
    """The summary's example pairs carry the exact Jaccard of their shingle sets (the kernels' sets, raw or
    normalised input, against the Python oracle)."""
    rows = open_dataset(corpus).scan().select("text", "instruction", "input", "response").head(40).collect()
    raw = [f"{r['instruction']}\n{r['input']}\n{r['response']}" for r in rows.iter_rows(named=True)]
    for a, b in itertools.pairwise(raw):
        assert true_jaccard(a, b, MinhashConfig()) == pytest.approx(_python_jaccard(a, b), abs=1e-12)
    copy = tmp_path / "ds"
    shutil.copytree(corpus, copy)
    report = api.dedup(copy, exact=False, near=True)
    assert report.summary.examples
    for e in report.summary.examples:
        assert e.jaccard == pytest.approx(_python_jaccard(e.kept_text, e.dup_text), abs=1e-12)
    # the example rows near_dedup kept beside its table give the summary that reading all the text gives
    side = pl.scan_parquet(copy / "stages" / "near_dedup" / "_side.parquet")
    stored = side.filter(pl.col("_ex_raw").is_not_null()).collect()
    assert (
        stored.height == 2 * STORED_CLUSTERS
        and stored.group_by("mh_cluster").len()["len"].to_list() == [2] * STORED_CLUSTERS
    )
    lf = open_dataset(copy).scan()
    assert summarize(lf, MinhashConfig(), 3, side) == summarize(lf, MinhashConfig(), 3) == report.summary
    assert len(summarize(lf, MinhashConfig(), 4, side).examples) == 4  # more than were kept: reads the text


def test_cluster_columns_are_consistent(scored: tuple[pl.DataFrame, dict[tuple[int, int], float]]) -> None:
    df, _ = scored
    by = (
        df.with_row_index("ord")
        .group_by("mh_cluster")
        .agg(
            size=pl.len(),
            first=pl.col("ord").min(),
            kept=pl.col("dup_keep").sum(),
            size_col=pl.col("mh_cluster_size").first(),
        )
    )
    assert (by["size"] == by["size_col"]).all()
    assert (by["first"] == by["mh_cluster"]).all()  # a cluster is named by its first row
    assert (by["kept"] == 1).all()  # exactly one kept member per cluster
    kept_ids = (
        df.filter(pl.col("mh_cluster_size") > 1)
        .group_by("mh_cluster")
        .agg(pl.col("id").filter(pl.col("dup_keep")).first().alias("kept"), pl.col("id").min().alias("smallest"))
    )
    assert (kept_ids["kept"] == kept_ids["smallest"]).all()  # keep = first: the smallest id
    assert by.filter(pl.col("size") > 1).height >= 150


def test_keep_longest_and_unverified_buckets(corpus: Path, tmp_path: Path) -> None:
    api.score("near_dedup", corpus, settings={"keep": "longest"})
    df = open_dataset(corpus).scan().collect().with_columns(n=pl.col("response").str.len_chars())
    best = (
        df.filter(pl.col("mh_cluster_size") > 1)
        .group_by("mh_cluster")
        .agg(kept=pl.col("n").filter(pl.col("dup_keep")).first(), longest=pl.col("n").max())
    )
    assert best.height >= 150 and (best["kept"] == best["longest"]).all()
    verified = df["mh_cluster"].n_unique()
    api.score("near_dedup", corpus, settings={"verify": "none"})
    loose = open_dataset(corpus).scan().collect()["mh_cluster"].n_unique()
    assert loose <= verified


def test_needs_minhash_first_and_checks_options(tmp_path: Path) -> None:
    api.ingest([DATA / "c4_demo.jsonl"], tmp_path / "ds")
    with pytest.raises(SchemaError, match=r"reads column 'mh_sig'.*run the stage that adds it first"):
        api.score("near_dedup", tmp_path / "ds")
    with pytest.raises(ConfigError, match="threshold must be in"):
        api.score("near_dedup", tmp_path / "ds", settings={"threshold": 1.5})
    with pytest.raises(ConfigError, match="set both bands and rows"):
        api.score("near_dedup", tmp_path / "ds", settings={"bands": 4})


@pytest.mark.parametrize("verify", ["exact", "estimate"])
def test_signatures_from_other_shingling_are_refused(tmp_path: Path, verify: str) -> None:
    api.ingest([DATA / "alpaca_en_demo.json"], tmp_path / "ds", partition_rows=400)
    api.score("minhash", tmp_path / "ds", settings={"ngram": "3"})
    with pytest.raises(ConfigError, match="computed with other minhash options than near_dedup's"):
        api.score("near_dedup", tmp_path / "ds", settings={"verify": verify})
    report = api.score("near_dedup", tmp_path / "ds", settings={"verify": verify, "ngram": "3"})
    assert report.written == 3


def test_band_hashes_come_from_minhash_or_from_the_signatures(corpus: Path, tmp_path: Path) -> None:
    """minhash writes the band hashes for its threshold; near_dedup with another number of bands hashes
    mh_sig itself (same clusters as a run where both agree), and refuses bands it cannot tell apart."""
    ds = tmp_path / "ds"
    shutil.copytree(corpus, ds)
    api.score("minhash", ds, settings={"threshold": "0.7"})
    df = open_dataset(ds).scan().collect()
    bands, rows = banding(MinhashConfig(threshold=0.7))
    assert df.schema["mh_band"] == pl.Array(pl.UInt64, bands)
    assert np.array_equal(df["mh_band"].to_numpy(), band_hashes(df["mh_sig"].to_numpy(), bands, rows))
    assert banding(MinhashConfig()) != (bands, rows)
    api.score("near_dedup", ds)  # threshold 0.8: not the bands minhash wrote
    cols = ["mh_cluster", "mh_cluster_size", "dup_keep"]
    got = open_dataset(ds).scan().select(cols).collect()
    api.score("minhash", ds)
    api.score("near_dedup", ds)
    assert got.equals(open_dataset(ds).scan().select(cols).collect())
    assert got["mh_cluster_size"].max() > 1  # type: ignore[operator]
    b, r = banding(MinhashConfig())
    api.score("minhash", ds, settings={"bands": str(b), "rows": str(r - 1)})  # same width, other rows
    with pytest.raises(ConfigError, match="other minhash options than near_dedup's"):
        api.score("near_dedup", ds)


@pytest.mark.parametrize("spread", [1, 1000])  # dense ordinals (a table by ordinal), sparse (binary search)
def test_positions_find_every_ordinal(spread: int) -> None:
    rng = np.random.default_rng(3)
    nodes = np.unique(rng.integers(0, 50_000 * spread, size=20_000)).astype(np.uint32)
    ords = nodes[rng.integers(0, len(nodes), size=60_000)]
    got = positions(nodes, ords)
    assert np.array_equal(nodes[got], ords)
    assert len(positions(nodes[:0], ords[:0])) == 0
