"""Write an export directory atomically: files go to a hidden temp dir, renamed over `out` at the end.

A killed export leaves at most a `.NAME.tmp-PID` folder beside `out`, never a half-written `out`.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import polars as pl

from engine.errors import StoreError

LINE = "__line"


@contextmanager
def atomic_dir(out: Path, *, overwrite: bool) -> Iterator[Path]:
    """Yield a temp dir; on success it replaces `out` (kept as it was on any error)."""
    if out.exists() and not overwrite:
        msg = f"{out}: already exists; pass --overwrite to replace it or choose another --out"
        raise StoreError(msg)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = out.parent / f".{out.name}.old-{os.getpid()}"
    if out.exists():
        out.rename(old)
    tmp.rename(out)
    shutil.rmtree(old, ignore_errors=True)


def write_frame(lf: pl.LazyFrame, path: Path) -> None:
    """Stream `lf` to Parquet, JSON Lines, or raw lines when its one column is `__line`."""
    if path.suffix == ".parquet":
        lf.sink_parquet(path)
    elif lf.collect_schema().names() == [LINE]:
        # each line is complete JSON text: written as is, no CSV quoting
        lf.sink_csv(path, include_header=False, quote_style="never")
    else:
        lf.sink_ndjson(path)


def write_json(obj: Any, path: Path) -> None:
    path.write_text(json.dumps(obj, indent=2, ensure_ascii=False) + "\n")
