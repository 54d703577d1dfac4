"""Finish converted rows as canonical records: stable ids, meta of unknown fields, the union schema."""

from __future__ import annotations

import polars as pl

from engine.schema import dataset_polars_schema
from engine.store.ids import content_key, hash_ids, load_id_kernel  # noqa: F401  (ingest imports them from here)


def meta_json(df: pl.DataFrame, unknown: list[str]) -> pl.Expr:
    """JSON object of the unknown fields that are not null in this row; null when none are."""
    pieces = [
        pl.when(pl.col(c).is_not_null()).then(
            pl.struct(pl.col(c)).struct.json_encode().str.strip_prefix("{").str.strip_suffix("}")
        )
        for c in unknown
        if df.schema[c] != pl.Null
    ]
    if not pieces:
        return pl.lit(None, pl.String)
    body = pl.concat_str(pieces, separator=",", ignore_nulls=True)
    return pl.when(body != "").then(pl.concat_str(pl.lit("{"), body, pl.lit("}")))


def finalize(
    conv: pl.DataFrame,
    src: pl.DataFrame,
    unknown: list[str],
    *,
    kind: str,
    source: str,
    domain: str | None,
    src_file: str,
    hashed: bool = True,
) -> pl.DataFrame:
    """Converted rows (kind fields, `_row`, `_line`) -> frame in the dataset schema.

    `hashed=False` leaves each row's content key in `id` for `hash_id_column` to hash later (ingest does
    that while numba loads the id kernel).
    """
    schema = dataset_polars_schema()
    if unknown:
        meta = src.select("_row", meta=meta_json(src, unknown))
        conv = conv.join(meta, on="_row", how="left", maintain_order="left")
    else:
        conv = conv.with_columns(meta=pl.lit(None, pl.String))
    keys = conv.select(content_key(conv, kind)).to_series()
    ids = hash_ids(keys) if hashed else keys.alias("id")
    conv = conv.with_columns(
        ids,
        kind=pl.lit(kind),
        source=pl.lit(source),
        domain=pl.lit(domain, pl.String),
        src_file=pl.lit(src_file),
        src_line=pl.col("_line").cast(pl.Int64),
    )
    return conv.select(
        [pl.col(n).cast(t) if n in conv.columns else pl.lit(None, t).alias(n) for n, t in schema.items()]
    )


def hash_id_column(frame: pl.DataFrame) -> pl.DataFrame:
    """A frame from `finalize(..., hashed=False)` with its content keys in `id` replaced by the ids."""
    return frame.with_columns(hash_ids(frame["id"]))
