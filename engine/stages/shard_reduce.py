"""Global steps that split into hash-partitioned shards: a map over one partition, a reduce over one shard.

A stage listed in `SHARDED` splits its global step three ways. `map` computes the narrow keyed
columns of one partition (text stays where it is); rows go to shard `hash(key) mod P`; `reduce_shard`
turns one shard into partial results, reading the rows it needs by ordinal where they are stored;
`finish` merges every shard's results into the side table on the driver. For any P the side table
equals the stage's own `reduce` (the local runner is the P = 1 case):

- exact dedup: every row of a hash lands in one shard, so a shard's rows are final; `finish` sorts.
- near dedup: a shard holds whole LSH buckets and returns its connected components as edges;
  `finish` runs a union-find over the merged edges (components span shards, so they converge there).

A stage listed in `QUANTILE` (the kenlm percentiles) has a global step that is exact quantiles of one
column: `engine.stages.quantiles` runs it as counting passes and one value pass, each a map over the
partitions whose small outputs add up on the driver; `finish` turns the quantiles into the side table.

A distributed runner (`engine.store.ray_runner`) uses both; stages in neither (semantic dedup) run their
own `reduce` in one task.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import polars as pl

from engine.stages import exact_dedup, kenlm_bucket, near_dedup
from engine.stages.base import ORD
from engine.stages.keep_policy import check_score_column, kept_per_group, rank_expr
from engine.stages.near_dedup import RowsByOrd


@dataclass(frozen=True, slots=True)
class ShardedReduce:
    """The parts of a global step: `map(lf_with_ord, cfg)`, `reduce_shard(rows, cfg, rows_by_ord)`,
    `finish(rows, cfg, rows_by_ord)`.

    `check(lf_all, cfg)` runs on the driver first, so a bad config fails before any task starts.
    """

    key: str
    map: Callable[[pl.LazyFrame, Any], pl.DataFrame]
    reduce_shard: Callable[[pl.DataFrame, Any, RowsByOrd], pl.DataFrame]
    finish: Callable[[pl.DataFrame, Any, RowsByOrd], pl.DataFrame]
    check: Callable[[pl.LazyFrame, Any], None]


def _exact_map(lf: pl.LazyFrame, cfg: exact_dedup.ExactDedupConfig) -> pl.DataFrame:
    # the same hash and rank expressions as exact_dedup.reduce, so the groups and the kept rows agree
    return lf.select(ORD, "id", exact_hash=exact_dedup._hash(cfg), _rank=rank_expr(cfg.keep, cfg.fields)).collect()


def _exact_reduce_shard(rows: pl.DataFrame, cfg: exact_dedup.ExactDedupConfig, _rows_by_ord: RowsByOrd) -> pl.DataFrame:
    # every row of a hash lands in one shard, so "duplicated in the shard" is "duplicated anywhere"
    dups = rows.filter(pl.col("exact_hash").is_duplicated())
    kept = kept_per_group(dups, "exact_hash")
    return dups.join(kept, on="exact_hash").select(
        ORD, exact_dup_of=pl.when(pl.col(ORD) == pl.col("keep_ord")).then(pl.lit(None, pl.String)).otherwise("keep_id")
    )


def _sort_by_ord(rows: pl.DataFrame, _cfg: Any, _rows_by_ord: RowsByOrd) -> pl.DataFrame:
    return rows.sort(ORD)


def _check_exact(lf: pl.LazyFrame, cfg: exact_dedup.ExactDedupConfig) -> None:
    check_score_column(lf, cfg.keep)


SHARDED: dict[str, ShardedReduce] = {
    "exact_dedup": ShardedReduce(
        key="exact_hash", map=_exact_map, reduce_shard=_exact_reduce_shard, finish=_sort_by_ord, check=_check_exact
    ),
    "near_dedup": ShardedReduce(
        key="_band",
        map=near_dedup.band_rows,
        reduce_shard=near_dedup.reduce_shard,
        finish=near_dedup.finish,
        check=near_dedup.check_inputs,
    ),
}


def split_shards(keyed: pl.DataFrame, key: str, shards: int) -> list[pl.DataFrame]:
    """Rows of one map output by shard (`key`'s hash mod `shards`); an empty frame for an empty shard."""
    shard = (keyed[key].hash(seed=0) % shards).cast(pl.UInt32)
    return [keyed.filter(shard == i) for i in range(shards)]


@dataclass(frozen=True, slots=True)
class QuantileReduce:
    """A global step that is the quantiles `fractions(cfg)` of `column`, made into a side table by `finish`."""

    column: str
    fractions: Callable[[Any], tuple[float, ...]]
    finish: Callable[[list[float | None]], pl.DataFrame]


QUANTILE: dict[str, QuantileReduce] = {
    "kenlm_bucket": QuantileReduce(
        column="kenlm_ppl", fractions=kenlm_bucket.fractions, finish=kenlm_bucket.side_table
    ),
}
