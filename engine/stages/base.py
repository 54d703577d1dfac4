"""The `Stage` spec: what the runner needs to know about a stage module."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

ORD = "_ord"

SCRATCH: ContextVar[Path | None] = ContextVar("stage_scratch", default=None)
"""Set by the runner while it computes one partition of a `chunked` stage: a local (or shared) directory
where the stage may keep each finished chunk, so a run killed mid-partition resumes at the last chunk,
on whichever engine. The runner removes it once the stage is complete; None on object storage."""
"""The global row ordinal a reduce stage's side table is keyed by (UInt32: the row's position in the dataset)."""


@dataclass(frozen=True, slots=True)
class Resources:
    """What one partition task of a stage needs; a distributed engine schedules it where these are free.

    `gpus` with `gpu_optional` asks for a GPU where the cluster has one and runs on CPUs where it has
    none (IFD). `memory_mb` 0 reserves nothing. The local runner ignores these: it runs one partition
    at a time with every core.
    """

    cpus: float = 1
    gpus: float = 0
    memory_mb: int = 0
    gpu_optional: bool = False


def default_resources(cfg: Any) -> Resources:
    del cfg
    return Resources()


@dataclass(frozen=True, slots=True, kw_only=True)
class Stage:
    """A stage appends the columns in `writes` to every row; it never drops or reorders rows.

    `transform(lf, cfg)` must be row-local (no filter, sort, group_by, over, collect), so its output
    cannot depend on how rows are partitioned.

    A global stage (near-dedup, percentiles) also has `reduce(lf_all, cfg) -> DataFrame`: it gets every
    partition as one LazyFrame with a global row ordinal `_ord` (see `ORD`), selects only the narrow
    columns it needs, and returns a small side table keyed by `_ord`. The runner stores it once and
    calls `transform(lf, cfg, side)` per partition, where `lf` carries the same `_ord`. Rows are keyed
    by ordinal, not by `id`, because exact duplicates share an id by design. The ordinal depends only on
    row order, never on partition sizes. `requires` names stages whose columns `reads` needs.
    `resources(cfg)` says what one partition task needs on a cluster (see `Resources`). A `chunked`
    stage reads `SCRATCH` to keep finished chunks of a slow partition. `kernels` names the numba kernels
    it calls, in the order it first calls them: the runner loads their cached machine code on a side
    thread while it reads the stage's input (`numba_registries.preload`).
    """

    name: str
    prefix: str
    version: int
    config: type
    transform: Callable[..., pl.LazyFrame]
    reads: tuple[str, ...]
    writes: Mapping[str, pl.DataType]
    doc: str = field(default="")
    reduce: Callable[..., pl.DataFrame] | None = None
    requires: tuple[str, ...] = ()
    extra_prefixes: tuple[str, ...] = ()
    resources: Callable[[Any], Resources] = default_resources
    chunked: bool = False
    kernels: tuple[Any, ...] = ()

    def default_config(self) -> Any:
        return self.config()

    @property
    def prefixes(self) -> tuple[str, ...]:
        """Every column this stage writes starts with one of these plus an underscore."""
        return (self.prefix, *self.extra_prefixes)
