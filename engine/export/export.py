"""`export`: a dataset or selection dir -> files a trainer reads (Parquet, JSONL, alpaca, ShareGPT,
OpenAI, LLaMA-Factory, mlx-lm), one file per group and split, written atomically, with `export.json`.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl
import xxhash

from engine.errors import ConfigError, did_you_mean
from engine.export.formats import FORMATS, STYLES, Group, groups
from engine.export.splits import SPLITS, with_split
from engine.export.writer import atomic_dir, write_frame, write_json
from engine.progress import OnProgress, Progress, ignore
from engine.store.dataset import Dataset, open_dataset

SELECTION = "selection.json"


@dataclass(frozen=True, slots=True)
class ExportFile:
    name: str
    group: str
    split: str
    rows: int


@dataclass(frozen=True, slots=True)
class ExportReport:
    out: Path
    format: str
    rows: int
    files: tuple[ExportFile, ...]
    skipped: dict[str, int]
    seconds: float


def input_fingerprint(ds: Dataset) -> str:
    """xxh64 of the partition hashes and the stage configs: what the exported rows depend on."""
    m = ds.manifest
    parts = [p["hash"] for p in m["partitions"]] + [s.get("config_fingerprint", "") for s in m.get("stages", [])]
    return xxhash.xxh64_hexdigest("\x1f".join(parts).encode())


def _check_options(fmt: str, style: str) -> None:
    if fmt not in FORMATS:
        msg = f"--format {fmt!r}: expected one of {'|'.join(FORMATS)}{did_you_mean(fmt, FORMATS)}"
        raise ConfigError(msg)
    if style not in STYLES:
        msg = f"--style {style!r}: expected one of {'|'.join(STYLES)}{did_you_mean(style, STYLES)}"
        raise ConfigError(msg)


def _assign(gs: tuple[Group, ...], fmt: str) -> tuple[pl.Expr, pl.Expr]:
    """(`__group`: the group a row goes to, `__why`: why a row fits none), both null when not applicable."""
    kind = pl.col("kind")
    group: Any = pl
    why: Any = pl
    for g in gs:
        group = group.when(kind.is_in(g.kinds) & g.ok()).then(pl.lit(g.name))
        why = why.when(kind.is_in(g.kinds) & ~g.ok()).then(pl.lit(g.unsupported))
    held = sorted({k for g in gs for k in g.kinds})
    why = why.when(~kind.is_in(held)).then(pl.lit(f"not held by {fmt}"))
    return group.otherwise(pl.lit(None, pl.String)).alias("__group"), why.otherwise(pl.lit(None)).alias("__why")


def _unsupported_error(tally: pl.DataFrame, fmt: str, gs: tuple[Group, ...]) -> ConfigError:
    bad = tally.filter(pl.col("__why").is_not_null()).group_by("kind", "__why").agg(pl.col("len").sum()).sort("kind")
    what = "; ".join(f"{n} {k} rows: {w}" for k, w, n in bad.select("kind", "__why", "len").iter_rows())
    held = ", ".join(sorted({k for g in gs for k in g.kinds}))
    msg = (
        f"--format {fmt}: {what} ({fmt} holds {held}); export those rows with another --format "
        f"(llama-factory holds every kind), or pass --skip-unsupported to leave them out"
    )
    return ConfigError(msg)


def _file_name(fmt: str, group: str, split: str) -> str:
    ext = "parquet" if fmt == "parquet" else "jsonl"
    return f"{group}_{split}.{ext}" if group else f"{split}.{ext}"


def _canonical(lf: pl.LazyFrame) -> list[pl.Expr]:
    """Every column but fixed-size arrays (MinHash signatures, embeddings): no trainer reads them."""
    return [pl.col(n) for n, t in lf.collect_schema().items() if not isinstance(t, pl.Array) and not n.startswith("__")]


def _dataset_name(name: str | None, out: Path) -> str:
    base = name or out.name
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", base).strip("_") or "distill"


def export_dataset(
    path: str | Path,
    out: str | Path,
    *,
    format: str,
    style: str = "chat",
    train_frac: float = 0.9,
    valid_frac: float = 0.05,
    name: str | None = None,
    skip_unsupported: bool = False,
    overwrite: bool = False,
    on_progress: OnProgress = ignore,
) -> ExportReport:
    """Write the rows of the dataset (or selection) at `path` to `out` in a trainer's format."""
    started = time.perf_counter()
    _check_options(format, style)
    ds = open_dataset(path)
    out = Path(out)
    lf = with_split(ds.scan(), train=train_frac, valid=valid_frac, where=str(ds.root))
    gs = groups(format, style)
    group, why = _assign(gs, format)
    lf = lf.with_columns(group, why)
    tally = lf.group_by("kind", "split", "__group", "__why").len().collect()
    skipped = tally.filter(pl.col("__group").is_null()).group_by("kind").agg(pl.col("len").sum()).sort("kind")
    if skipped.height and not skip_unsupported:
        raise _unsupported_error(tally, format, gs)
    held = tally.filter(pl.col("__group").is_not_null()).group_by("__group", "split").agg(pl.col("len").sum())
    counts = {(g, s): n for g, s, n in held.iter_rows()}
    wanted = [(g, s) for g in gs for s in SPLITS if counts.get((g.name, s)) or format == "mlx-lm"]
    dname = _dataset_name(name, out)
    files: list[ExportFile] = []
    info: dict[str, Any] = {}
    with atomic_dir(out, overwrite=overwrite) as tmp:
        for i, (g, split) in enumerate(wanted):
            fname = _file_name(format, g.name, split)
            rows = lf.filter((pl.col("__group") == g.name) & (pl.col("split") == split))
            exprs = _canonical(lf) if format in ("parquet", "jsonl") else g.render()
            if counts.get((g.name, split)):
                write_frame(rows.select(exprs), tmp / fname)
            else:
                (tmp / fname).touch()  # mlx-lm expects train/valid/test even when one is empty
            files.append(ExportFile(fname, g.name, split, counts.get((g.name, split), 0)))
            if g.entry is not None and format == "llama-factory":
                info[f"{dname}_{g.name}_{split}"] = {"file_name": fname, **json.loads(json.dumps(g.entry))}
            on_progress(Progress("export", i + 1, len(wanted), unit="files", rows=sum(f.rows for f in files)))
        if format == "llama-factory":
            write_json(info, tmp / "dataset_info.json")
        selection = ds.root / SELECTION
        write_json(
            {
                "format": format,
                "style": style if format == "mlx-lm" else None,
                "input": str(ds.root),
                "input_fingerprint": input_fingerprint(ds),
                "train_frac": train_frac,
                "valid_frac": valid_frac,
                "split_from": "column" if "split" in ds.scan().collect_schema().names() else "id hash",
                "files": [{"name": f.name, "group": f.group, "split": f.split, "rows": f.rows} for f in files],
                "skipped": dict(skipped.iter_rows()),
                "selection": json.loads(selection.read_text()) if selection.exists() else None,
            },
            tmp / "export.json",
        )
    return ExportReport(
        out,
        format,
        sum(f.rows for f in files),
        tuple(files),
        dict(skipped.iter_rows()),
        time.perf_counter() - started,
    )
