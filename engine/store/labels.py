"""Review labels: a small table beside the dataset, `DIR/review/labels.parquet`, one row per reviewed row.

Rows are keyed by `_ord` (the row's position, as in the `scored` view) and carry the row's `id`, so a
label whose row has since changed is ignored rather than applied to the wrong row. A label is
`accept`, `reject` or `regenerated` (a teacher rewrote the row after a reject; it is eligible again
and waits for another look). `review_edit` is a JSON object {field: new text} over the kind's text
fields (`EDITABLE`); the selection writes rows with their edits applied (and a fresh id).
Every save rewrites the whole table through a temp file and a rename, so a crash never leaves half
of it, and the newest label of a row wins.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime

import polars as pl

from engine.errors import ConfigError, StoreError
from engine.store.ids import content_key, hash_ids
from engine.store.location import Where, is_local
from engine.store.partitions import write_parquet_atomic

LABELS = ("accept", "reject", "regenerated")
SCHEMA = {
    "_ord": pl.Int64,
    "id": pl.String,
    "review_label": pl.String,
    "review_edit": pl.String,
    "review_note": pl.String,
    "review_by": pl.String,
    "review_at": pl.String,
}
EDITABLE: dict[str, tuple[str, ...]] = {
    "sft": ("instruction", "input", "response"),
    "dpo": ("prompt", "chosen", "rejected"),
    "kto": ("prompt", "completion"),
    "rlvr": ("problem", "solution", "answer"),
    "text": ("text",),
    "chat": (),
}
"""The text fields a reviewer (or a teacher, through `distill regenerate`) may rewrite, per kind."""


def labels_path(root: Where) -> Where:
    return root / "review" / "labels.parquet"


def read_labels(root: Where) -> pl.DataFrame:
    """The saved labels (an empty frame with the schema when nothing was reviewed yet)."""
    path = labels_path(root)
    if not path.exists():
        return pl.DataFrame(schema=SCHEMA)
    return pl.read_parquet(str(path)).select(list(SCHEMA)).cast(SCHEMA)  # type: ignore[arg-type]


def check_edit(kind: str, edit: Mapping[str, str]) -> None:
    allowed = EDITABLE.get(kind, ())
    for field in edit:
        if field not in allowed:
            what = ", ".join(allowed) if allowed else "none (edit chat rows in the source and re-ingest)"
            msg = f"edit of {kind} row: field {field!r} cannot be edited (editable: {what})"
            raise ConfigError(msg)


def save_labels(
    root: Where,
    rows: Iterable[Mapping[str, object]],
    *,
    by: str = "human",
) -> pl.DataFrame:
    """Merge labels into the table and write it; each row needs `_ord`, `id` and `review_label`.

    Optional keys: `review_edit` (a dict or JSON text), `review_note`. `review_label` None removes the
    row's label (back to unreviewed). Returns the merged table.
    """
    now = datetime.now(UTC).isoformat(timespec="seconds")
    new = []
    for r in rows:
        label = r.get("review_label")
        if label is not None and label not in LABELS:
            msg = f"review label {label!r}: expected one of {', '.join(LABELS)}"
            raise ConfigError(msg)
        edit = r.get("review_edit")
        if isinstance(edit, Mapping):
            edit = json.dumps(dict(edit), ensure_ascii=False, sort_keys=True) if edit else None
        new.append(
            {
                "_ord": int(r["_ord"]),  # type: ignore[call-overload]
                "id": str(r["id"]),
                "review_label": label,
                "review_edit": edit,
                "review_note": r.get("review_note") or None,
                "review_by": str(r.get("review_by") or by),
                "review_at": now,
            }
        )
    merged = (
        pl.concat([read_labels(root), pl.DataFrame(new, schema=SCHEMA)])
        .unique("_ord", keep="last", maintain_order=True)
        .filter(pl.col("review_label").is_not_null() | pl.col("review_edit").is_not_null())
        .sort("_ord")
    )
    path = labels_path(root)
    if is_local(path):
        path.parent.mkdir(parents=True, exist_ok=True)  # type: ignore[union-attr]
    write_parquet_atomic(merged, path)
    return merged


def current_labels(labels: pl.DataFrame, ids: pl.DataFrame) -> pl.DataFrame:
    """The labels whose row still has the id it had when labelled; `ids` has `_ord` and `id`."""
    return labels.join(ids.select("_ord", "id"), on=["_ord", "id"], how="semi")


def apply_edits(df: pl.DataFrame, edits: pl.DataFrame) -> pl.DataFrame:
    """Rows of a canonical partition with their edits applied and their ids recomputed.

    `df` has a `_ord` column; `edits` has `_ord` and `review_edit` (JSON). Rows without an edit are
    returned unchanged, in order.
    """
    edits = edits.filter(pl.col("review_edit").is_not_null())
    if edits.is_empty():
        return df
    changed: list[pl.DataFrame] = []
    by_ord = dict(zip(edits["_ord"].to_list(), edits["review_edit"].to_list(), strict=True))
    hit = df.filter(pl.col("_ord").is_in(list(by_ord)))
    for kind in hit["kind"].unique().to_list():
        rows = hit.filter(pl.col("kind") == kind)
        updates: dict[str, list[str | None]] = {}
        for i, o in enumerate(rows["_ord"].to_list()):
            edit = json.loads(by_ord[o])
            check_edit(kind, edit)
            for field, value in edit.items():
                updates.setdefault(field, list(rows[field].to_list()))[i] = value
        rows = rows.with_columns(pl.Series(f, v, dtype=pl.String) for f, v in updates.items())
        changed.append(rows.with_columns(hash_ids(rows.select(content_key(rows, kind)).to_series())))
    patched = pl.concat(changed)
    if patched.height != hit.height:
        msg = "review edits: rows went missing while applying edits"
        raise StoreError(msg)
    return df.update(patched, on="_ord")
