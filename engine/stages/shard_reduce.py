"""Global steps that split into hash-partitioned shards: a map over one partition, a reduce over one shard.

A stage listed in `SHARDED` has a `reduce` whose groups never span two values of `key`: the map
computes the narrow keyed columns of one partition (text stays where it is), rows go to shard
`hash(key) mod P`, and `reduce_shard` over one shard returns exactly the side-table rows the stage's
own `reduce` returns for those keys. The concatenation, sorted by `_ord`, equals the whole reduce
(the local runner is the P = 1 case). A distributed runner (`engine.store.ray_runner`) uses this;
stages not listed run their own `reduce` in one task. Near dedup is not listed: its connected
components span buckets, so its shards would not be independent.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import polars as pl

from engine.stages import exact_dedup
from engine.stages.base import ORD
from engine.stages.keep_policy import kept_per_group, rank_expr


@dataclass(frozen=True, slots=True)
class ShardedReduce:
    """The two halves of a global step: `map(lf_with_ord, cfg)` and `reduce_shard(rows, cfg)`."""

    key: str
    map: Callable[[pl.LazyFrame, Any], pl.LazyFrame]
    reduce_shard: Callable[[pl.DataFrame, Any], pl.DataFrame]


def _exact_map(lf: pl.LazyFrame, cfg: exact_dedup.ExactDedupConfig) -> pl.LazyFrame:
    # the same hash and rank expressions as exact_dedup.reduce, so the groups and the kept rows agree
    return lf.select(ORD, "id", exact_hash=exact_dedup._hash(cfg), _rank=rank_expr(cfg.keep, cfg.fields))


def _exact_reduce_shard(rows: pl.DataFrame, cfg: exact_dedup.ExactDedupConfig) -> pl.DataFrame:
    # every row of a hash lands in one shard, so "duplicated in the shard" is "duplicated anywhere"
    dups = rows.filter(pl.col("exact_hash").is_duplicated())
    kept = kept_per_group(dups, "exact_hash")
    return dups.join(kept, on="exact_hash").select(
        ORD, exact_dup_of=pl.when(pl.col(ORD) == pl.col("keep_ord")).then(pl.lit(None, pl.String)).otherwise("keep_id")
    )


SHARDED: dict[str, ShardedReduce] = {
    "exact_dedup": ShardedReduce(key="exact_hash", map=_exact_map, reduce_shard=_exact_reduce_shard),
}


def split_shards(keyed: pl.DataFrame, key: str, shards: int) -> list[pl.DataFrame]:
    """Rows of one map output by shard (`key`'s hash mod `shards`); an empty frame for an empty shard."""
    shard = (keyed[key].hash(seed=0) % shards).cast(pl.UInt32)
    return [keyed.filter(shard == i) for i in range(shards)]
