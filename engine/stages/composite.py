"""A composite quality score in [0, 1] from named dimension columns and weights; scores, never drops.

Adds:
- quality_composite (Float64 in [0, 1]): the weighted mean of the dimension values of the row, each first
  mapped linearly from its `ranges` entry (default [0, 1]) to [0, 1] and clipped. A dimension whose column
  the dataset lacks is skipped, and so is a null value in a row; the remaining weights are renormalised
  to sum to 1. Null when no dimension has a value.
- quality_dims (UInt8): how many dimensions contributed to the row's composite.

Config (a `[[stage]]` table in the pipeline file):
    [[stage]]
    name = "composite"
    weights = { factuality = 0.4, reasoning = 0.3, diversity = 0.3 }    # the default
    columns = { diversity = "heur_diversity", factuality = "judge_factuality" }   # default: the name itself
    ranges = { factuality = [1, 10] }                                   # a 1-10 judge score -> [0, 1]
On the command line: `--set weights=factuality=0.4,reasoning=0.3 --set columns=diversity=heur_diversity
--set ranges=factuality=1:10`. The defaults follow the composite most curation write-ups use when a
judge scores factuality and reasoning (0.4 / 0.3 / 0.3); which columns exist is read from the schema.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import polars as pl

from engine.errors import ConfigError
from engine.stages.base import Stage

DEFAULT_WEIGHTS = {"factuality": 0.4, "reasoning": 0.3, "diversity": 0.3}


def _pairs(name: str, value: Any) -> dict[str, Any]:
    """A TOML table, or `a=1,b=2` from `--set`, as a dict."""
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, str):
        out: dict[str, Any] = {}
        for item in filter(None, (p.strip() for p in value.split(","))):
            key, sep, val = item.partition("=")
            if not sep or not key.strip():
                msg = f"composite: {name}: expected NAME=VALUE pairs separated by commas, got {item!r}"
                raise ConfigError(msg)
            out[key.strip()] = val.strip()
        return out
    msg = f"composite: {name}: expected a table of name -> value, got {value!r}"
    raise ConfigError(msg)


def _number(name: str, value: Any) -> float:
    try:
        x = float(value)
    except (TypeError, ValueError):
        x = math.nan
    if not math.isfinite(x):
        msg = f"composite: {name}: expected a finite number, got {value!r}"
        raise ConfigError(msg)
    return x


@dataclass(frozen=True, slots=True, kw_only=True)
class CompositeConfig:
    """Dimension -> weight, dimension -> column, dimension -> (low, high) source range."""

    weights: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_WEIGHTS))
    columns: dict[str, str] = field(default_factory=dict)
    ranges: dict[str, tuple[float, float]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        weights = {k: _number(f"weights.{k}", v) for k, v in _pairs("weights", self.weights).items()}
        if not weights or any(w < 0 for w in weights.values()) or sum(weights.values()) <= 0:
            msg = f"composite: weights must be >= 0 with a positive sum, got {weights!r}"
            raise ConfigError(msg)
        columns = {k: str(v) for k, v in _pairs("columns", self.columns).items()}
        ranges: dict[str, tuple[float, float]] = {}
        for k, v in _pairs("ranges", self.ranges).items():
            lohi = v.split(":") if isinstance(v, str) else list(v)
            if len(lohi) != 2:
                msg = f"composite: ranges.{k}: expected [low, high] (or low:high), got {v!r}"
                raise ConfigError(msg)
            lo, hi = (_number(f"ranges.{k}", x) for x in lohi)
            if not hi > lo:
                msg = f"composite: ranges.{k}: high must be above low, got {v!r}"
                raise ConfigError(msg)
            ranges[k] = (lo, hi)
        for name, table in (("columns", columns), ("ranges", ranges)):
            unknown = sorted(set(table) - set(weights))
            if unknown:
                msg = f"composite: {name} names {unknown[0]!r}, which has no weight; weights has {sorted(weights)}"
                raise ConfigError(msg)
        object.__setattr__(self, "weights", dict(sorted(weights.items())))
        object.__setattr__(self, "columns", dict(sorted(columns.items())))
        object.__setattr__(self, "ranges", dict(sorted(ranges.items())))

    def column(self, dim: str) -> str:
        return self.columns.get(dim, dim)


def transform(lf: pl.LazyFrame, cfg: CompositeConfig) -> pl.LazyFrame:
    present = set(lf.collect_schema().names())
    num: list[pl.Expr] = [pl.lit(0.0)]
    den: list[pl.Expr] = [pl.lit(0.0)]
    dims: list[pl.Expr] = [pl.lit(0, pl.UInt8)]
    for dim, weight in cfg.weights.items():
        col = cfg.column(dim)
        if col not in present or weight == 0:
            continue  # a missing dimension is skipped; the other weights are renormalised
        lo, hi = cfg.ranges.get(dim, (0.0, 1.0))
        value = ((pl.col(col).cast(pl.Float64) - lo) / (hi - lo)).clip(0.0, 1.0)
        num.append((weight * value).fill_null(0.0).fill_nan(0.0))
        has = value.is_not_null() & value.is_not_nan()
        den.append(pl.when(has).then(weight).otherwise(0.0))
        dims.append(has.cast(pl.UInt8))
    total = pl.sum_horizontal(den)
    return lf.with_columns(
        quality_composite=pl.when(total > 0).then(pl.sum_horizontal(num) / total),
        quality_dims=pl.sum_horizontal(dims).cast(pl.UInt8),
    )


STAGE = Stage(
    name="composite",
    prefix="quality",
    version=1,
    config=CompositeConfig,
    transform=transform,
    reads=(),
    writes={"quality_composite": pl.Float64, "quality_dims": pl.UInt8},
    doc=__doc__ or "",
)
