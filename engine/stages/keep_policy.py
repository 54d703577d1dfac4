"""Which member of a duplicate group is kept: `first` (smallest id), `longest`, or `score:COL` (highest).

Ties, and rows with a null score, fall back to the smallest id and then the earliest row, so the
choice never depends on how rows are partitioned.
"""

from __future__ import annotations

import polars as pl

from engine.errors import ConfigError, SchemaError, did_you_mean
from engine.stages.base import ORD
from engine.stages.dedup_text import raw_text

POLICIES = "first | longest | score:COL"


def check_policy(keep: str) -> None:
    if keep in ("first", "longest") or (keep.startswith("score:") and len(keep) > len("score:")):
        return
    msg = f"keep: expected {POLICIES}, got {keep!r}"
    raise ConfigError(msg)


def score_column(keep: str) -> str | None:
    return keep.removeprefix("score:") if keep.startswith("score:") else None


def check_score_column(lf: pl.LazyFrame, keep: str) -> None:
    """A `score:COL` policy needs COL in the dataset: say which stage to run instead of a Polars trace."""
    col = score_column(keep)
    if col is None:
        return
    names = lf.collect_schema().names()
    if col not in names:
        msg = (
            f"keep={keep!r}: no column {col!r} is visible to this stage{did_you_mean(col, names)}; "
            "run the stage that adds it first (a stage sees the columns of stages first run before it)"
        )
        raise SchemaError(msg)


def rank_expr(keep: str, fields: tuple[str, ...]) -> pl.Expr:
    """The value ordered descending to pick the kept row (a constant for `first`)."""
    if keep == "longest":
        return raw_text(fields).str.len_chars().fill_null(0).cast(pl.Float64)
    col = score_column(keep)
    if col is not None:
        return pl.col(col).cast(pl.Float64)
    return pl.lit(0.0)


def kept_per_group(members: pl.DataFrame, group: str) -> pl.DataFrame:
    """One row per group with the kept member's ordinal and id.

    `members` has columns `group`, ORD, `id` and `_rank` (higher is better; nulls lose).
    """
    ranked = members.sort(["_rank", "id", ORD], descending=[True, False, False], nulls_last=True)
    return ranked.group_by(group, maintain_order=True).agg(keep_ord=pl.first(ORD), keep_id=pl.first("id"))
