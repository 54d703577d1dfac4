"""Run selection queries over the `scored` view: one query, or a chain where each reads the last one's rows.

A chain (`--query mix --query split`) narrows step by step: after a step, `scored` holds only the rows it
returned, with the extra columns it returned (`sel_rank`, `split`, ...) added, so the next query sees them.
A query whose header says `before: NAME` first materialises NAME's result as a temp table of that name
(mix reads `mix_plan`). Results are keyed by `_ord`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

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
class SelectionResult:
    rows: pa.Table  # _ord plus the extra columns the queries returned, in dataset order
    steps: tuple[StepRecord, ...]
    plan: pa.Table | None  # mix_plan's rows when a mix ran
    view: ScoredView


def _steps(queries: Sequence[str], params: Mapping[str, str]) -> list[tuple[Query, dict[str, Any]]]:
    loaded = [load_query(q) for q in queries]
    chain = []
    for q in loaded:
        for name in filter(None, (q.header.get("before", "").split())):
            chain.append(load_query(name))
        chain.append(q)
    declared = {p for q in chain for p in q.params}
    unknown = [k for k in params if k not in declared]
    if unknown:
        names = ", ".join(sorted(declared)) or "none"
        msg = f"--param {unknown[0]}: no query in the chain takes it (they take: {names})"
        raise ConfigError(msg)
    return [(q, q.bind({k: v for k, v in params.items() if k in q.params})) for q in chain]


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
    """Run the chain and return the selected `_ord`s with their extra columns."""
    if not queries:
        msg = "select: give at least one --query (shipped: top_n, top_pct_per_domain, threshold, quality_tiers, split, mix)"
        raise ConfigError(msg)
    steps = _steps(queries, params or {})
    view = scored_view(ds, by=by, ascending=ascending, all_rows=all_rows, exclude_ids=exclude_ids)
    con = view.con
    con.execute("create temp table mix(domain varchar, share double)")
    if mix:
        con.executemany("insert into mix values (?, ?)", list(mix.items()))
    records: list[StepRecord] = []
    plan: pa.Table | None = None
    selected = None  # name of the temp table holding the rows selected so far
    for i, (q, bound) in enumerate(steps):
        records.append(StepRecord(q.name, str(q.path), q.sql, bound))
        if "mix(" in q.header.get("reads", "") and not mix:
            msg = f"{q.path.name}: needs a mix table; pass --mix FILE (TOML [mix] or CSV domain,share)"
            raise ConfigError(msg)
        if q.name == "mix_plan" and bound.get("n", 1) <= 0:
            msg = f"mix_plan: --param n must be > 0, got {bound['n']}"
            raise ConfigError(msg)
        if i + 1 < len(steps) and q.name in steps[i + 1][0].header.get("before", "").split():
            con.execute(f"create or replace temp table {q.name} as {q.sql}", bound)
            if q.name == "mix_plan":
                plan = con.sql("select * from mix_plan").to_arrow_table()
            continue
        out = f"sel_{i}"
        con.execute(f"create temp table {out} as {q.sql}", bound)
        cols = [r[0] for r in con.execute(f"describe {out}").fetchall()]
        if "_ord" not in cols:
            msg = f"{q.path.name}: a selection query must return _ord (returns {', '.join(cols)})"
            raise ConfigError(msg)
        if selected is not None:
            # keep the earlier steps' extra columns unless this step returns a column of the same name
            prev = [r[0] for r in con.execute(f"describe {selected}").fetchall()]
            keep = [c for c in prev if c not in cols]
            keep_sql = "".join(f', p."{c}"' for c in keep)
            con.execute(
                f"create or replace temp table {out} as select n.*{keep_sql} from {out} n join {selected} p using (_ord)"
            )
        clash = [c for c in cols if c != "_ord" and c in view.columns]
        if clash:
            msg = f"{q.path.name}: returns {clash[0]!r}, which the dataset already has; rename it in the query"
            raise ConfigError(msg)
        con.execute(
            f"create or replace temp view scored as select s.*, t.* exclude (_ord) from scored_all s join {out} t using (_ord)"
        )
        selected = out
    assert selected is not None
    rows = con.sql(f"select * from {selected} order by _ord").to_arrow_table()
    return SelectionResult(rows, tuple(records), plan, view)
