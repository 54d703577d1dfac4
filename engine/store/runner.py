"""Apply a stage partition by partition: temp name then rename, fingerprints, skip what is up to date.

A partition's fingerprint for stage S hashes the canonical partition's content hash, the fingerprints
of the stages that ran before S on it, S's name, version and config. It is stored in the footer of
S's output file, so a rerun reads only footers to decide what to skip, and a run killed at any point
loses at most the partition it was writing. Outputs depend only on their inputs, so a resumed run
produces the same bytes as an uninterrupted one.

A global stage first runs its `reduce` over all partitions and stores the side table it returns in
`stages/<name>/_side.parquet`, fingerprinted by every partition's input fingerprint; each partition's
fingerprint then includes the side table's, so changing any partition redoes the global step.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl
import xxhash

from engine import config as cfgmod
from engine.errors import SchemaError, StoreError, did_you_mean
from engine.progress import OnProgress, Progress, ignore
from engine.stages.base import ORD, SCRATCH, Stage
from engine.stages.numba_registries import preload
from engine.store.collector import frozen_start
from engine.store.dataset import Dataset, open_dataset
from engine.store.location import ObjectPath, Where, location
from engine.store.manifest import read_manifest, write_manifest
from engine.store.partitions import read_footer_meta, scan_partition, stage_dir, write_parquet_atomic


@dataclass(frozen=True, slots=True)
class StageReport:
    stage: str
    partitions: int
    written: int
    skipped: int
    rows: int
    seconds: float


def _partition_fingerprint(base_hash: str, prior: list[str], stage: Stage, cfg_fp: str) -> str:
    blob = "\x1f".join([base_hash, *prior, stage.name, str(stage.version), cfg_fp])
    return xxhash.xxh64_hexdigest(blob.encode())


def _check_reads(ds: Dataset, stage: Stage, prior: list[str]) -> None:
    columns = ds.scan(prior).collect_schema().names()
    missing = [c for c in stage.reads if c not in columns]
    if missing:
        msg = (
            f"{ds.root}: stage {stage.name!r} reads column {missing[0]!r}, which the dataset lacks"
            f"{did_you_mean(missing[0], columns)}; run the stage that adds it first"
        )
        raise SchemaError(msg)
    clash = [c for c in stage.writes if c in columns]
    if clash:
        msg = f"{ds.root}: stage {stage.name!r} writes {clash[0]!r}, which another column already has"
        raise SchemaError(msg)


SIDE_NAME = "_side.parquet"


def side_path(root: Where, stage_name: str) -> Where:
    """Where a global stage keeps its side table (the reduce's result, beside its partitions)."""
    return stage_dir(root, stage_name) / SIDE_NAME


SCRATCH_NAME = "_chunks"


def scratch_dir(root: Where, stage: Stage) -> Path | None:
    """Where a `chunked` stage keeps finished chunks (see `SCRATCH`); local or shared dirs only."""
    return stage_dir(root, stage.name) / SCRATCH_NAME if stage.chunked and isinstance(root, Path) else None  # type: ignore[return-value]


def run_reduce(ds: Dataset, prior: list[str], stage: Stage, cfg: Any, fingerprint: str) -> pl.DataFrame:
    """The side table of a global stage: reused when its fingerprint matches, else computed and stored."""
    path = side_path(ds.root, stage.name)
    existing = read_footer_meta(path)
    if existing and existing.get("fingerprint") == fingerprint:
        return pl.read_parquet(str(path))
    assert stage.reduce is not None
    preload(stage.kernels)
    side = stage.reduce(ds.scan(prior).with_row_index(ORD), cfg)
    if ORD not in side.columns:
        msg = f"stage {stage.name!r}: reduce must return a table keyed by {ORD!r}, got columns {side.columns}"
        raise StoreError(msg)
    meta = {"stage": stage.name, "version": stage.version, "fingerprint": fingerprint, "rows": side.height}
    write_parquet_atomic(side, path, meta)
    return side


def run_partition(
    root: Where,
    part: dict[str, Any],
    prior: list[str],
    stage: Stage,
    cfg: Any,
    fingerprint: str,
    side: pl.DataFrame | None = None,
    offset: int = 0,
) -> int:
    """Read one partition (plus prior stage columns), apply the stage, write its columns atomically."""
    preload(stage.kernels)
    lf = scan_partition(root, part["name"], prior)
    if side is None:
        staged = stage.transform(lf, cfg)
    else:
        staged = stage.transform(lf.with_row_index(ORD, offset=offset), cfg, side)
    # a fixed-size array takes its width from the config (mh_sig has num_perm values)
    cols = [pl.col(n) if isinstance(t, pl.Array) else pl.col(n).cast(t) for n, t in stage.writes.items()]
    token = SCRATCH.set(scratch_dir(root, stage))
    try:
        out = staged.select(cols).collect()
    finally:
        SCRATCH.reset(token)
    if out.height != part["rows"]:
        msg = f"{root / part['name']}: stage {stage.name!r} returned {out.height} rows for {part['rows']}; a stage must not drop rows"
        raise StoreError(msg)
    meta = {"stage": stage.name, "version": stage.version, "fingerprint": fingerprint, "rows": out.height}
    write_parquet_atomic(out, stage_dir(root, stage.name) / part["name"], meta)
    return out.height


@dataclass(frozen=True, slots=True)
class StagePlan:
    """What every engine needs before running a stage: the stages before it, fingerprints, the side table's.

    Made by `begin_stage`, which also logs the stage as running in the manifest; `finish_stage` closes it.
    The local loop below and `ray_runner` share both, so they skip and fingerprint identically.
    """

    ds: Dataset
    prior: list[str]  # every stage run before this one: they fingerprint its inputs
    scanned: list[str]  # the prior stages whose files its LazyFrames include (see `scanned_stages`)
    cfg_fp: str
    inputs: list[list[str]]  # per partition: content hash, then each prior stage's footer fingerprint
    side_fp: str | None  # global stages only: hash of every partition's inputs

    @property
    def parts(self) -> list[dict[str, Any]]:
        return self.ds.manifest["partitions"]

    def partition_fp(self, i: int, stage: Stage) -> str:
        inp = self.inputs[i]
        return _partition_fingerprint(inp[0], inp[1:] + ([self.side_fp] if self.side_fp else []), stage, self.cfg_fp)

    def up_to_date(self, i: int, stage: Stage) -> bool:
        existing = read_footer_meta(stage_dir(self.ds.root, stage.name) / self.parts[i]["name"])
        return bool(existing) and existing.get("fingerprint") == self.partition_fp(i, stage)  # type: ignore[union-attr]


def begin_stage(root: Where, stage: Stage, cfg: Any) -> StagePlan:
    """Check the stage's columns, log it as running, and fingerprint its inputs."""
    ds = open_dataset(root)
    manifest = ds.manifest
    cfg_fp = cfgmod.fingerprint(cfg, stage.version)
    log: list[dict[str, Any]] = manifest.setdefault("stages", [])
    names = [e["stage"] for e in log]
    prior = names[: names.index(stage.name)] if stage.name in names else names
    _check_reads(ds, stage, prior)

    entry = {
        "stage": stage.name,
        "version": stage.version,
        "config": cfgmod.to_mapping(cfg),
        "config_fingerprint": cfg_fp,
        "status": "running",
        "columns": list(stage.writes),
    }
    if stage.name in names:
        log[names.index(stage.name)].update(entry)
    else:
        log.append(entry)
    write_manifest(root, manifest)

    inputs = [
        [part["hash"]]
        + [(read_footer_meta(stage_dir(root, s) / part["name"]) or {}).get("fingerprint", "missing") for s in prior]
        for part in manifest["partitions"]
    ]
    side_fp = None
    if stage.reduce is not None:
        blob = "\x1e".join("\x1f".join(x) for x in inputs)
        side_fp = _partition_fingerprint(xxhash.xxh64_hexdigest(blob.encode()), [], stage, cfg_fp)
    return StagePlan(ds, prior, scanned_stages(ds, stage, prior), cfg_fp, inputs, side_fp)


def scanned_stages(ds: Dataset, stage: Stage, prior: list[str]) -> list[str]:
    """The prior stages a stage's LazyFrames include: all but those that wrote only fixed-size arrays
    (signatures, embeddings) the stage does not read.

    Why: Polars reads a column of every input of a horizontal concat, even one no column is needed from,
    and a file's only column whole: every later stage would read all of embed's sem_emb (1.5 KB per row)
    for nothing. (minhash writes the narrow mh_shingles beside mh_sig for the same reason, so its file is
    always kept.) Stages that read columns chosen by their config (composite, gate, keep=score:COL) read
    scalar scores, never arrays, so leaving array-only files out cannot hide a column they read.
    """
    if not ds.partitions:
        return prior
    first = ds.partitions[0]
    kept = []
    for name in prior:
        path = stage_dir(ds.root, name) / first
        schema = pl.scan_parquet(str(path)).collect_schema() if path.exists() else {}
        wide = bool(schema) and all(isinstance(t, pl.Array) for t in schema.values())
        if not wide or any(c in stage.reads for c in schema):
            kept.append(name)
    return kept


def finish_stage(
    root: Where, stage: Stage, plan: StagePlan, *, written: int, skipped: int, seconds: float, complete: bool = True
) -> StageReport:
    """Mark the stage complete (or partial, for one shard's share) in the manifest and report it."""
    rows = sum(p["rows"] for p in plan.parts)
    manifest = read_manifest(root)
    for e in manifest["stages"]:
        if e["stage"] == stage.name:
            e.update(
                status="complete" if complete else "partial",
                rows=rows,
                partitions_written=written,
                partitions_skipped=skipped,
                seconds=round(seconds, 3),
                finished_at=datetime.now(UTC).isoformat(timespec="seconds"),
            )
    write_manifest(root, manifest)
    scratch = scratch_dir(root, stage)
    if complete and scratch is not None:
        shutil.rmtree(scratch, ignore_errors=True)  # every partition is committed: no chunk is needed again
    return StageReport(stage.name, len(plan.parts), written, skipped, rows, seconds)


def run_stage(
    root: str | Path | ObjectPath,
    stage: Stage,
    cfg: Any,
    *,
    on_progress: OnProgress = ignore,
    shard: tuple[int, int] | None = None,
) -> StageReport:
    """Run `stage` over every partition of the dataset at `root`, skipping up-to-date partitions.

    `shard=(i, n)` writes only partitions whose index is i mod n (one machine's share); copying the
    shards' `stages/<name>/` files into one dataset dir merges them, and a plain rerun then finds
    every partition up to date and marks the stage complete.
    """
    with frozen_start():
        return _run_stage(root, stage, cfg, on_progress=on_progress, shard=shard)


def _run_stage(
    root: str | Path | ObjectPath, stage: Stage, cfg: Any, *, on_progress: OnProgress, shard: tuple[int, int] | None
) -> StageReport:
    started = time.perf_counter()
    root = location(root)
    plan = begin_stage(root, stage, cfg)
    total = len(plan.parts)
    written = skipped = rows = 0
    side: pl.DataFrame | None = None
    if plan.side_fp is not None:
        on_progress(Progress(f"{stage.name} (global step)", 0, 1, unit="steps"))
        side = run_reduce(plan.ds, plan.scanned, stage, cfg, plan.side_fp)
        on_progress(Progress(f"{stage.name} (global step)", 1, 1, unit="steps"))
    on_progress(Progress(stage.name, 0, total, unit="partitions"))
    for i, part in enumerate(plan.parts):
        if plan.up_to_date(i, stage):
            skipped += 1
        elif shard is not None and i % shard[1] != shard[0]:
            pass  # another shard's partition
        else:
            run_partition(root, part, plan.scanned, stage, cfg, plan.partition_fp(i, stage), side, offset=rows)
            written += 1
        rows += part["rows"]
        on_progress(Progress(stage.name, i + 1, total, unit="partitions", rows=rows))
    complete = shard is None or written + skipped == total
    return finish_stage(
        root, stage, plan, written=written, skipped=skipped, seconds=time.perf_counter() - started, complete=complete
    )
