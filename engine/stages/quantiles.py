"""Exact quantiles of one float column from narrow passes that split across partitions.

Each value has an order-preserving 64-bit key (its IEEE-754 bits, sign-flipped). Pass 1 counts rows per
16-bit key prefix (plus the nulls); the counts say which prefix holds each wanted rank and its rank in
there. While the prefixes that matter still hold many rows, the next pass counts only their rows by a
16-bit-longer prefix. Once they hold few (`MAX_VALUES`), a last pass returns just their values, and
sorting those gives the exact order statistics. They are interpolated as Polars'
`quantile(q, interpolation="linear")` does (nulls counted first, as Polars places them), to the same
float. Every pass is a per-partition map whose small outputs add up, so a cluster runs them as tasks
and the driver holds counts and at most `MAX_VALUES` values whatever the row count. On one machine the
same loop runs each pass over the whole column: the P = 1 case.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import polars as pl

STEP = 16  # key bits added per counting pass
MAX_VALUES = 1 << 16  # fetch values once the wanted prefixes hold at most this many rows
_SIGN = np.uint64(1 << 63)

CountPass = Callable[[int, Sequence[int] | None], pl.DataFrame]
"""(bits, within) -> (prefix, n) over every partition, for rows whose (bits - STEP)-bit prefix is in `within`."""
ValuePass = Callable[[int, Sequence[int]], pl.DataFrame]
"""(bits, prefixes) -> (value, prefix) over every partition, for rows whose `bits`-bit prefix is in `prefixes`."""


def _column(lf: pl.LazyFrame, col: str) -> pl.Series:
    return lf.select(pl.col(col).cast(pl.Float64)).collect()[col]


def _keys(x: np.ndarray) -> np.ndarray:
    """The order-preserving key: every bit flipped for negatives, the sign bit set for the rest."""
    bits = x.view(np.uint64)
    return np.where(bits >= _SIGN, ~bits, bits | _SIGN)


def _prefix(keys: np.ndarray, bits: int) -> np.ndarray:
    return keys >> np.uint64(64 - bits)


def _within(keys: np.ndarray, bits: int, within: Sequence[int] | None) -> np.ndarray:
    if within is None:
        return keys
    return keys[np.isin(_prefix(keys, bits - STEP), np.asarray(within, dtype=np.uint64))]


def prefix_counts(lf: pl.LazyFrame, col: str, bits: int, within: Sequence[int] | None) -> pl.DataFrame:
    """A counting pass over some rows: (prefix, n) of non-empty `bits`-bit prefixes; the first pass adds (null, nulls)."""
    s = _column(lf, col)
    keys = _within(_keys(s.drop_nulls().to_numpy()), bits, within)
    prefixes, counts = np.unique(_prefix(keys, bits), return_counts=True)
    frame = pl.DataFrame(
        {"prefix": prefixes, "n": counts.astype(np.uint64)}, schema={"prefix": pl.UInt64, "n": pl.UInt64}
    )
    if within is None:
        nulls = pl.DataFrame({"prefix": [None], "n": [s.null_count()]}, schema=frame.schema)
        frame = pl.concat([nulls, frame])
    return frame


def values_in(lf: pl.LazyFrame, col: str, bits: int, prefixes: Sequence[int]) -> pl.DataFrame:
    """The value pass over some rows: (value, prefix) of the rows whose `bits`-bit prefix is in `prefixes`."""
    x = _column(lf, col).drop_nulls().to_numpy()
    p = _prefix(_keys(x), bits)
    keep = np.isin(p, np.asarray(prefixes, dtype=np.uint64))
    return pl.DataFrame({"value": x[keep], "prefix": p[keep]}, schema={"value": pl.Float64, "prefix": pl.UInt64})


def _locate(counts: pl.DataFrame, targets: dict[int, int]) -> dict[int, tuple[int, int]]:
    """For each (global rank -> rank among `counts`' rows), the prefix holding it and its rank in there."""
    merged = counts.group_by("prefix").agg(pl.col("n").sum()).sort("prefix", nulls_last=False)
    ends = np.cumsum(merged["n"].to_numpy())
    prefixes = merged["prefix"].to_list()
    out = {}
    for rank, local in targets.items():
        i = int(np.searchsorted(ends, local, side="right"))
        out[rank] = (prefixes[i], local - (int(ends[i - 1]) if i else 0))
    return out


def _from_key(key: int) -> float:
    k = np.uint64(key)
    return float((k ^ _SIGN if k >= _SIGN else ~k).view(np.float64))


def solve(
    qs: Sequence[float], count_pass: CountPass, value_pass: ValuePass, *, max_values: int = MAX_VALUES
) -> list[float | None]:
    """The quantiles `qs` of the column the passes read; see the module docstring."""
    first = count_pass(STEP, None)
    nulls = int(first.filter(pl.col("prefix").is_null())["n"].sum())
    n = int(first["n"].sum()) - nulls
    if n == 0:
        return [None] * len(qs)
    spots = [(q, nulls + (n - 1) * q) for q in qs]  # Polars' positions: nulls come first
    ranks = sorted({r for _, pos in spots for r in (int(np.floor(pos)), int(np.ceil(pos)))})
    where = _locate(first, {r: r for r in ranks})  # rank -> (prefix, rank in prefix)
    bits, counts = STEP, first.drop_nulls("prefix")
    while bits < 64:
        wanted = sorted({p for p, _ in where.values()})
        held = counts.filter(pl.col("prefix").is_in(pl.Series(wanted, dtype=pl.UInt64).implode()))
        if int(held["n"].sum()) <= max_values:
            break
        bits, counts = bits + STEP, count_pass(bits + STEP, wanted)
        parent = pl.col("prefix") // (1 << STEP)
        where = {
            r: _locate(counts.filter(parent == p).select("prefix", "n"), {r: local})[r]
            for r, (p, local) in where.items()
        }
    if bits == 64:  # a whole key is one float: ties need no values at all
        sorted_by = {}
    else:
        values = value_pass(bits, sorted({p for p, _ in where.values()}))
        sorted_by = {int(p): np.sort(g["value"].to_numpy()) for (p,), g in values.group_by("prefix")}

    def nth(rank: int) -> float:
        p, local = where[rank]
        return _from_key(p) if bits == 64 else float(sorted_by[p][local])

    out: list[float | None] = []
    for _, pos in spots:
        lo, hi = int(np.floor(pos)), int(np.ceil(pos))
        a = nth(lo)
        b = a if lo == hi else nth(hi)
        # Polars' formula, so the same float; equal neighbours give themselves (two infinities: not NaN)
        out.append(a if a == b else (pos - lo) * (b - a) + a)
    return out


def exact_quantiles(
    lf: pl.LazyFrame, col: str, qs: Sequence[float], *, max_values: int = MAX_VALUES
) -> list[float | None]:
    """Every pass over `lf` on this machine: the P = 1 case of the distributed computation."""
    return solve(
        qs,
        lambda bits, within: prefix_counts(lf, col, bits, within),
        lambda bits, prefixes: values_in(lf, col, bits, prefixes),
        max_values=max_values,
    )
