"""Selection as map/reduce: the chain's queries run per shard of the narrow scored rows, never over the text.

Map (one task per partition): that partition's rows of `scored_all`, only the columns the chain's queries
read (their headers' `reads: scored(...)`), split by a hash of the shard key into P shards. Reduce (one
task per shard): `run_steps`, the very loop of the one-machine run, over the shard's rows. What a query's
header says about splitting (`shard:`, see `engine.select.queries.Query.shard`) decides the rounds:

- `row` and `domain` steps run per shard; the key is `domain` when any step needs whole domains, else `_ord`.
- a `before` step that reads `scored` (mix_available) runs per shard and its rows are concatenated, exact
  because a shard holds whole domains; a step that does not read `scored` (mix_plan) runs on the driver
  over those rows, and the next round gets its table.
- a `top` step (top_n, holdout, random_n, quality_tiers) runs per shard as a pre-filter; its winners'
  narrow rows are gathered, and it and every later step run again on the driver over them: a top-k of the
  union of each shard's top-k is the top-k of all rows.

A chain with any step whose header gives no `shard:` (a user's own query) runs on one machine over the whole
dataset, as `run_selection` does. For any P the result equals that run's, row for row; P = 1 is the local run.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol

import duckdb
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from engine.select.run import (
    SelectionResult,
    Step,
    chain,
    check_mix,
    records,
    register_mix,
    run_selection,
    run_steps,
    selected_by_domain,
)
from engine.select.scored import ScoredView, partition_scored, scored_view
from engine.stages.base import Resources
from engine.store.dataset import Dataset, open_dataset
from engine.store.ray_runner import RayEngine, RayTasks, ray_session

ALWAYS = ("_ord", "eligible", "sort_key")
"""Columns every shard gets whatever the queries read (the eligible count and the plan's domain counts need them)."""


class Executor(Protocol):
    """Where map and reduce tasks run: `submit` returns a handle (a Ray ObjectRef, or the value itself)."""

    def submit(self, fn: Callable[..., Any], *args: Any, num_returns: int = 1) -> Any: ...

    def get(self, handles: list[Any]) -> list[Any]: ...


class InProcess:
    """Runs every task here, one after another: the map/reduce without a cluster (tests, P > 1 locally)."""

    def submit(self, fn: Callable[..., Any], *args: Any, num_returns: int = 1) -> Any:
        del num_returns  # a map's list of shards is its handle list already
        return fn(*args)

    def get(self, handles: list[Any]) -> list[Any]:
        return list(handles)


@dataclass(frozen=True, slots=True)
class Round:
    """Consecutive steps that run per shard; `gather`: the last is a `top` step whose winners go to the driver."""

    first: int
    steps: tuple[Step, ...]
    gather: bool


def shard_key(steps: Sequence[Step]) -> str | None:
    """`domain` or `_ord` when every step that reads `scored` says how it splits, else None (one machine)."""
    kinds = [s.query.shard for s in steps if s.reads_scored]
    if any(k is None for k in kinds) or any(s.before and s.query.shard != "domain" for s in steps if s.reads_scored):
        return None
    return "domain" if "domain" in kinds else "_ord"


def narrow_types(view: ScoredView, steps: Sequence[Step], key: str) -> dict[str, str]:
    """The scored columns the chain reads (plus `ALWAYS`, the key and `domain`), with the whole view's types."""
    wanted = {*ALWAYS, key, "domain"}
    for s in steps:
        wanted.update(s.query.scored_columns or ())
    types = dict(view.con.execute("select column_name, column_type from (describe scored_all)").fetchall())
    return {c: types[c] for c in types if c in wanted}


def map_partition(root: str, index: int, view: ScoredView, types: dict[str, str], key: str, shards: int) -> list[Any]:
    """One partition's narrow rows split into `shards` Arrow tables by a hash of `key`, then its eligible count."""
    rows = partition_scored(open_dataset(root), index, view, types)
    hashed = pl.from_arrow(rows.column(key))
    assert isinstance(hashed, pl.Series)
    shard = (hashed.hash(seed=0) % shards).to_numpy()
    parts: list[Any] = [rows.filter(pa.array(shard == i)) for i in range(shards)]
    return [*parts, int(pc.sum(rows.column("eligible")).as_py() or 0)]


@dataclass(frozen=True, slots=True)
class ShardOut:
    selected: pa.Table | None  # _ord + the extra columns chosen so far (None: no selection step yet)
    tables: dict[str, pa.Table]  # `before` tables this round made, to concatenate across shards
    gathered: pa.Table | None  # with `gather`: the top step's winners' narrow rows
    by_domain: dict[str, int] | None


def reduce_shard(
    rnd: Round,
    columns: tuple[str, ...],
    mix: Mapping[str, float] | None,
    tables: dict[str, pa.Table],
    selected: pa.Table | None,
    want_domains: bool,
    *pieces: pa.Table,
) -> ShardOut:
    """One round of the chain over one shard: its pieces from every map task, plus the driver's tables."""
    con = _connect(mix, tables)
    try:
        con.register("scored_all", pa.concat_tables(pieces))
        con.execute("create temp view scored as select * from scored_all")
        prior = None
        if selected is not None:
            con.register("sel_prior", selected)
            prior = "sel_prior"
        steps = rnd.steps[:-1] if rnd.gather else rnd.steps
        sel = run_steps(con, steps, columns, first=rnd.first, selected=prior)
        made = {s.query.name: con.sql(f"select * from {s.query.name}").to_arrow_table() for s in steps if s.before}
        if rnd.gather:
            top = rnd.steps[-1]
            con.execute(f"create temp table top_pick as {top.query.sql}", top.params)
            # the winners with the columns the top step saw (its own extra columns are made again on the driver)
            gathered = con.sql("select s.* from scored s semi join top_pick using (_ord)").to_arrow_table()
            return ShardOut(None, made, gathered, None)
        out = con.sql(f"select * from {sel}").to_arrow_table() if sel is not None else None
        return ShardOut(out, made, None, selected_by_domain(con) if want_domains and sel is not None else None)
    finally:
        con.close()


def plan_rounds(steps: Sequence[Step]) -> tuple[list[Round | int], int]:
    """The chain as per-shard rounds and driver steps (by index), and the index where the driver takes over.

    A round ends after a `before` step that reads `scored` (its rows are combined on the driver), before a
    step that does not read `scored` (it runs on the driver), and after a `top` step (from it on, the driver).
    """
    out: list[Round | int] = []
    cur: list[Step] = []
    start = 0
    for i, s in enumerate(steps):
        if not s.reads_scored:
            if cur:
                out.append(Round(start, tuple(cur), False))
                cur = []
            out.append(i)
            continue
        if not cur:
            start = i
        cur.append(s)
        if s.query.shard == "top":
            out.append(Round(start, tuple(cur), True))
            return out, i
        if s.before:
            out.append(Round(start, tuple(cur), False))
            cur = []
    if cur:
        out.append(Round(start, tuple(cur), False))
    return out, len(steps)


def run_sharded(
    ds: Dataset,
    queries: Sequence[str],
    params: Mapping[str, str] | None = None,
    *,
    shards: int,
    executor: Executor | None = None,
    by: str | None = None,
    ascending: bool = False,
    all_rows: bool = False,
    mix: Mapping[str, float] | None = None,
    exclude_ids: pa.Table | None = None,
) -> SelectionResult | None:
    """`run_selection` as map/reduce over `shards` shards; None when the chain cannot split (or there are no
    partitions): run it on one machine."""
    steps = chain(queries, params or {})
    check_mix(steps, mix)
    key = shard_key(steps)
    if key is None or not ds.manifest["partitions"]:
        return None
    ex = executor or InProcess()
    view = scored_view(ds, by=by, ascending=ascending, all_rows=all_rows, exclude_ids=exclude_ids)
    types = narrow_types(view, steps, key)
    parts = len(ds.manifest["partitions"])
    maps = [
        ex.submit(map_partition, str(ds.root), i, view_spec(view), types, key, shards, num_returns=shards + 1)
        for i in range(parts)
    ]
    pool = sum(ex.get([m[shards] for m in maps]))
    has_plan = any(s.query.name == "mix_plan" for s in steps)
    tables: dict[str, pa.Table] = {}
    selected: list[Any] = [None] * shards
    rounds, handoff = plan_rounds(steps)
    outs: list[ShardOut] = []
    for rnd in rounds:
        if isinstance(rnd, int):  # a step over the driver's tables (mix_plan over mix_available)
            tables[steps[rnd].query.name] = _driver_step(steps[rnd], mix, tables)
            continue
        handles = [
            ex.submit(reduce_shard, rnd, view.columns, mix, tables, selected[i], has_plan, *[m[i] for m in maps])
            for i in range(shards)
        ]
        outs = ex.get(handles)
        for name in outs[0].tables:
            tables[name] = pa.concat_tables([o.tables[name] for o in outs])
        selected = [o.selected for o in outs]
    if handoff < len(steps):
        rows, by_domain = _finish_on_driver(steps, handoff, view.columns, outs, mix, tables, selected_by=has_plan)
    else:
        rows = pa.concat_tables([o.selected for o in outs if o.selected is not None]).sort_by("_ord")
        by_domain = _add_counts([o.by_domain for o in outs]) if has_plan else None
    return SelectionResult(rows, records(steps), tables.get("mix_plan"), view, pool, by_domain, shards)


def select_on_ray(
    ds: Dataset,
    queries: Sequence[str],
    params: Mapping[str, str] | None = None,
    *,
    engine: RayEngine,
    **options: Any,
) -> SelectionResult:
    """`run_sharded` with Ray tasks: P = `engine.shards`, else one shard per cluster CPU (at most one per partition).

    A chain that cannot split runs on the driver with `run_selection` (DuckDB reads only the columns it names).
    """
    with ray_session(engine.address) as ray:
        shards = engine.shards or max(
            1, min(len(ds.manifest["partitions"]), int(ray.cluster_resources().get("CPU", 1)))
        )
        tasks = RayTasks(ray, engine.task_resources(Resources(), 0))
        result = run_sharded(ds, queries, params, shards=shards, executor=tasks, **options)
    return result if result is not None else run_selection(ds, queries, params, **options)


def view_spec(view: ScoredView) -> ScoredView:
    """The view without its connection, to send to map tasks (a DuckDB connection cannot be pickled)."""
    return replace(view, con=None)  # type: ignore[arg-type]


def _add_counts(counts: Sequence[dict[str, int] | None]) -> dict[str, int]:
    total: dict[str, int] = {}
    for c in counts:
        for domain, n in (c or {}).items():
            total[domain] = total.get(domain, 0) + n
    return total


def _connect(mix: Mapping[str, float] | None, tables: dict[str, pa.Table]) -> duckdb.DuckDBPyConnection:
    """A connection holding the mix table and the small tables earlier rounds made (mix_available, mix_plan)."""
    con = duckdb.connect()
    register_mix(con, mix)
    for name, table in tables.items():
        con.register(name, table)
    return con


def _driver_step(step: Step, mix: Mapping[str, float] | None, tables: dict[str, pa.Table]) -> pa.Table:
    """A step that reads only small tables (mix_plan over mix and mix_available), run here."""
    con = _connect(mix, tables)
    try:
        return con.sql(step.query.sql, params=step.params).to_arrow_table()
    finally:
        con.close()


def _finish_on_driver(
    steps: Sequence[Step],
    first: int,
    columns: tuple[str, ...],
    outs: Sequence[ShardOut],
    mix: Mapping[str, float] | None,
    tables: dict[str, pa.Table],
    *,
    selected_by: bool,
) -> tuple[pa.Table, dict[str, int] | None]:
    """The top step and the rest of the chain over the gathered winners: narrow rows, so the driver stays small."""
    gathered = pa.concat_tables([o.gathered for o in outs if o.gathered is not None])
    extra = [c for c in gathered.column_names if c not in columns]  # columns earlier steps added
    con = _connect(mix, tables)
    try:
        con.register("scored_all", gathered.drop_columns(extra))
        con.execute("create temp view scored as select * from scored_all")
        prior = None
        if extra:
            con.register("sel_prior", gathered.select(["_ord", *extra]))
            prior = "sel_prior"
        sel = run_steps(con, steps[first:], columns, first=first, selected=prior)
        assert sel is not None
        for s in steps[first:]:
            if s.before:
                tables[s.query.name] = con.sql(f"select * from {s.query.name}").to_arrow_table()
        rows = con.sql(f"select * from {sel} order by _ord").to_arrow_table()
        return rows, selected_by_domain(con) if selected_by else None
    finally:
        con.close()
