"""Stable row ids: a 128-bit xxhash of the kind and its canonical fields.

Ingest gives every row its id here, and a reviewed row that was edited gets its new id here too, so
the same content has the same id whichever way it arrived.
"""

from __future__ import annotations

import polars as pl

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
    """Load the id kernel from numba's cache (numba's set-up and the load cost ~0.1 s), e.g. on a side thread."""
    hash_ids(pl.Series([""]))
