"""Exact dedup: rows whose normalised text is identical. Flags, never drops.

Adds `exact_hash` (xxh64 of the normalised dedup text, see `engine.stages.dedup_text`) and
`exact_dup_of` (the id of the row kept from its group; null on the kept row and on unique rows).
The kept row is chosen by the `keep` policy (`engine.stages.keep_policy`). A global step groups the
hashes of all partitions; the side table holds only rows of groups with more than one member.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from engine.stages.base import ORD, Stage
from engine.stages.dedup_text import TextKeyConfig, key_text
from engine.stages.hash_kernels import xxh64_strings
from engine.stages.keep_policy import check_policy, check_score_column, kept_per_group, rank_expr
from engine.stages.views import VIEW_READS


@dataclass(frozen=True, slots=True, kw_only=True)
class ExactDedupConfig(TextKeyConfig):
    keep: str = "first"
    seed: int = 0

    def __post_init__(self) -> None:
        TextKeyConfig.__post_init__(self)
        check_policy(self.keep)


def _hash(cfg: ExactDedupConfig) -> pl.Expr:
    seed = cfg.seed
    return key_text(cfg).map_batches(
        lambda s: pl.Series(s.name, xxh64_strings(s.to_arrow(), seed)), return_dtype=pl.UInt64, is_elementwise=True
    )


def reduce(lf: pl.LazyFrame, cfg: ExactDedupConfig) -> pl.DataFrame:
    check_score_column(lf, cfg.keep)
    keyed = lf.select(ORD, "id", exact_hash=_hash(cfg), _rank=rank_expr(cfg.keep, cfg.fields))
    dups = keyed.filter(pl.col("exact_hash").is_duplicated()).collect(engine="streaming")
    kept = kept_per_group(dups, "exact_hash")
    # sorted by ordinal: the side table's bytes must not depend on the join's thread scheduling
    return (
        dups.join(kept, on="exact_hash")
        .select(
            ORD,
            exact_dup_of=pl.when(pl.col(ORD) == pl.col("keep_ord")).then(pl.lit(None, pl.String)).otherwise("keep_id"),
        )
        .sort(ORD)
    )


def transform(lf: pl.LazyFrame, cfg: ExactDedupConfig, side: pl.DataFrame) -> pl.LazyFrame:
    return lf.with_columns(exact_hash=_hash(cfg)).join(side.lazy(), on=ORD, how="left", maintain_order="left")


STAGE = Stage(
    name="exact_dedup",
    prefix="exact",
    version=1,
    config=ExactDedupConfig,
    transform=transform,
    reduce=reduce,
    reads=VIEW_READS,
    writes={"exact_hash": pl.UInt64, "exact_dup_of": pl.String},
    doc=__doc__ or "",
)
