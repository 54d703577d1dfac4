"""Train/valid/test assignment by a hash of `id`, the same rule as `queries/split.sql`.

A row's split depends only on its own id, so adding rows never moves an existing row to another
split, and a selection that already carries a `split` column keeps it.
"""

from __future__ import annotations

import polars as pl

from engine.errors import ConfigError, SchemaError

SPLITS: tuple[str, ...] = ("train", "valid", "test")


def check_fractions(train: float, valid: float) -> None:
    """Fractions are shares of [0, 1): train first, then valid, test takes the rest."""
    if not (0 < train <= 1 and 0 <= valid <= 1 and train + valid <= 1 + 1e-12):
        msg = f"--train-frac {train} --valid-frac {valid}: expected 0 < train <= 1, 0 <= valid and train + valid <= 1"
        raise ConfigError(msg)


def hash_unit() -> pl.Expr:
    """The first 8 hex digits of `id` as an integer over 2**32: a uniform value in [0, 1)."""
    return pl.col("id").str.slice(0, 8).str.to_integer(base=16).cast(pl.Float64) / float(2**32)


def split_expr(train: float = 0.9, valid: float = 0.05) -> pl.Expr:
    """'train' where u < train, 'valid' where u < train + valid, else 'test'."""
    u = hash_unit()
    return (
        pl.when(u < train)
        .then(pl.lit("train"))
        .when(u < train + valid)
        .then(pl.lit("valid"))
        .otherwise(pl.lit("test"))
        .alias("split")
    )


def with_split(lf: pl.LazyFrame, *, train: float = 0.9, valid: float = 0.05, where: str = "") -> pl.LazyFrame:
    """Keep an existing `split` column (checking its values), else compute it from `id`."""
    check_fractions(train, valid)
    if "split" not in lf.collect_schema().names():
        return lf.with_columns(split_expr(train, valid))
    bad = lf.filter(~pl.col("split").is_in(list(SPLITS))).select(pl.col("split").first(), pl.len()).collect()
    if bad["len"][0]:
        msg = f"{where}: column 'split': {bad['len'][0]} rows have {bad['split'][0]!r}; expected train|valid|test"
        raise SchemaError(msg)
    return lf
