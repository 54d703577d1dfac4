"""Run selection queries over the `scored` view: one query, or a chain where each reads the last one's rows.

A chain (`--query mix --query split`) narrows step by step: after a step, `scored` holds only the rows it
returned, with the extra columns it returned (`sel_rank`, `split`, ...) added, so the next query sees them.
A query whose header says `before: NAME` first materialises NAME's result as a temp table of that name
(mix reads `mix_plan`, which reads `mix_available`). Results are keyed by `_ord`.

`run_steps` is the one loop that runs a chain on a DuckDB connection holding `scored_all`: here over the
whole dataset (the one-shard case), and in `engine.select.shards` over each shard's narrow rows.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import duckdb
import pyarrow as pa

from engine.errors import ConfigError
from engine.select.queries import Query, load_query
from engine.select.scored import ScoredView, scored_view
from engine.store.dataset import Dataset


@dataclass(frozen=True, slots=True)
class StepRecord:
    query: str
    path: str
    sql: str
    params: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Step:
    """A query of the chain with its bound parameters; `before`: materialised for the next step, not a selection."""

    query: Query
    params: dict[str, Any]
    before: bool

    @property
    def reads_scored(self) -> bool:
        return self.query.scored_columns is not None


@dataclass(frozen=True, slots=True)
class SelectionResult:
    rows: pa.Table  # _ord plus the extra columns the queries returned, in dataset order
    steps: tuple[StepRecord, ...]
    plan: pa.Table | None  # mix_plan's rows when a mix ran
    view: ScoredView
    pool: int  # eligible rows of the whole dataset
    by_domain: dict[str, int] | None  # selected rows per domain, when a mix ran
    shards: int = 1  # P of the map/reduce that ran the chain (1: DuckDB over the whole dataset)


def _expand(q: Query, seen: tuple[str, ...] = ()) -> list[Query]:
    """`q` preceded by the queries its `before:` names (and theirs), in the order they must run."""
    if q.name in seen:
        msg = f"{q.path.name}: `before:` loops back to {q.name}"
        raise ConfigError(msg)
    out: list[Query] = []
    for name in filter(None, q.header.get("before", "").split()):
        out.extend(_expand(load_query(name), (*seen, q.name)))
    return [*out, q]


def chain(queries: Sequence[str], params: Mapping[str, str]) -> list[Step]:
    """The chain's steps with `before:` queries expanded and every `--param` bound to the queries that take it."""
    if not queries:
        msg = "select: give at least one --query (shipped: top_n, top_pct_per_domain, threshold, quality_tiers, split, mix)"
        raise ConfigError(msg)
    expanded = [e for q in queries for e in _expand(load_query(q))]
    declared = {p for q in expanded for p in q.params}
    unknown = [k for k in params if k not in declared]
    if unknown:
        names = ", ".join(sorted(declared)) or "none"
        msg = f"--param {unknown[0]}: no query in the chain takes it (they take: {names})"
        raise ConfigError(msg)
    steps = []
    for i, q in enumerate(expanded):
        bound = q.bind({k: v for k, v in params.items() if k in q.params})
        if q.name == "mix_plan" and bound.get("n", 1) <= 0:
            msg = f"mix_plan: --param n must be > 0, got {bound['n']}"
            raise ConfigError(msg)
        before = i + 1 < len(expanded) and q.name in expanded[i + 1].header.get("before", "").split()
        steps.append(Step(q, bound, before))
    return steps


def check_mix(steps: Sequence[Step], mix: Mapping[str, float] | None) -> None:
    for s in steps:
        if "mix(" in s.query.header.get("reads", "") and not mix:
            msg = f"{s.query.path.name}: needs a mix table; pass --mix FILE (TOML [mix] or CSV domain,share)"
            raise ConfigError(msg)


def records(steps: Sequence[Step]) -> tuple[StepRecord, ...]:
    return tuple(StepRecord(s.query.name, str(s.query.path), s.query.sql, s.params) for s in steps)


def register_mix(con: duckdb.DuckDBPyConnection, mix: Mapping[str, float] | None) -> None:
    con.execute("create temp table mix(domain varchar, share double)")
    if mix:
        con.executemany("insert into mix values (?, ?)", list(mix.items()))


def _names(con: duckdb.DuckDBPyConnection, table: str) -> list[str]:
    return [r[0] for r in con.execute(f"describe {table}").fetchall()]


def run_steps(
    con: duckdb.DuckDBPyConnection,
    steps: Sequence[Step],
    dataset_columns: Sequence[str],
    *,
    first: int = 0,
    selected: str | None = None,
) -> str | None:
    """Run `steps` (numbered from `first`) on `con`, whose `scored_all` holds the rows; the last selection's table.

    `selected` names a table of rows an earlier step chose (`_ord` plus its extra columns), so `scored` starts
    as those rows. A `before` step becomes a temp table of its query's name.
    """
    if selected is not None:
        _point_scored(con, selected)
    for i, step in enumerate(steps, start=first):
        q, bound = step.query, step.params
        if step.before:
            con.execute(f"create or replace temp table {q.name} as {q.sql}", bound)
            continue
        out = f"sel_{i}"
        con.execute(f"create temp table {out} as {q.sql}", bound)
        cols = _names(con, out)
        if "_ord" not in cols:
            msg = f"{q.path.name}: a selection query must return _ord (returns {', '.join(cols)})"
            raise ConfigError(msg)
        clash = [c for c in cols if c != "_ord" and c in dataset_columns]
        if clash:
            msg = f"{q.path.name}: returns {clash[0]!r}, which the dataset already has; rename it in the query"
            raise ConfigError(msg)
        if selected is not None:
            # keep the earlier steps' extra columns unless this step returns a column of the same name
            keep = [c for c in _names(con, selected) if c not in cols]
            keep_sql = "".join(f', p."{c}"' for c in keep)
            con.execute(
                f"create or replace temp table {out} as select n.*{keep_sql} from {out} n join {selected} p using (_ord)"
            )
        _point_scored(con, out)
        selected = out
    return selected


def _point_scored(con: duckdb.DuckDBPyConnection, selected: str) -> None:
    con.execute(
        f"create or replace temp view scored as select s.*, t.* exclude (_ord) from scored_all s join {selected} t using (_ord)"
    )


def selected_by_domain(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    """After a chain, `scored` holds just the selected rows."""
    return dict(con.execute("select domain, count(*) from scored group by domain").fetchall())


def run_selection(
    ds: Dataset,
    queries: Sequence[str],
    params: Mapping[str, str] | None = None,
    *,
    by: str | None = None,
    ascending: bool = False,
    all_rows: bool = False,
    mix: Mapping[str, float] | None = None,
    exclude_ids: pa.Table | None = None,
) -> SelectionResult:
    """Run the chain with DuckDB over the whole dataset and return the selected `_ord`s with their extra columns."""
    steps = chain(queries, params or {})
    check_mix(steps, mix)
    view = scored_view(ds, by=by, ascending=ascending, all_rows=all_rows, exclude_ids=exclude_ids)
    con = view.con
    register_mix(con, mix)
    selected = run_steps(con, steps, view.columns)
    assert selected is not None  # the last step is never a `before` one
    plan = (
        con.sql("select * from mix_plan").to_arrow_table() if any(s.query.name == "mix_plan" for s in steps) else None
    )
    rows = con.sql(f"select * from {selected} order by _ord").to_arrow_table()
    pool = con.execute("select count(*) from scored_all where eligible").fetchall()[0][0]
    return SelectionResult(
        rows, records(steps), plan, view, pool, selected_by_domain(con) if plan is not None else None
    )
