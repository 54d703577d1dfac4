"""Perplexity buckets, CCNet style: head/middle/tail by global percentiles of kenlm_ppl. Adds kenlm_bucket.

`kenlm_bucket` (String): "head" when `kenlm_ppl` <= the `cuts[0]` percentile of the whole dataset,
"middle" when <= the `cuts[1]` percentile, else "tail"; null where `kenlm_ppl` is null. Defaults
30/60 as in CCNet (Wenzek et al. 2020), which splits each language's documents the same way. The
percentiles are linear-interpolated quantiles over every non-null `kenlm_ppl` (Polars' `quantile`), so
`head` is at least 30% of the scored rows. Runs after the `kenlm` stage.

Why a stage of its own: the percentiles need every row's perplexity, and the expensive scoring must
stay row-local and resumable per partition. So `kenlm` appends `kenlm_ppl` partition by partition, and
this stage's global step reads only that narrow column of all partitions (never the text) and stores
the two cut points in its side table; `transform` compares each row with them. The cut points are
exact (`engine.stages.quantiles`: bucket counts, then only the values of the buckets that hold the two
ranks), which a Ray run splits into per-partition tasks.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from engine.errors import ConfigError
from engine.stages.base import ORD, Stage
from engine.stages.quantiles import exact_quantiles

BUCKETS = ("head", "middle", "tail")


@dataclass(frozen=True, slots=True, kw_only=True)
class KenlmBucketConfig:
    cuts: tuple[float, float] = (30.0, 60.0)  # percentiles of kenlm_ppl: head <= cuts[0] < middle <= cuts[1] < tail

    def __post_init__(self) -> None:
        if len(self.cuts) != 2 or not 0 < self.cuts[0] < self.cuts[1] < 100:
            msg = f"kenlm_bucket: cuts must be two percentiles with 0 < low < high < 100, got {self.cuts!r}"
            raise ConfigError(msg)


def fractions(cfg: KenlmBucketConfig) -> tuple[float, float]:
    lo, hi = cfg.cuts
    return lo / 100, hi / 100


def side_table(cuts: list[float | None]) -> pl.DataFrame:
    """The two cut points as the side table (one row, keyed by `_ord` 0 as the runner requires)."""
    schema = {ORD: pl.UInt32, "_kenlm_lo": pl.Float64, "_kenlm_hi": pl.Float64}
    return pl.DataFrame({ORD: [0], "_kenlm_lo": [cuts[0]], "_kenlm_hi": [cuts[1]]}, schema=schema)


def reduce(lf: pl.LazyFrame, cfg: KenlmBucketConfig) -> pl.DataFrame:
    """The two cut points over every row's kenlm_ppl: exact, by the two passes a cluster splits into tasks."""
    return side_table(exact_quantiles(lf, "kenlm_ppl", fractions(cfg)))


def transform(lf: pl.LazyFrame, cfg: KenlmBucketConfig, side: pl.DataFrame) -> pl.LazyFrame:
    del cfg  # the cut points in `side` already follow it
    lo, hi = side["_kenlm_lo"][0], side["_kenlm_hi"][0]
    ppl = pl.col("kenlm_ppl")
    if lo is None:  # no row has a perplexity
        return lf.with_columns(kenlm_bucket=pl.lit(None, pl.String))
    bucket = (
        pl.when(ppl.is_null())
        .then(pl.lit(None, pl.String))
        .when(ppl <= lo)
        .then(pl.lit("head"))
        .when(ppl <= hi)
        .then(pl.lit("middle"))
        .otherwise(pl.lit("tail"))
    )
    return lf.with_columns(kenlm_bucket=bucket)


STAGE = Stage(
    name="kenlm_bucket",
    prefix="kenlm",
    version=1,
    config=KenlmBucketConfig,
    transform=transform,
    reduce=reduce,
    requires=("kenlm",),
    reads=("kenlm_ppl",),
    writes={"kenlm_bucket": pl.String},
    doc=__doc__ or "",
)
