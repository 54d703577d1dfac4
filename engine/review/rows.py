"""The review app's data access: counts, pages and single rows of `scored_all`, and label saves.

No Streamlit here, so every query the app runs is testable on its own. The dataset may be large: each
call is one DuckDB query over the `scored_all` view (which reads only the columns it names), returning a
count, one page of narrow columns with a short preview, or one row in full; nothing dataset-sized
reaches Python. Filter values are bound as `$name` parameters; column names are checked against the view's
columns and quoted, never formatted in from user text.
"""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from engine.errors import ConfigError
from engine.schema import KINDS, dataset_schema, load_kind
from engine.select.scored import ScoredView, check_column, quote, scored_view
from engine.store.dataset import Dataset, open_dataset
from engine.store.labels import EDITABLE, check_edit, labels_path, save_labels
from engine.store.location import is_local

PAGE = 50
"""Rows per table page."""

LABEL_CHOICES = ("unreviewed", "accept", "reject", "regenerated")
"""What the label filter offers: `unreviewed` is a row with no label."""

PREVIEW_CHARS = 100
PREVIEW_FIELDS = ("instruction", "prompt", "problem", "text")
"""The first of these that a row has is its table preview (chat rows use their first turn)."""

_ID_SUFFIXES = ("_hash", "_cluster", "_ord", "src_line", "_of")
_NUMERIC = ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT", "UINTEGER", "UBIGINT")
_FLOATS = ("FLOAT", "DOUBLE", "REAL")
_VIEW_EXTRAS = ("sort_key", "score", "eligible", "review_label", "review_edit", "review_note")

Order = Literal["dataset", "score_asc", "score_desc"]
Gate = Literal["any", "pass", "fail"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Filters:
    """What the sidebar asks for; the defaults select every row in dataset order.

    `score_range` keeps the rows whose `score_column` lies in it (a null there is out); a score `order`
    sorts by `score_column`, or by the view's default score when none is chosen. `gate_reasons` keeps rows
    failing any of the named rules; `labels` keeps rows whose label (or `unreviewed`) is one of them;
    empty tuples filter nothing.
    """

    score_column: str | None = None
    score_range: tuple[float, float] | None = None
    gate: Gate = "any"
    gate_reasons: tuple[str, ...] = ()
    labels: tuple[str, ...] = ()
    order: Order = "dataset"


_SAVES = threading.Lock()
"""One label save at a time in this process: each rewrites the whole labels file from what it read."""


class ReviewRows:
    """One dataset's rows for review: a DuckDB `scored_all` view rebuilt whenever the labels change.

    Every query holds `_lock`: Streamlit starts a new script run (a new thread) when a button is
    pressed while the last run is still drawing, and a DuckDB connection refuses a second caller
    instead of waiting.
    """

    def __init__(self, root: str | Path) -> None:
        self.ds: Dataset = open_dataset(root)
        self.root = self.ds.root
        self.total: int = sum(p["rows"] for p in self.ds.manifest["partitions"])
        self._stamp: tuple[int, int] | None = None
        self._lock = threading.RLock()
        self._load()
        self._find_score_columns()

    def _query(self, sql: str, params: Mapping[str, Any] | None = None) -> tuple[list[str], list[tuple[Any, ...]]]:
        """(column names, rows) of one statement over the view."""
        with self._lock:
            cur = self.view.con.execute(sql, dict(params or {}))
            return [d[0] for d in cur.description], cur.fetchall()

    def _labels_stamp(self) -> tuple[int, int] | None:
        """(mtime, size) of the labels file, so another tab's or process's saves are picked up."""
        path = labels_path(self.root)
        if not is_local(path) or not path.exists():
            return None
        st = Path(str(path)).stat()
        return (st.st_mtime_ns, st.st_size)

    def _load(self) -> None:
        with self._lock:
            self._stamp = self._labels_stamp()
            self.view: ScoredView = scored_view(self.ds)
            self.types: dict[str, str] = {str(n): str(t) for n, t, *_ in self._query("describe scored_all")[1]}

    def _find_score_columns(self) -> None:
        """Once per session: labels never add a score column, and the non-null count scans them all."""
        canonical = set(dataset_schema().names)
        # what a stage appended: every such column shows in the detail pane; the numeric ones that are not ids
        # or cluster numbers, and have a value somewhere, can be filtered and sorted on
        self.stage_columns: tuple[str, ...] = tuple(
            c for c in self.types if c not in canonical and c not in _VIEW_EXTRAS and c != "_ord"
        )
        numeric = [
            c
            for c in self.stage_columns
            if (self.types[c] in _NUMERIC or self.types[c] in _FLOATS or self.types[c].startswith("DECIMAL"))
            and not c.endswith(_ID_SUFFIXES)
        ]
        if numeric:
            counts = self._query(f"select {', '.join(f'count({quote(c)})' for c in numeric)} from scored_all")[1][0]
            numeric = [c for c, n in zip(numeric, counts, strict=True) if n]
        self.score_columns: tuple[str, ...] = tuple(numeric)

    def refresh(self, *, force: bool = False) -> None:
        """Rebuild the view when the labels file changed (always after our own saves)."""
        with self._lock:
            if force or self._labels_stamp() != self._stamp:
                self._load()

    # ------------------------------------------------------------------ what the filters offer

    @property
    def sort_column(self) -> str | None:
        """The column behind the view's `score` (the default sort), or None."""
        return self.view.sort_column

    def gate_reasons(self) -> tuple[str, ...]:
        """The distinct rule names in `gate_reasons` (empty when the gate stage has not run)."""
        if "gate_reasons" not in self.types:
            return ()
        _, got = self._query(
            "select distinct r from (select unnest(gate_reasons) as r from scored_all) where r is not null order by r"
        )
        return tuple(str(r[0]) for r in got)

    def bounds(self, column: str) -> tuple[float, float] | None:
        """(min, max) of a score column over finite values, or None when it has none."""
        check_column(column, self.score_columns, "score column")
        q = quote(column)
        lo, hi = self._query(
            f"select min(v), max(v) from (select cast({q} as double) as v from scored_all) where isfinite(v)"
        )[1][0]
        return None if lo is None else (float(lo), float(hi))

    def is_integer(self, column: str) -> bool:
        return self.types.get(column, "") in _NUMERIC

    # ------------------------------------------------------------------ queries

    def _where(self, f: Filters) -> tuple[str, dict[str, Any]]:
        conds: list[str] = []
        params: dict[str, Any] = {}
        if f.score_column is not None:
            check_column(f.score_column, self.score_columns, "score column")
            if f.score_range is not None:
                conds.append(f"cast({quote(f.score_column)} as double) between $lo and $hi")
                params["lo"], params["hi"] = float(f.score_range[0]), float(f.score_range[1])
        if f.gate != "any" and "gate_pass" in self.types:
            conds.append("coalesce(gate_pass, true)" if f.gate == "pass" else "not coalesce(gate_pass, true)")
        if f.gate_reasons:
            if "gate_reasons" not in self.types:
                msg = f"{self.root}: no gate_reasons column to filter on; run `distill gate {self.root}` first"
                raise ConfigError(msg)
            conds.append("list_has_any(gate_reasons, $reasons::varchar[])")
            params["reasons"] = list(f.gate_reasons)
        if f.labels:
            for label in f.labels:
                if label not in LABEL_CHOICES:
                    msg = f"review label filter {label!r}: expected one of {', '.join(LABEL_CHOICES)}"
                    raise ConfigError(msg)
            label = "coalesce(review_label, 'unreviewed')" if "review_label" in self.types else "'unreviewed'"
            conds.append(f"list_contains($labels::varchar[], {label})")
            params["labels"] = list(f.labels)
        return (" where " + " and ".join(conds) if conds else ""), params

    def _order(self, f: Filters) -> str:
        if f.order == "dataset":
            return "_ord"
        column = f.score_column or self.sort_column
        if column is None:
            return "_ord"
        direction = "asc" if f.order == "score_asc" else "desc"
        return f"{quote(column)} {direction} nulls last, _ord"

    def count(self, f: Filters) -> int:
        where, params = self._where(f)
        return int(self._query(f"select count(*) from scored_all{where}", params)[1][0][0])

    def ord_at(self, f: Filters, pos: int) -> int | None:
        """The `_ord` of the row at position `pos` (0-based) of the filtered, ordered rows."""
        where, params = self._where(f)
        _, got = self._query(
            f"select _ord from scored_all{where} order by {self._order(f)} limit 1 offset $pos", {**params, "pos": pos}
        )
        return int(got[0][0]) if got else None

    def _preview(self) -> str:
        parts = [quote(c) for c in PREVIEW_FIELDS if c in self.types]
        if "messages" in self.types:
            parts.append("messages[1].content")
        text = f"coalesce({', '.join(parts)}, '')" if parts else "''"
        return f"left(regexp_replace({text}, '\\s+', ' ', 'g'), {PREVIEW_CHARS})"

    def page(self, f: Filters, start: int, limit: int = PAGE) -> list[dict[str, Any]]:
        """Rows `start`..`start+limit` of the filtered rows, as narrow dicts for the table."""
        where, params = self._where(f)
        cols = ["_ord", "id", "kind", "domain", f"{self._preview()} as preview"]
        for c in dict.fromkeys(c for c in (self.sort_column, f.score_column) if c is not None):
            cols.append(quote(c))
        if "gate_reasons" in self.types:
            cols.append("gate_reasons")
        cols.append("review_label" if "review_label" in self.types else "null::varchar as review_label")
        names, got = self._query(
            f"select {', '.join(cols)} from scored_all{where} order by {self._order(f)} limit $limit offset $start",
            {**params, "limit": limit, "start": start},
        )
        return [dict(zip(names, r, strict=True)) for r in got]

    def row(self, ord_: int) -> dict[str, Any] | None:
        """Every column of one row, by `_ord`."""
        names, got = self._query("select * from scored_all where _ord = $o", {"o": ord_})
        return dict(zip(names, got[0], strict=True)) if got else None

    # ------------------------------------------------------------------ labels

    def _save(self, rows: list[dict[str, Any]]) -> None:
        with _SAVES:
            save_labels(self.root, rows)
        self.refresh(force=True)

    def label(self, row: Mapping[str, Any], label: str | None, *, note: str | None = None) -> None:
        """Save `label` (None clears it) for `row`, keeping any edit it already has."""
        self._save(
            [
                {
                    "_ord": row["_ord"],
                    "id": row["id"],
                    "review_label": label,
                    "review_edit": row.get("review_edit"),
                    "review_note": (note or "").strip() or None,
                }
            ]
        )

    def save_edit(
        self, row: Mapping[str, Any], values: Mapping[str, str], *, note: str | None = None
    ) -> dict[str, str]:
        """Accept `row` with the fields of `values` that differ from the dataset's text; returns those fields.

        Fields equal to the original are dropped, so the saved edit holds only real changes (an edit
        changed back to the original text removes it).
        """
        kind = str(row["kind"])
        changed = {k: v for k, v in values.items() if v != (row.get(k) or "")}
        check_edit(kind, changed)
        self._save(
            [
                {
                    "_ord": row["_ord"],
                    "id": row["id"],
                    "review_label": "accept",
                    "review_edit": changed or None,
                    "review_note": (note or "").strip() or None,
                }
            ]
        )
        return changed


# ---------------------------------------------------------------------- row display helpers


def fields(kind: str) -> tuple[str, ...]:
    """The kind's canonical fields, in schema order (what the detail pane shows in full)."""
    return tuple(f.name for f in load_kind(kind).fields) if kind in KINDS else ()


def editable(kind: str) -> tuple[str, ...]:
    return EDITABLE.get(kind, ())


def edits_of(row: Mapping[str, Any]) -> dict[str, str]:
    """The row's saved edit as a dict (empty when it has none)."""
    raw = row.get("review_edit")
    return dict(json.loads(raw)) if raw else {}


def field_text(value: Any) -> str:
    """A canonical field as display text: chat turns as `role: content` lines, null as ''."""
    if value is None:
        return ""
    if isinstance(value, list):
        lines = []
        for turn in value:
            content = turn.get("content") or turn.get("tool_calls") or ""
            lines.append(f"{turn.get('role')}: {content}")
        return "\n".join(lines)
    return str(value)


def show_value(value: Any) -> str:
    """A stage column's value, short: floats to 4 significant digits, lists joined, null as '—'."""
    if value is None:
        return "—"
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.4g}"
    if isinstance(value, list):
        return ", ".join(str(v) for v in value) or "(none)"
    return str(value)
