"""Each shipped query against the same selection computed independently with Polars."""

from __future__ import annotations

import math
from pathlib import Path

import duckdb
import polars as pl
import pytest

from engine.errors import ConfigError
from engine.select.queries import QUERIES_DIR, load_query, shipped_queries
from engine.select.run import run_selection
from engine.store.dataset import open_dataset


def _pool(path: Path, by: str = "heur_score") -> pl.DataFrame:
    """Eligible rows with their ordinal, domain and score, computed without DuckDB."""
    df = open_dataset(path).scan().with_row_index("_ord").collect()
    return (
        df.filter(pl.col("exact_dup_of").is_null() & pl.col("len_reason").is_null())
        .select("_ord", "id", pl.col("domain_name").alias("domain"), pl.col(by).cast(pl.Float64).alias("key"))
        .with_columns(pl.col("_ord").cast(pl.Int64))
    )


def _ords(path: Path, queries: list[str], params: dict[str, str], **kw: object) -> pl.DataFrame:
    res = run_selection(open_dataset(path), queries, params, **kw)  # type: ignore[arg-type]
    out = pl.from_arrow(res.rows)
    assert isinstance(out, pl.DataFrame)
    return out.with_columns(pl.col("_ord").cast(pl.Int64))


def _best_first(df: pl.DataFrame) -> pl.DataFrame:
    return df.filter(pl.col("key").is_not_null()).sort(["key", "id", "_ord"], descending=[True, False, False])


def test_every_query_header_declares_exactly_the_parameters_it_binds() -> None:
    queries = shipped_queries()
    assert {q.name for q in queries} >= {"top_n", "top_pct_per_domain", "threshold", "quality_tiers", "split", "mix"}
    for q in queries:
        assert {"reads", "params", "returns"} <= set(q.header), q.name
        assert set(q.params) == set(duckdb.extract_statements(q.sql)[0].named_parameters), q.name
        assert "format(" not in q.sql and "{" not in q.sql, q.name  # values are bound, never formatted in


def test_top_n_matches_polars(scored: Path) -> None:
    got = _ords(scored, ["top_n"], {"n": "250"})
    want = _best_first(_pool(scored)).head(250)
    assert got.sort("sel_rank")["_ord"].to_list() == want["_ord"].to_list()
    assert got["sel_rank"].sort().to_list() == list(range(1, 251))


def test_top_n_ascending_ranks_low_values_first(scored: Path) -> None:
    got = _ords(scored, ["top_n"], {"n": "40"}, by="len_response_chars", ascending=True)
    pool = _pool(scored, "len_response_chars").with_columns(key=-pl.col("key"))
    assert got.sort("sel_rank")["_ord"].to_list() == _best_first(pool).head(40)["_ord"].to_list()


def test_top_pct_per_domain_matches_polars(scored: Path) -> None:
    got = _ords(scored, ["top_pct_per_domain"], {"pct": "0.2"})
    pool = _best_first(_pool(scored))
    want = []
    for _, g in pool.group_by("domain", maintain_order=True):
        want += g.head(math.ceil(0.2 * g.height))["_ord"].to_list()
    assert sorted(got["_ord"].to_list()) == sorted(want)
    assert len(pool["domain"].unique()) >= 4  # general, math, tool_use, coding all present


def test_threshold_matches_polars_and_compares_raw_values(scored: Path) -> None:
    got = _ords(scored, ["threshold"], {"min": "200", "max": "900"}, by="len_response_chars", ascending=True)
    pool = _pool(scored, "len_response_chars")
    want = pool.filter(pl.col("key").is_between(200, 900))["_ord"].sort().to_list()
    assert got["_ord"].to_list() == want and want


def test_quality_tiers_are_nested_top_subsets(scored: Path) -> None:
    got = _ords(scored, ["quality_tiers"], {"tier1": "100", "tier2": "500", "tier3": "2000"}).sort("sel_rank")
    ranked = _best_first(_pool(scored))["_ord"].to_list()
    for k, size in ((1, 100), (2, 500), (3, 2000)):
        assert set(got.filter(pl.col("sel_tier") <= k)["_ord"]) == set(ranked[:size])


def test_split_is_the_id_hash_and_covers_every_eligible_row(scored: Path) -> None:
    got = _ords(scored, ["split"], {"train": "0.8", "valid": "0.1"})
    pool = _pool(scored).with_columns(u=pl.col("id").str.slice(0, 8).str.to_integer(base=16) / 2**32)
    want = pool.select(
        "_ord",
        split=pl.when(pl.col("u") < 0.8)
        .then(pl.lit("train"))
        .when(pl.col("u") < 0.9)
        .then(pl.lit("valid"))
        .otherwise(pl.lit("test")),
    )
    assert got.sort("_ord").equals(want.sort("_ord").select("_ord", "split"))
    share = got["split"].value_counts(normalize=True).sort("split")
    assert abs(share.filter(pl.col("split") == "train")["proportion"][0] - 0.8) < 0.03


def test_parameters_are_typed_checked_and_named_in_errors() -> None:
    q = load_query("top_n")
    assert q.bind({"n": "1_000"}) == {"n": 1000}
    with pytest.raises(ConfigError, match=r"parameter \$n .* is required"):
        q.bind({})
    with pytest.raises(ConfigError, match="expected BIGINT, got 'ten'"):
        q.bind({"n": "ten"})
    with pytest.raises(ConfigError, match=r"unknown parameter 'm' \(it takes: n\)"):
        q.bind({"m": "3"})
    assert load_query(QUERIES_DIR / "threshold.sql").bind({"min": "0.5"}) == {"min": 0.5, "max": math.inf}
