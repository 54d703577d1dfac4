"""Test stages for the Ray runner: one whose first task dies (os._exit, as a crashed or OOM-killed worker
does) so Ray must retry it, and one slow enough that a test can kill the driver mid-run."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from engine.stages.base import Stage


@dataclass(frozen=True, slots=True, kw_only=True)
class FlakyConfig:
    marker: str = ""  # the first task to create this file dies; every later task (the retry too) runs


def transform(lf: pl.LazyFrame, cfg: FlakyConfig) -> pl.LazyFrame:
    if cfg.marker:
        try:
            fd = os.open(Path(cfg.marker), os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            pass
        else:
            os.write(fd, str(os.getpid()).encode())
            os.close(fd)
            os._exit(1)
    return lf.with_columns(flaky_words=pl.col("problem").str.split(" ").list.len().cast(pl.UInt32))


STAGE = Stage(
    name="flaky",
    prefix="flaky",
    version=1,
    config=FlakyConfig,
    transform=transform,
    reads=("problem",),
    writes={"flaky_words": pl.UInt32},
)


@dataclass(frozen=True, slots=True, kw_only=True)
class SlowConfig:
    seconds: float = 0.5  # per partition, so a test can kill the driver while tasks are in flight


def slow_transform(lf: pl.LazyFrame, cfg: SlowConfig) -> pl.LazyFrame:
    time.sleep(cfg.seconds)
    return lf.with_columns(slow_chars=pl.col("problem").str.len_chars().cast(pl.UInt32))


SLOW = Stage(
    name="slow",
    prefix="slow",
    version=1,
    config=SlowConfig,
    transform=slow_transform,
    reads=("problem",),
    writes={"slow_chars": pl.UInt32},
)
