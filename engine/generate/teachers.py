"""Teachers from `NAME=MODEL@BASE_URL[:SHARE]` and their deterministic share of the rows.

A row's teacher depends only on its id: hex digits 16..24 of the id (the seed-1 half of the content
hash, independent of the digits `split` uses) as a number in [0, 1), placed on the cumulative shares.
Adding rows never moves an existing row to another teacher.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from urllib.parse import urlsplit

import polars as pl

from engine.errors import ConfigError
from engine.generate.client import Endpoint

_SHARE = re.compile(r"\d+(?:\.\d+)?")


def _split_share(url: str) -> tuple[str, float | None]:
    """`http://h:8080/v1:40` -> (url, 40); a bare port (`http://h:8080`) is not a share."""
    head, sep, tail = url.rpartition(":")
    if not sep or not _SHARE.fullmatch(tail) or "//" not in head:
        return url, None
    try:
        parts = urlsplit(head)
        has_port = parts.port is not None
    except ValueError:
        return url, None
    if parts.netloc and (parts.path or has_port):
        return head, float(tail)
    return url, None


def parse_endpoint(spec: str, *, option: str = "--teacher", name: str | None = None) -> tuple[Endpoint, float | None]:
    """`NAME=MODEL@BASE_URL[:SHARE]` (NAME optional when `name` is given) -> (Endpoint, share)."""
    example = f"{option} big=qwen2.5-72b@http://127.0.0.1:8000/v1:40"
    label, eq, rest = spec.partition("=")
    if not eq or "@" in label:
        label, rest = (name or ""), spec
    model, at, url = rest.rpartition("@")
    if not label.strip() or not at or not model.strip() or not url.startswith(("http://", "https://")):
        msg = f"{option} {spec!r}: expected NAME=MODEL@BASE_URL[:SHARE], e.g. {example}"
        raise ConfigError(msg)
    url, share = _split_share(url)
    return Endpoint(name=label.strip(), model=model.strip(), base_url=url.rstrip("/")), share


def parse_teachers(specs: Sequence[str]) -> tuple[tuple[Endpoint, ...], tuple[float, ...]]:
    """Teachers and their shares, normalised to sum to 1 (equal when none is given)."""
    if not specs:
        msg = "generate: give at least one --teacher NAME=MODEL@BASE_URL[:SHARE]"
        raise ConfigError(msg)
    parsed = [parse_endpoint(s) for s in specs]
    names = [e.name for e, _ in parsed]
    if len(set(names)) != len(names):
        dup = next(n for n in names if names.count(n) > 1)
        msg = f"--teacher: the name {dup!r} is given twice; each teacher needs its own NAME"
        raise ConfigError(msg)
    shares = [s for _, s in parsed]
    if all(s is None for s in shares):
        shares = [1.0] * len(parsed)
    elif any(s is None for s in shares) or not all(s and s > 0 for s in shares):
        msg = f"--teacher: give a positive :SHARE to every teacher or to none, got {[s for s in shares]}"
        raise ConfigError(msg)
    total = sum(s for s in shares if s)
    return tuple(e for e, _ in parsed), tuple((s or 0) / total for s in shares)


def assign_teachers(ids: pl.Expr, shares: Sequence[float]) -> pl.Expr:
    """Index of each row's teacher (UInt32), from its id; see the module docstring."""
    u = ids.str.slice(16, 8).str.to_integer(base=16, strict=False).fill_null(0).cast(pl.Float64) / 2.0**32
    expr = pl.lit(len(shares) - 1, pl.UInt32)
    cum = 0.0
    bounds = []
    for s in shares[:-1]:
        cum += s
        bounds.append(cum)
    for i, b in reversed(list(enumerate(bounds))):
        expr = pl.when(u < b).then(pl.lit(i, pl.UInt32)).otherwise(expr)
    return expr
