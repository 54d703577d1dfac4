"""Write a selection as a new dataset dir: the chosen rows, every column they had, and a record of why.

The output is an ordinary dataset dir (canonical `part-*.parquet`, each input stage's columns under
`stages/<stage>/`, the queries' extra columns under `stages/select/`), so it can be scored, selected
again, verified and exported like any other. Its manifest's `selection` (also written to
`selection.json`) records the query text, the bound parameters and the input fingerprint. Rows keep
dataset order and are re-chunked to the input's partition size, so memory stays at one partition.
Everything is written to a temp dir that is renamed into place at the end: a crash leaves no half selection.
Rows a reviewer (or `distill regenerate`) edited are written with the edit applied and a fresh id.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import xxhash

from engine.errors import StoreError
from engine.select.run import SelectionResult
from engine.store.dataset import Dataset
from engine.store.labels import apply_edits, current_labels, read_labels
from engine.store.location import is_local
from engine.store.manifest import write_json_atomic, write_manifest
from engine.store.partitions import file_hash, part_name, read_footer_meta, stage_dir, write_parquet_atomic

SELECT_STAGE = "select"
SELECTION_FILE = "selection.json"


def input_fingerprint(ds: Dataset) -> str:
    """Hash of every partition's content hash and every stage file's fingerprint: changes when any input does."""
    h = xxhash.xxh64()
    for part in ds.manifest["partitions"]:
        h.update(part["hash"].encode())
        for stage in ds.stage_names:
            meta = read_footer_meta(stage_dir(ds.root, stage) / part["name"]) or {}
            h.update(f"\x1f{stage}={meta.get('fingerprint', 'missing')}".encode())
    return h.hexdigest()


class _Chunks:
    """Buffers the chosen rows of each file group and writes a partition whenever `size` rows are waiting."""

    def __init__(self, root: Path, groups: list[str], size: int, fp: str) -> None:
        self.root, self.groups, self.size, self.fp = root, groups, size, fp
        self.buf: dict[str, list[pl.DataFrame]] = {g: [] for g in groups}
        self.waiting = 0
        self.parts: list[dict[str, Any]] = []
        self.kinds: dict[str, int] = {}

    def add(self, frames: dict[str, pl.DataFrame]) -> None:
        for g, df in frames.items():
            self.buf[g].append(df)
        self.waiting += next(iter(frames.values())).height
        while self.waiting >= self.size:
            self.flush(self.size)

    def flush(self, n: int | None = None) -> None:
        if self.waiting == 0 and self.parts:
            return
        name = part_name(len(self.parts))
        rows = 0
        for g in self.groups:
            whole = pl.concat(self.buf[g], how="vertical") if self.buf[g] else None
            if whole is None:
                continue
            take = whole.height if n is None else n
            head, rest = whole.head(take), whole.slice(take)
            self.buf[g] = [rest] if rest.height else []
            if g == "":
                path = self.root / name
                write_parquet_atomic(head, path)
                rows = head.height
                for kind, count in head.group_by("kind").len().iter_rows():
                    self.kinds[kind] = self.kinds.get(kind, 0) + count
            else:
                meta = {"stage": g, "fingerprint": f"select:{self.fp}", "rows": head.height}
                write_parquet_atomic(head, stage_dir(self.root, g) / name, meta)
        self.parts.append({"name": name, "rows": rows, "hash": file_hash(self.root / name)})
        self.waiting -= rows


def _edited(rows: pl.DataFrame, ords: np.ndarray, edits: pl.DataFrame) -> pl.DataFrame:
    """The chosen canonical rows with their review edits applied (an edit recorded for another id is stale)."""
    if edits.is_empty():
        return rows
    keyed = rows.with_columns(_ord=pl.Series(ords, dtype=pl.Int64))
    mine = current_labels(edits, keyed)
    return apply_edits(keyed, mine).drop("_ord") if mine.height else rows


def write_selection(
    ds: Dataset,
    result: SelectionResult,
    out: Path,
    *,
    record: dict[str, Any],
    overwrite: bool = False,
) -> dict[str, Any]:
    """Write the rows of `result` from `ds` into the dataset dir `out`; returns the new manifest."""
    if is_local(ds.root) and out.resolve() == ds.root.resolve():  # type: ignore[union-attr]
        msg = f"{out}: the output must differ from the input dataset"
        raise StoreError(msg)
    if out.exists() and not overwrite:
        msg = f"{out}: already exists; pass --overwrite to replace it"
        raise StoreError(msg)
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    fp = record["input_fingerprint"]
    stages = [s for s in ds.stage_names if (stage_dir(ds.root, s)).exists()]
    extras = pl.from_arrow(result.rows)
    assert isinstance(extras, pl.DataFrame)
    has_extras = extras.width > 1
    groups = ["", *stages] + ([SELECT_STAGE] if has_extras else [])
    size = int(ds.manifest.get("ingest", {}).get("partition_rows", 100_000))
    chunks = _Chunks(tmp, groups, max(size, 1), fp)
    ords = extras["_ord"].cast(pl.Int64).to_numpy()
    edits = read_labels(ds.root).filter(pl.col("review_edit").is_not_null())
    offset = 0
    for part in ds.manifest["partitions"]:
        lo, hi = np.searchsorted(ords, [offset, offset + part["rows"]])
        # nothing chosen at all: one empty partition with every column, so the output is still a dataset
        if hi > lo or (not len(ords) and offset == 0):
            idx = pl.Series("idx", ords[lo:hi] - offset)
            frames = {"": _edited(pl.read_parquet(str(ds.root / part["name"]))[idx], ords[lo:hi], edits)}
            for s in stages:
                f = stage_dir(ds.root, s) / part["name"]
                frames[s] = pl.read_parquet(str(f))[idx] if f.exists() else pl.DataFrame()
            if has_extras:
                frames[SELECT_STAGE] = extras.slice(int(lo), int(hi - lo)).drop("_ord")
            chunks.add({g: df for g, df in frames.items() if df.width})
        offset += part["rows"]
    chunks.flush()

    (tmp / "rejects").mkdir()
    empty = pl.read_parquet(str(next((ds.root / "rejects").glob("part-*.parquet")))).head(0)
    write_parquet_atomic(empty, tmp / "rejects" / part_name(0))
    n = sum(p["rows"] for p in chunks.parts)
    log = []
    for entry in ds.manifest.get("stages", []):
        if entry["stage"] in stages:
            log.append({**entry, "rows": n, "selected_from": str(ds.root)})
    if has_extras:
        cols = [c for c in extras.columns if c != "_ord"]
        log.append({"stage": SELECT_STAGE, "version": 1, "status": "complete", "columns": cols, "rows": n})
    kinds = chunks.kinds
    manifest = {
        **{k: ds.manifest[k] for k in ("format_version", "engine_version", "schema_version")},
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "kind": next(iter(kinds)) if len(kinds) == 1 else ("mixed" if kinds else ds.manifest["kind"]),
        "kinds": kinds,
        "rows": n,
        "rejected": 0,
        "rows_read": n,
        "ingest": {"fingerprint": f"select:{fp}", "partition_rows": size},
        "sources": [{"path": str(ds.root), "kind": ds.manifest["kind"], "rows_read": n, "kept": n, "rejected": 0}],
        "partitions": chunks.parts,
        "rejects": [{"name": f"rejects/{part_name(0)}", "rows": 0, "hash": file_hash(tmp / "rejects" / part_name(0))}],
        "stages": log,
        "selection": record,
    }
    write_manifest(tmp, manifest)
    write_json_atomic(tmp / SELECTION_FILE, record)
    if out.exists():
        shutil.rmtree(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    os.replace(tmp, out)
    return manifest


def selection_record(ds: Dataset, result: SelectionResult, *, fingerprint: str) -> dict[str, Any]:
    """What the output's manifest says about how it was chosen."""
    last = result.steps[-1]
    mix = None
    if result.plan is not None:
        got = result.by_domain or {}
        plan = pl.from_arrow(result.plan)
        assert isinstance(plan, pl.DataFrame)
        mix = [
            {
                "domain": r["domain"],
                "target_share": r["share"],
                "target_rows": r["target_rows"],
                "available": r["available"],
                "quota": r["quota"],
                "achieved_rows": got.get(r["domain"], 0),
                "shortfall": r["shortfall"],
            }
            for r in plan.iter_rows(named=True)
        ]
    return {
        "query_file": last.path,
        "query": last.sql,
        "params": last.params,
        "steps": [asdict(s) for s in result.steps],
        "by": result.view.sort_column,
        "input": str(ds.root),
        "input_fingerprint": fingerprint,
        "rows": result.rows.num_rows,
        "mix": mix,
    }
