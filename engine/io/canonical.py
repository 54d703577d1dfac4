"""Finish converted rows as canonical records: stable ids, meta of unknown fields, the union schema."""

from __future__ import annotations

import polars as pl

from engine.schema import dataset_polars_schema
from engine.stages.hash_kernels import xxh64_pair_hex

ID_FIELDS: dict[str, tuple[str, ...]] = {
    "sft": ("instruction", "input", "response", "system", "history"),
    "chat": ("messages", "tools", "system"),
    "dpo": ("prompt", "chosen", "rejected", "system", "history"),
    "kto": ("prompt", "completion", "label", "system", "history"),
    "rlvr": ("problem", "solution", "answer"),
    "text": ("text",),
}


def _key_part(name: str, dtype: pl.DataType) -> pl.Expr:
    col = pl.col(name)
    if isinstance(dtype, pl.List):
        turn = pl.concat_str(
            pl.element().struct.field("role").fill_null(""),
            pl.lit("\x1e"),
            pl.element().struct.field("content").fill_null(""),
            pl.lit("\x1e"),
            pl.element().struct.field("tool_calls").fill_null(""),
        )
        return col.list.eval(turn).list.join("\x1d").fill_null("")
    return col.cast(pl.String).fill_null("")


def content_key(df: pl.DataFrame, kind: str) -> pl.Expr:
    """The text an id hashes: the kind and its canonical fields, null and '' alike, unit-separated."""
    parts = [_key_part(f, df.schema[f]) for f in ID_FIELDS[kind]]
    return pl.concat_str([pl.lit(kind), *parts], separator="\x1f")


def hash_ids(keys: pl.Series) -> pl.Series:
    """32 hex chars: xxh64 of the key with seed 0, then with seed 1 (128 bits: no collisions at 10^9 rows).

    Both hashes come from one sweep over the key bytes (`xxh64_pair_hex`), hex-encoded in the kernel.
    """
    ids = pl.from_arrow(xxh64_pair_hex(keys.to_arrow()))
    assert isinstance(ids, pl.Series)
    return ids.alias("id")


def load_id_kernel() -> None:
    """Load the id kernel from numba's cache (its first call costs ~0.3 s of CPU), e.g. on a side thread."""
    hash_ids(pl.Series([""]))


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
) -> pl.DataFrame:
    """Converted rows (kind fields, `_row`, `_line`) -> frame in the dataset schema."""
    schema = dataset_polars_schema()
    if unknown:
        meta = src.select("_row", meta=meta_json(src, unknown))
        conv = conv.join(meta, on="_row", how="left", maintain_order="left")
    else:
        conv = conv.with_columns(meta=pl.lit(None, pl.String))
    ids = hash_ids(conv.select(content_key(conv, kind)).to_series())
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
