"""The `Stage` spec: what the runner needs to know about a stage module."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import polars as pl


@dataclass(frozen=True, slots=True, kw_only=True)
class Stage:
    """A stage appends the columns in `writes` to every row; it never drops or reorders rows.

    `transform(lf, cfg)` must be row-local (no filter, sort, group_by, over, collect), so its output
    cannot depend on how rows are partitioned.
    """

    name: str
    prefix: str
    version: int
    config: type
    transform: Callable[..., pl.LazyFrame]
    reads: tuple[str, ...]
    writes: Mapping[str, pl.DataType]
    doc: str = field(default="")

    def default_config(self) -> Any:
        return self.config()
