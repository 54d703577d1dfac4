"""The `scored` view: every partition of a dataset dir, with every appended column, as one DuckDB view.

A stage's columns live in `stages/<stage>/part-N.parquet`, row for row beside `part-N.parquet`, so each
partition is a POSITIONAL JOIN of its files and the dataset is their UNION ALL. DuckDB reads only the
columns a query names, so a mix over millions of rows never touches the text.

Columns added for selection:
- `_ord`: the row's position in the dataset (BIGINT); results are keyed by it, since exact duplicates
  share an `id`. It depends only on row order, never on partition sizes.
- `score`: the raw value of the `by` column (0 when none is chosen); `sort_key`: the same, negated when
  `ascending`, so every query ranks by `sort_key desc`.
- `eligible`: false where an earlier stage flagged the row (see `FLAGS`); queries select eligible rows only.
- `domain`: the domain stage's `domain_name` where that stage ran, else the ingested `domain`.
- `review_label`, `review_edit`, `review_note`: from `review/labels.parquet` when rows were reviewed
  (`engine.store.labels`), joined on `_ord` and `id`; a rejected row is not eligible.
"""

from __future__ import annotations

from dataclasses import dataclass

import duckdb
import pyarrow as pa

from engine.errors import ConfigError, did_you_mean
from engine.store.dataset import Dataset
from engine.store.labels import read_labels
from engine.store.location import Where, is_local, register_object_store
from engine.store.partitions import stage_dir

FLAGS: dict[str, str] = {
    "exact_dup_of": "exact_dup_of is null",
    "dup_keep": "coalesce(dup_keep, true)",
    "sem_keep": "coalesce(sem_keep, true)",
    "gate_pass": "coalesce(gate_pass, true)",
    "len_reason": "len_reason is null",
    "ifd_valid": "coalesce(ifd_valid, true)",
    "review_label": "review_label is distinct from 'reject'",
}
"""Flag column -> the condition a row must meet to stay eligible (applied only where the column exists)."""

DEFAULT_SORT = ("quality_composite", "heur_score")
"""The score used when no `by` is given: the first of these the dataset has."""


@dataclass(frozen=True, slots=True)
class ScoredView:
    con: duckdb.DuckDBPyConnection
    columns: tuple[str, ...]
    sort_column: str | None
    rows: int
    ascending: bool = False
    all_rows: bool = False
    exclude_ids: pa.Table | None = None


def quote(name: str) -> str:
    """A column name as a DuckDB identifier (names come from the data, never formatted in unquoted)."""
    return '"' + name.replace('"', '""') + '"'


def _literal(path: Where) -> str:
    return "'" + str(path).replace("'", "''") + "'"


def base_sql(ds: Dataset, only: int | None = None) -> str:
    """One SELECT per partition (canonical file positionally joined with each stage's file), unioned.

    `only` keeps one partition (by index), its `_ord`s still counted from the dataset's first row.
    """
    selects = []
    offset = 0
    for index, part in enumerate(ds.manifest["partitions"]):
        name = part["name"]
        if only is None or only == index:
            joins = [f"read_parquet({_literal(ds.root / name)}, file_row_number=true) c"]
            cols = ["c.* exclude (file_row_number)", f"{offset} + c.file_row_number as _ord"]
            for i, stage in enumerate(ds.stage_names):
                f = stage_dir(ds.root, stage) / name
                if f.exists():
                    joins.append(f"read_parquet({_literal(f)}) s{i}")
                    cols.append(f"s{i}.*")
            selects.append(f"select {', '.join(cols)} from {' positional join '.join(joins)}")
        offset += part["rows"]
    return "\nunion all by name\n".join(selects)


def check_column(name: str, columns: tuple[str, ...] | list[str], what: str) -> None:
    if name not in columns:
        msg = f"{what} {name!r}: no such column{did_you_mean(name, columns)}; `distill info DIR` lists the columns"
        raise ConfigError(msg)


def _create_views(
    con: duckdb.DuckDBPyConnection,
    ds: Dataset,
    *,
    by: str | None,
    ascending: bool,
    all_rows: bool,
    exclude_ids: pa.Table | None,
    only: int | None = None,
) -> tuple[tuple[str, ...], str | None]:
    """Views `base` and `scored_all` (and `scored` = all of it); returns base's columns and the sort column."""
    if not is_local(ds.root):
        register_object_store(con, ds.root)
    labels = read_labels(ds.root)
    if labels.is_empty():
        con.execute(f"create or replace temp view base as {base_sql(ds, only)}")
    else:
        con.register(
            "review_labels", labels.select("_ord", "id", "review_label", "review_edit", "review_note").to_arrow()
        )
        con.execute(
            f"create or replace temp view base as select b.*, l.* exclude (_ord, id) from ({base_sql(ds, only)}) b "
            "left join review_labels l on b._ord = l._ord and b.id = l.id"
        )
    where = ""
    if exclude_ids is not None:
        con.register("excluded_ids", exclude_ids.select(["id"]))
        where = " where id not in (select id from excluded_ids)"
    columns = tuple(r[0] for r in con.execute("describe base").fetchall())
    if by is None:
        by = next((c for c in DEFAULT_SORT if c in columns), None)
    elif only is None:
        check_column(by, columns, "--by")
    # one partition may lack a stage's columns that others have (the union fills them with null)
    raw = "0.0" if by is None else (f"cast({quote(by)} as double)" if by in columns else "null::double")
    key = f"-{raw}" if ascending else raw
    conds = [cond for col, cond in FLAGS.items() if col in columns]
    eligible = "true" if all_rows or not conds else " and ".join(conds)
    replace = " replace (coalesce(domain_name, domain) as domain)" if "domain_name" in columns else ""
    con.execute(
        f"create or replace temp view scored_all as "
        f"select *{replace}, {key} as sort_key, {raw} as score, {eligible} as eligible from base{where}"
    )
    # a selection chain re-points `scored` at the rows chosen so far; `scored_all` stays the whole dataset
    con.execute("create or replace temp view scored as select * from scored_all")
    return columns, by


def scored_view(
    ds: Dataset,
    *,
    by: str | None = None,
    ascending: bool = False,
    all_rows: bool = False,
    exclude_ids: pa.Table | None = None,
    con: duckdb.DuckDBPyConnection | None = None,
) -> ScoredView:
    """Create views `base` (all columns) and `scored` = `scored_all` (plus sort_key, score, eligible, domain).

    `exclude_ids` (a table with an `id` column) leaves those rows out of `scored_all`: an experiment's held-out
    eval rows, which no arm may train on.
    """
    con = con if con is not None else duckdb.connect()
    columns, by = _create_views(con, ds, by=by, ascending=ascending, all_rows=all_rows, exclude_ids=exclude_ids)
    return ScoredView(
        con,
        (*columns, "sort_key", "score", "eligible"),
        by,
        sum(p["rows"] for p in ds.manifest["partitions"]),
        ascending=ascending,
        all_rows=all_rows,
        exclude_ids=exclude_ids,
    )


def partition_scored(ds: Dataset, only: int, view: ScoredView, types: dict[str, str]) -> pa.Table:
    """One partition's rows of `view`'s `scored_all`, just the columns in `types` (DuckDB type names).

    The narrow rows a sharded selection moves (`engine.select.shards`): computed with the same flags, sort
    key and labels as the whole view, a column this partition lacks arriving as typed nulls.
    """
    con = duckdb.connect()
    try:
        columns, _ = _create_views(
            con,
            ds,
            by=view.sort_column,
            ascending=view.ascending,
            all_rows=view.all_rows,
            exclude_ids=view.exclude_ids,
            only=only,
        )
        have = {*columns, "sort_key", "score", "eligible"}
        cols = [
            f"cast({quote(c)} as {t}) as {quote(c)}" if c in have else f"null::{t} as {quote(c)}"
            for c, t in types.items()
        ]
        return con.sql(f"select {', '.join(cols)} from scored_all").to_arrow_table()
    finally:
        con.close()
