"""Near-duplicate clusters from MinHash signatures: LSH buckets, verified pairs, connected components.

Adds `mh_cluster` (the ordinal of the cluster's first row; a row alone is its own cluster),
`mh_cluster_size` and `dup_keep` (false on every member but the one the `keep` policy picks). Flags,
never drops. Reads `mh_band` (or `mh_sig`) from the `minhash` stage.

Bands x rows come from the threshold the way datasketch's MinHashLSH picks them: the pair that
minimises fp_weight * P(false positive) + fn_weight * P(false negative), both integrated over the
S-curve 1 - (1 - s^r)^b. The default weights lean hard towards recall (0.02/0.98: 17 x 7 bands at
threshold 0.8 catch a J = 0.8 pair with probability 0.98, where datasketch's 9 x 13 catches 0.40)
because every candidate pair is then verified, by default exactly: two rows join when the Jaccard of
their actual shingle sets is >= threshold. `verify = "estimate"` uses the Jaccard estimated from the
signatures instead (std ~0.035 at J = 0.8 with 128 permutations, so borderline pairs flip);
`verify = "none"` joins every pair sharing a bucket, as text-dedup does.

The global step reads no text for rows that share no bucket: it reads each row's band hashes (the
minhash stage's `mh_band`, streamed partition by partition), keeps only hashes that occur twice, then
loads the dedup text of those candidate rows alone to build their shingle sets, and runs a numba
union-find over the buckets. The shingling options are the minhash stage's (this config extends
it); a few candidates' band hashes are recomputed from their text to check they match the stored ones.

The global step is written as map/reduce (`band_rows` per partition, `reduce_shard` per shard of band
hashes, `finish` over every shard's component edges; see `engine.stages.shard_reduce`); `reduce` is
the one-shard case, and the Ray runner runs the same three functions as tasks. The side table also
keeps the id and text of the ~30 rows the dedup summary shows (`dedup_summary.example_rows`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar, Literal

import numpy as np
import polars as pl

from engine.errors import ConfigError
from engine.stages.base import ORD, Stage
from engine.stages.dedup_kernels import (
    VERIFY_ESTIMATE,
    VERIFY_EXACT,
    VERIFY_NONE,
    band_hashes,
    cluster_buckets,
    repeated_groups,
    shingle_sets,
    union_pairs,
)
from engine.stages.dedup_summary import example_rows
from engine.stages.dedup_text import raw_text
from engine.stages.keep_policy import check_policy, check_score_column, kept_per_group, rank_expr
from engine.stages.minhash import MinhashConfig, banding, exact_sets, sketch
from engine.stages.string_views import owned_strings
from engine.stages.views import VIEW_READS

_MODES = {"none": VERIFY_NONE, "estimate": VERIFY_ESTIMATE, "exact": VERIFY_EXACT}


@dataclass(frozen=True, slots=True, kw_only=True)
class NearDedupConfig(MinhashConfig):
    """The minhash options (shingling, threshold and banding: both stages need the same) plus how
    candidate pairs are verified and which member of a cluster is kept."""

    stage_name: ClassVar[str] = "near_dedup"
    verify: Literal["exact", "estimate", "none"] = "exact"
    keep: str = "first"

    def __post_init__(self) -> None:
        MinhashConfig.__post_init__(self)
        check_policy(self.keep)


def band_rows(lf: pl.LazyFrame, cfg: NearDedupConfig) -> pl.DataFrame:
    """The map half: one (`_ord`, `_band`) row per row and band, `_band` the band's 64-bit hash.

    Each band hash is seeded by its band index, so one flat column holds every band's buckets and
    rows sharing a `_band` value share a bucket. Reads `mh_band`, the band hashes the minhash stage
    wrote (8 bytes a band, a quarter of `mh_sig`'s 512 bytes at 17 x 7); when that column holds
    another number of bands, hashes `mh_sig` instead. A shard of these rows split by `_band` holds
    whole buckets.
    """
    bands, rows = banding(cfg)
    stored = lf.collect_schema().get("mh_band")
    if isinstance(stored, pl.Array) and stored.size == bands:
        band = pl.col("mh_band")
    else:

        def hash_bands(s: pl.Series) -> pl.Series:
            return pl.Series(s.name, band_hashes(s.to_numpy(), bands, rows), dtype=pl.Array(pl.UInt64, bands))

        band = pl.col("mh_sig").map_batches(hash_bands, pl.Array(pl.UInt64, bands), is_elementwise=True)
    hashed = lf.select(ORD, band=band).collect(engine="streaming")
    ords = np.repeat(hashed[ORD].to_numpy(), bands)
    return pl.DataFrame({ORD: ords, "_band": hashed["band"].to_numpy().ravel()}, schema=BAND_SCHEMA)


BAND_SCHEMA = {ORD: pl.UInt32, "_band": pl.UInt64}
EDGE_SCHEMA = {ORD: pl.UInt32, "_root": pl.UInt32, "id": pl.String, "_rank": pl.Float64}


def buckets(banded: pl.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """LSH buckets with two or more rows: (member ordinals bucket after bucket, bucket start offsets)."""
    return repeated_groups(banded["_band"].to_numpy(), banded[ORD].to_numpy())


def _check_shingling(rows: pl.DataFrame, banded: pl.DataFrame, cfg: NearDedupConfig) -> None:
    """The signatures must come from the shingling this stage verifies with: recompute a few rows' band
    hashes from their text; every band hash of theirs in `banded` must be among them (a shard holds
    some of a row's bands). Checking bands, not `mh_sig`, keeps the signatures out of the text scan."""
    if not rows.height:
        return
    bands, _ = banding(cfg)
    fresh = sketch(rows["_raw"], cfg)[1]
    ords = rows[ORD].to_numpy()
    recomputed = pl.DataFrame({ORD: np.repeat(ords, bands), "_band": fresh.ravel()}, schema=BAND_SCHEMA)
    stored = banded.filter(pl.col(ORD).is_in(pl.Series(ords).implode()))
    if stored.join(recomputed, on=[ORD, "_band"], how="anti").height:
        msg = (
            "near_dedup: the stored mh_sig / mh_band were computed with other minhash options than "
            "near_dedup's (num_perm, ngram, unit, seed, fields, normalisation, threshold, bands x rows); give "
            "both stages the same options"
        )
        raise ConfigError(msg)


RowsByOrd = Callable[[np.ndarray], pl.LazyFrame]
"""Given sorted ordinals, a LazyFrame of those rows (with `_ord` and every column the dataset has)."""


def rows_in(lf: pl.LazyFrame) -> RowsByOrd:
    """Rows by ordinal from one LazyFrame that carries `_ord` (the one-machine case)."""
    return lambda ords: lf.filter(pl.col(ORD).is_in(pl.Series(ords).implode()))


def reduce_shard(banded: pl.DataFrame, cfg: NearDedupConfig, rows_by_ord: RowsByOrd) -> pl.DataFrame:
    """The reduce half: components of the buckets in `banded`, as edges (`_ord`, `_root`, `id`, `_rank`).

    Every pair within a bucket is verified, so the components depend only on which buckets are
    present: the union of two shards' components is the components of their union. Reads the text of
    candidate rows (rows in a bucket of two or more) only. Rows left alone are not returned.
    """
    return _components(banded, cfg, rows_by_ord)[0]


def _components(
    banded: pl.DataFrame, cfg: NearDedupConfig, rows_by_ord: RowsByOrd
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """`reduce_shard`'s edges, and the candidate rows it read (`_ord`, `id`, `_rank`, `_raw`)."""
    member_ords, starts = buckets(banded)
    candidates = np.unique(member_ords)
    if len(candidates) == 0:
        return pl.DataFrame(schema=EDGE_SCHEMA), pl.DataFrame(
            schema={ORD: pl.UInt32, "id": pl.String, "_raw": pl.String}
        )
    estimate = cfg.verify == "estimate"  # only the estimate reads the signatures (51 MB per 100K rows)
    # the strings are copied out of the pages they were read from: views would pin every partition's text
    cols = {"id": owned_strings(pl.col("id")), "_rank": rank_expr(cfg.keep, cfg.fields)}
    cols["_raw"] = owned_strings(raw_text(cfg.fields))
    if estimate:
        cols["mh_sig"] = pl.col("mh_sig")
    rows_of = rows_by_ord(candidates).select(ORD, **cols).collect(engine="streaming").sort(ORD)
    _check_shingling(rows_of.head(16), banded, cfg)
    sigs = rows_of["mh_sig"].to_numpy() if estimate else np.zeros((rows_of.height, 1), np.uint32)
    members = positions(rows_of[ORD].to_numpy(), member_ords)
    if cfg.verify == "exact":
        flat, set_starts, set_counts = exact_sets(rows_of["_raw"], cfg)
    else:
        flat, set_starts, set_counts = np.zeros(0, np.uint32), np.zeros(0, np.int64), np.zeros(len(rows_of), np.int64)
    parent, _checked = cluster_buckets(
        members, starts, cfg.threshold, _MODES[cfg.verify], sigs, flat, set_starts, set_counts
    )
    ords = rows_of[ORD].to_numpy()
    edges = rows_of.select(ORD, _root=pl.Series(ords[parent], dtype=pl.UInt32), id="id", _rank="_rank")
    return edges.filter(pl.len().over("_root") > 1).cast(EDGE_SCHEMA), rows_of  # type: ignore[arg-type]


def positions(nodes: np.ndarray, ords: np.ndarray) -> np.ndarray:
    """Where each of `ords` is in `nodes` (sorted, distinct, holding every one of them).

    A table by ordinal is ~10x faster than `np.searchsorted` for the ~120K bucket members of 100K rows;
    where the ordinals are sparse (a Ray shard of a large dataset) the table would outgrow the data, so
    it falls back to the binary search.
    """
    span = int(nodes[-1]) + 1 if len(nodes) else 0
    if span > 8 * (len(nodes) + len(ords)):
        return np.searchsorted(nodes, ords)
    at = np.empty(span, dtype=np.int64)
    at[nodes] = np.arange(len(nodes))
    return at[ords]


def finish(edges: pl.DataFrame, cfg: NearDedupConfig, rows_by_ord: RowsByOrd) -> pl.DataFrame:
    """The side table from every shard's edges (`_clusters`), with the summary's example rows, whose text
    is read through `rows_by_ord` (~30 rows)."""

    def texts_of(ords: np.ndarray) -> pl.DataFrame:
        return rows_by_ord(ords).select(ORD, "id", _raw=raw_text(cfg.fields)).collect()

    return example_rows(_clusters(edges), texts_of)


def _clusters(edges: pl.DataFrame) -> pl.DataFrame:
    """Merge the shards' components (a union-find over their edges) into the side table.

    A row may appear in several shards' edges; its cluster is the smallest ordinal connected to it,
    so the result does not depend on how buckets were split into shards (one shard: the local run).
    The kept row follows `_rank`, computed in the shards under the same policy.
    """
    if edges.is_empty():
        return pl.DataFrame(
            schema={ORD: pl.UInt32, "mh_cluster": pl.UInt32, "mh_cluster_size": pl.UInt32, "dup_keep": pl.Boolean}
        )
    rows_of = edges.unique(ORD, keep="first").sort(ORD)
    nodes = rows_of[ORD].to_numpy()
    a = positions(nodes, edges[ORD].to_numpy())
    b = positions(nodes, edges["_root"].to_numpy())
    parent = union_pairs(a, b, len(nodes))
    clustered = rows_of.select(ORD, "id", "_rank", mh_cluster=pl.Series(nodes[parent], dtype=pl.UInt32))
    clustered = clustered.with_columns(mh_cluster_size=pl.len().over("mh_cluster").cast(pl.UInt32))
    kept = kept_per_group(clustered, "mh_cluster")
    return (
        clustered.join(kept, on="mh_cluster", maintain_order="left")
        .select(ORD, "mh_cluster", "mh_cluster_size", dup_keep=pl.col(ORD) == pl.col("keep_ord"))
        .sort(ORD)
    )


def check_inputs(lf: pl.LazyFrame, cfg: NearDedupConfig) -> None:
    """Fail before any work when the keep column is missing or `mh_sig` has another width."""
    check_score_column(lf, cfg.keep)
    sig_type = lf.collect_schema()["mh_sig"]
    if not isinstance(sig_type, pl.Array) or sig_type.size != cfg.num_perm:
        msg = f"near_dedup: mh_sig is {sig_type}, but num_perm = {cfg.num_perm}; give minhash and near_dedup the same num_perm"
        raise ConfigError(msg)


def reduce(lf: pl.LazyFrame, cfg: NearDedupConfig) -> pl.DataFrame:
    """The global step on one machine: the map/reduce of `band_rows`, `reduce_shard`, `finish` with one
    shard; the example rows the dedup summary shows ride along (`dedup_summary.example_rows`)."""
    check_inputs(lf, cfg)
    edges, rows_of = _components(band_rows(lf, cfg), cfg, rows_in(lf))
    # the example rows' text comes from the candidates' rows in memory, not from a second read
    return example_rows(_clusters(edges), lambda ords: rows_of.filter(pl.col(ORD).is_in(pl.Series(ords).implode())))


def transform(lf: pl.LazyFrame, cfg: NearDedupConfig, side: pl.DataFrame) -> pl.LazyFrame:
    return lf.join(side.lazy(), on=ORD, how="left", maintain_order="left").with_columns(
        mh_cluster=pl.col("mh_cluster").fill_null(pl.col(ORD)),
        mh_cluster_size=pl.col("mh_cluster_size").fill_null(1),
        dup_keep=pl.col("dup_keep").fill_null(True),
    )


STAGE = Stage(
    name="near_dedup",
    prefix="mh",
    extra_prefixes=("dup",),
    version=2,
    config=NearDedupConfig,
    transform=transform,
    reduce=reduce,
    requires=("minhash",),
    reads=("mh_sig", *VIEW_READS),
    writes={"mh_cluster": pl.UInt32, "mh_cluster_size": pl.UInt32, "dup_keep": pl.Boolean},
    kernels=(repeated_groups, shingle_sets, cluster_buckets, union_pairs),
    doc=__doc__ or "",
)
