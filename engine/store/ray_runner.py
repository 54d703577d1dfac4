"""Run a stage on a Ray cluster: one task per partition calling the local runner's own `run_partition`.

Why this shape: the bytes of a stage file depend only on the partition, its prior stage columns,
the config and (for a global stage) the side table, so running `runner.run_partition` in a Ray task
writes the very bytes the local loop writes, with the same temp-then-rename and footer fingerprint.
Skipping is decided by the driver from the same fingerprints, so a run started on one engine resumes
on the other, and a killed run loses at most the partitions in flight. Only the driver writes the
manifest. Ray Data is not used: it re-chunks partitions and reorders rows.

A global stage listed in `engine.stages.shard_reduce.SHARDED` (exact and near dedup) runs its global
step as explicit map/reduce tasks: one map task per partition computes the narrow keyed columns and
splits them by a hash of the key into P shards; one reduce task per shard returns its partial result
(reading candidate rows by ordinal from the partitions that hold them: text never goes through the
object store); the driver's `finish` merges them (near dedup: a union-find over the shards' component
edges) and stores `_side.parquet` as the local runner does. Any other global stage (the kenlm
percentiles, semantic dedup) runs `runner.run_reduce` in one task.

Ray is an optional dependency (`pip install -e ".[ray]"`); it is imported only when used. Dataset
dirs must be on a path every node sees (one machine, or a shared filesystem).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from engine.errors import ConfigError
from engine.progress import OnProgress, Progress, ignore
from engine.stages.base import ORD, Resources, Stage
from engine.stages.quantiles import prefix_counts, solve, values_in
from engine.stages.shard_reduce import QUANTILE, SHARDED, split_shards
from engine.store.dataset import open_dataset
from engine.store.location import ObjectPath, Where, location
from engine.store.partitions import read_footer_meta, scan_partition, write_parquet_atomic
from engine.store.runner import StageReport, begin_stage, finish_stage, run_partition, run_reduce, side_path

INSTALL_HINT = 'pip install -e ".[ray]" (or pip install ray)'


@dataclass(frozen=True, slots=True, kw_only=True)
class RayEngine:
    """Where and how to run: `address` None starts a local Ray; "auto" or "HOST:PORT" joins a cluster.

    `cpus_per_task` overrides every stage's declared CPUs per partition task (None: the stage's own,
    see `engine.stages.base.Resources`); a task's Polars threads match its CPUs. `shards` is P for a
    sharded global step (0: one per CPU of the cluster, at most one per partition).
    """

    address: str | None = None
    cpus_per_task: float | None = None
    shards: int = 0

    def __post_init__(self) -> None:
        if self.cpus_per_task is not None and self.cpus_per_task <= 0:
            msg = f"ray engine: cpus_per_task must be > 0, got {self.cpus_per_task}"
            raise ConfigError(msg)
        if self.shards < 0:
            msg = f"ray engine: shards must be >= 0, got {self.shards}"
            raise ConfigError(msg)

    def task_resources(self, declared: Resources, cluster_gpus: float) -> Resources:
        """The stage's declared needs, with the CPU override and an optional GPU dropped where there is none."""
        cpus = declared.cpus if self.cpus_per_task is None else self.cpus_per_task
        gpus = 0 if declared.gpu_optional and cluster_gpus <= 0 else declared.gpus
        return Resources(cpus=cpus, gpus=gpus, memory_mb=declared.memory_mb)


@dataclass(frozen=True, slots=True)
class RayStageReport:
    """The local runner's report plus where the work ran (node ids of the tasks that wrote files)."""

    report: StageReport
    nodes: frozenset[str]
    global_step: str  # "sharded" | "quantile_passes" | "one_task" | "reused" | "none"
    granted: tuple[dict[str, float], ...] = ()  # per written partition: the resources Ray gave its task


def _import_ray() -> Any:
    try:
        import ray
    except ImportError as exc:
        msg = f"--engine ray needs the ray package, which is not installed; {INSTALL_HINT}"
        raise ConfigError(msg) from exc
    return ray


@contextmanager
def ray_session(address: str | None) -> Iterator[Any]:
    """Use the Ray already initialised in this process, else connect (or start one) and shut it down after."""
    ray = _import_ray()
    if ray.is_initialized():
        yield ray
        return
    try:
        if address is None:
            ray.init(include_dashboard=False, logging_level="WARNING")
        else:
            ray.init(address=address, logging_level="WARNING")
    except ConnectionError as exc:
        msg = f"--address {address!r}: no Ray cluster answered ({exc}); start one with `ray start --head` or omit --address"
        raise ConfigError(msg) from exc
    try:
        yield ray
    finally:
        ray.shutdown()


def _remote(ray: Any, fn: Any, res: Resources, **options: Any) -> Any:
    """`fn` as a Ray task asking for `res`, with as many Polars threads as CPUs; retried if its worker dies.

    OSError is retried too (a shared filesystem or object store hiccup); the writes are temp-then-rename,
    so a retry rewrites the same bytes.
    """
    threads = str(max(1, int(res.cpus)))
    env = {"env_vars": {"POLARS_MAX_THREADS": threads}}
    if res.gpus:
        options["num_gpus"] = res.gpus
    if res.memory_mb:
        options["memory"] = res.memory_mb * 1024 * 1024
    return ray.remote(num_cpus=res.cpus, max_retries=3, retry_exceptions=[OSError], runtime_env=env, **options)(fn)


class RayTasks:
    """Runs a map/reduce's tasks on Ray (see `engine.select.shards.Executor`): results stay in the object store
    until a task or the driver asks for them, so the shards' rows go from map task to reduce task directly."""

    def __init__(self, ray: Any, res: Resources) -> None:
        self.ray, self.res = ray, res
        self._fns: dict[tuple[Any, int], Any] = {}

    def submit(self, fn: Any, *args: Any, num_returns: int = 1) -> Any:
        key = (fn, num_returns)
        if key not in self._fns:
            self._fns[key] = _remote(self.ray, fn, self.res, num_returns=num_returns)
        return self._fns[key].remote(*args)

    def get(self, handles: list[Any]) -> list[Any]:
        return self.ray.get(handles)


def _node_id() -> str:
    import ray

    return ray.get_runtime_context().get_node_id()


def _partition_task(
    root: str, part: dict[str, Any], prior: list[str], stage: Stage, cfg: Any, fp: str, side: Any, offset: int
) -> tuple[int, str, dict[str, float]]:
    """Ray task body: exactly the local runner's per-partition function (and where it ran, with what)."""
    import ray

    rows = run_partition(location(root), part, prior, stage, cfg, fp, side, offset=offset)
    return rows, _node_id(), dict(ray.get_runtime_context().get_assigned_resources())


def _map_task(
    root: str, name: str, prior: list[str], stage_name: str, cfg: Any, offset: int, shards: int
) -> pl.DataFrame | list[pl.DataFrame]:
    """Narrow keyed columns of one partition, split into `shards` frames by a hash of the key (Ray returns)."""
    sharded = SHARDED[stage_name]
    lf = scan_partition(location(root), name, prior).with_row_index(ORD, offset=offset)
    frames = split_shards(sharded.map(lf, cfg), sharded.key, shards)
    return frames[0] if shards == 1 else frames  # Ray stores one return as is, several as separate objects


def rows_by_ord(root: Where, parts: list[tuple[str, int, int]], prior: list[str]) -> Any:
    """Rows by ordinal, read only from the partitions (name, first ordinal, rows) that hold them."""

    def read(ords: np.ndarray) -> pl.LazyFrame:
        frames = []
        for name, first, rows in parts:
            lo, hi = np.searchsorted(ords, [first, first + rows])
            if hi > lo:
                wanted = pl.Series(ords[lo:hi]).implode()
                lf = scan_partition(root, name, prior).with_row_index(ORD, offset=first)
                frames.append(lf.filter(pl.col(ORD).is_in(wanted)))
        return pl.concat(frames)  # reduce_shard asks only for ordinals that exist

    return read


def _reduce_task(
    root: str, parts: list[tuple[str, int, int]], prior: list[str], stage_name: str, cfg: Any, *pieces: pl.DataFrame
) -> pl.DataFrame:
    return SHARDED[stage_name].reduce_shard(pl.concat(pieces), cfg, rows_by_ord(location(root), parts, prior))


def _counts_task(root: str, name: str, prior: list[str], column: str, bits: int, within: Any) -> pl.DataFrame:
    return prefix_counts(scan_partition(location(root), name, prior), column, bits, within)


def _values_task(root: str, name: str, prior: list[str], column: str, bits: int, prefixes: Any) -> pl.DataFrame:
    return values_in(scan_partition(location(root), name, prior), column, bits, prefixes)


def _quantile_reduce(
    ray: Any, engine: RayEngine, root: Where, parts: list[dict[str, Any]], prior: list[str], stage: Stage, cfg: Any
) -> pl.DataFrame:
    """Exact quantiles: each counting pass and the value pass is one task per partition, added up here."""
    spec = QUANTILE[stage.name]
    res = engine.task_resources(Resources(), 0)
    counts_fn, values_fn = _remote(ray, _counts_task, res), _remote(ray, _values_task, res)

    def each(fn: Any, *args: Any) -> pl.DataFrame:
        return pl.concat(ray.get([fn.remote(str(root), p["name"], prior, spec.column, *args) for p in parts]))

    cuts = solve(spec.fractions(cfg), lambda *a: each(counts_fn, *a), lambda *a: each(values_fn, *a))
    return spec.finish(cuts)


def _store_side(root: Where, stage: Stage, fp: str, side: pl.DataFrame) -> pl.DataFrame:
    meta = {"stage": stage.name, "version": stage.version, "fingerprint": fp, "rows": side.height}
    write_parquet_atomic(side, side_path(root, stage.name), meta)
    return side


def _reduce_one_task(root: str, prior: list[str], stage: Stage, cfg: Any, fp: str) -> pl.DataFrame:
    return run_reduce(open_dataset(root), prior, stage, cfg, fp)


def _sharded_reduce(
    ray: Any,
    engine: RayEngine,
    root: Where,
    parts: list[dict[str, Any]],
    prior: list[str],
    stage: Stage,
    cfg: Any,
    fp: str,
) -> pl.DataFrame:
    """Map tasks (one per partition) -> P reduce tasks -> `finish` on the driver -> side table stored like `run_reduce`."""
    sharded = SHARDED[stage.name]
    sharded.check(open_dataset(root).scan(prior), cfg)
    # default P: one reduce task per cluster CPU (each near-dedup shard reads its candidates' text)
    shards = engine.shards or max(1, min(len(parts), int(ray.cluster_resources().get("CPU", 1))))
    res = engine.task_resources(Resources(), 0)
    map_fn = _remote(ray, _map_task, res, num_returns=shards)
    reduce_fn = _remote(ray, _reduce_task, res)
    outs, located, offset = [], [], 0
    for part in parts:
        refs = map_fn.remote(str(root), part["name"], prior, stage.name, cfg, offset, shards)
        outs.append(refs if shards > 1 else [refs])
        located.append((part["name"], offset, part["rows"]))
        offset += part["rows"]
    pieces = ray.get(
        [reduce_fn.remote(str(root), located, prior, stage.name, cfg, *[o[i] for o in outs]) for i in range(shards)]
    )
    side = sharded.finish(pl.concat(pieces), cfg, rows_by_ord(root, located, prior))
    return _store_side(root, stage, fp, side)


def run_stage_ray(
    root: str | Path | ObjectPath,
    stage: Stage,
    cfg: Any,
    *,
    engine: RayEngine | None = None,
    on_progress: OnProgress = ignore,
) -> RayStageReport:
    """`runner.run_stage` on Ray: same fingerprints, skips, files and manifest entry; tasks do the partitions."""
    engine = engine or RayEngine()
    _import_ray()  # fail before the manifest is touched
    started = time.perf_counter()
    root = location(root)
    if isinstance(root, Path):
        root = root.resolve()  # workers may run in another directory
    plan = begin_stage(root, stage, cfg)
    parts, prior = plan.parts, plan.scanned  # the stages the tasks' LazyFrames include
    offsets = [0]
    for part in parts:
        offsets.append(offsets[-1] + part["rows"])
    nodes: set[str] = set()
    granted: list[dict[str, float]] = []
    with ray_session(engine.address) as ray:
        side: pl.DataFrame | None = None
        global_step = "none"
        if plan.side_fp is not None:
            on_progress(Progress(f"{stage.name} (global step)", 0, 1, unit="steps"))
            stored = side_path(root, stage.name)
            if (read_footer_meta(stored) or {}).get("fingerprint") == plan.side_fp:
                side, global_step = pl.read_parquet(str(stored)), "reused"
            elif stage.name in SHARDED:
                side = _sharded_reduce(ray, engine, root, parts, prior, stage, cfg, plan.side_fp)
                global_step = "sharded"
            elif stage.name in QUANTILE:
                side = _store_side(
                    root, stage, plan.side_fp, _quantile_reduce(ray, engine, root, parts, prior, stage, cfg)
                )
                global_step = "quantile_passes"
            else:
                side = ray.get(
                    _remote(ray, _reduce_one_task, engine.task_resources(Resources(), 0)).remote(
                        str(root), prior, stage, cfg, plan.side_fp
                    )
                )
                global_step = "one_task"
            on_progress(Progress(f"{stage.name} (global step)", 1, 1, unit="steps"))

        res = engine.task_resources(stage.resources(cfg), ray.cluster_resources().get("GPU", 0))
        task = _remote(ray, _partition_task, res)
        side_ref = ray.put(side) if side is not None else None
        pending: dict[Any, int] = {}
        skipped = 0
        for i, (part, offset) in enumerate(zip(parts, offsets[:-1], strict=True)):
            if plan.up_to_date(i, stage):
                skipped += 1
                continue
            fp = plan.partition_fp(i, stage)
            ref = task.remote(str(root), part, prior, stage, cfg, fp, side_ref, offset)
            pending[ref] = part["rows"]
        written, done_rows = 0, sum(p["rows"] for p in parts) - sum(pending.values())
        total = len(parts)
        on_progress(Progress(stage.name, skipped, total, unit="partitions", rows=done_rows))
        waiting = list(pending)
        while waiting:
            ready, waiting = ray.wait(waiting, num_returns=1)
            rows, node, assigned = ray.get(ready[0])
            nodes.add(node)
            granted.append(assigned)
            written += 1
            done_rows += rows
            on_progress(Progress(stage.name, skipped + written, total, unit="partitions", rows=done_rows))

    report = finish_stage(root, stage, plan, written=written, skipped=skipped, seconds=time.perf_counter() - started)
    return RayStageReport(report, frozenset(nodes), global_step, tuple(granted))
