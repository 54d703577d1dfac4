"""The review app: `streamlit run engine/review/app.py -- DIR`, which is what `distill review DIR` runs.

Browse a dataset's rows with their scores, filter them (a score range, gate pass/fail and rule, review
label) and accept, reject or edit the current row. Every action saves at once through
`engine.store.labels` (`DIR/review/labels.parquet`), so labels survive a restart; the app holds no
state worth keeping beyond the current position.

Keys: a accept, r reject, e edit, j/n next, k/p previous. Streamlit's own `shortcut=` drives a, e, j and
k (it shows them on the buttons and ignores them while a text field has focus); Streamlit reserves R for
"rerun", so r, n and p go through a small keydown listener (`KEY_SCRIPT`) that runs before Streamlit's
and clicks the same buttons.
"""

from __future__ import annotations

import math
import sys
from functools import partial
from typing import Any

import streamlit as st

from engine.errors import DistillError, StoreError
from engine.review.rows import (
    LABEL_CHOICES,
    PAGE,
    Filters,
    ReviewRows,
    editable,
    edits_of,
    field_text,
    fields,
    show_value,
)

KEYS = "a accept · r reject · e edit · j/n next · k/p previous"
NO_COLUMN = "(none)"
ORDERS = {"dataset": "dataset order", "score_desc": "score, high first", "score_asc": "score, low first"}

KEY_SCRIPT = """<script>
(() => {
  // r, n, p: Streamlit's shortcut= cannot take R (its rerun key) and gives a button one key only.
  // Capture on window runs before Streamlit's own listener on document, which would rerun on "r".
  const keys = {r: "reject", n: "next", p: "prev"};
  if (window.__distillReviewKeys) return;
  window.__distillReviewKeys = true;
  window.addEventListener("keydown", (e) => {
    if (e.ctrlKey || e.metaKey || e.altKey || e.repeat) return;
    const t = e.target;
    if (t && (t.isContentEditable || ["INPUT", "TEXTAREA", "SELECT"].includes(t.tagName))) return;
    const key = keys[(e.key || "").toLowerCase()];
    if (!key) return;
    const button = document.querySelector(".st-key-" + key + " button");
    if (!button || button.disabled) return;
    e.preventDefault();
    e.stopImmediatePropagation();
    button.click();
  }, true);
})();
</script>"""


def dataset_arg(argv: list[str]) -> str | None:
    """The dataset dir: the first argument after `--` on the `streamlit run` line."""
    return argv[1] if len(argv) > 1 else None


def load_rows(root: str) -> ReviewRows:
    """This session's view of the dataset, rebuilt when the labels file changed under it."""
    rows: ReviewRows | None = st.session_state.get("rows")
    if rows is None or st.session_state.get("root") != root:
        rows = ReviewRows(root)
        st.session_state.rows, st.session_state.root = rows, root
    else:
        rows.refresh()
    return rows


# ---------------------------------------------------------------------- callbacks (run before the rerun)
# They act on `st.session_state.current` and `.filters`, set before the row is drawn, never on arguments
# bound when the buttons were drawn: a key pressed while a rerun is drawing the next row would otherwise
# reach the previous run's buttons and label the row before it.


def _current() -> tuple[ReviewRows, Filters, dict[str, Any]]:
    rows: ReviewRows = st.session_state.rows
    row = rows.row(st.session_state.current)
    if row is None:  # the dataset changed under the app; nothing sensible to label
        msg = f"row {st.session_state.current} is gone from {rows.root}; reload the page"
        raise StoreError(msg)
    return rows, st.session_state.filters, row


def _move(delta: int) -> None:
    rows: ReviewRows = st.session_state.rows
    total = rows.count(st.session_state.filters)
    st.session_state.pos = max(0, min(st.session_state.pos + delta, total - 1))
    st.session_state.editing = None


def _advance(rows: ReviewRows, f: Filters, ord_: int) -> None:
    """After a save: step past the row if it still matches the filters, else its successor slid into place."""
    pos = st.session_state.pos
    if rows.ord_at(f, pos) == ord_:
        pos += 1
    st.session_state.pos = max(0, min(pos, rows.count(f) - 1))
    st.session_state.editing = None


def _label(label: str | None) -> None:
    rows, f, row = _current()
    rows.label(row, label, note=st.session_state.get(f"note_{row['_ord']}"))
    if label is None:
        st.session_state.editing = None
    else:
        _advance(rows, f, row["_ord"])


def _save_edit() -> None:
    rows, f, row = _current()
    values = {name: st.session_state[f"edit_{row['_ord']}_{name}"] for name in editable(str(row["kind"]))}
    rows.save_edit(row, values, note=st.session_state.get(f"note_{row['_ord']}"))
    _advance(rows, f, row["_ord"])


def _edit() -> None:
    st.session_state.editing = st.session_state.current


def _cancel_edit() -> None:
    st.session_state.editing = None


def _goto(total: int) -> None:
    st.session_state.pos = max(0, min(int(st.session_state.goto) - 1, total - 1))
    st.session_state.editing = None


def _pick(key: str, start: int) -> None:
    picked = st.session_state[key].selection.rows
    if picked:
        st.session_state.pos = start + picked[0]
        st.session_state.editing = None


# ---------------------------------------------------------------------- page parts


def sidebar(rows: ReviewRows) -> Filters:
    """The filter widgets; returns what they ask for."""
    with st.sidebar:
        st.title("distill review")
        st.caption(str(rows.root))
        column = st.selectbox(
            "Score column",
            [NO_COLUMN, *rows.score_columns],
            key="score_column",
            help="Filter on a range of this column (rows where it is null are left out); Order sorts by it.",
        )
        score_column = None if column == NO_COLUMN else column
        score_range = None
        if score_column is not None:
            bounds = rows.bounds(score_column)
            if bounds is not None:
                score_range = _range_slider(rows, score_column, bounds)
        gate = "any"
        if "gate_pass" in rows.types:
            gate = st.radio("Gate", ["any", "pass", "fail"], horizontal=True, key="gate")
        reasons: list[str] = []
        if "gate_reasons" in rows.types:
            reasons = st.multiselect(
                "Gate reason", rows.gate_reasons(), key="gate_reasons", help="Rows failing any of these rules."
            )
        labels = st.multiselect("Review label", LABEL_CHOICES, key="labels", help="Empty: any label.")
        order = st.selectbox("Order", list(ORDERS), format_func=ORDERS.__getitem__, key="order")
    return Filters(
        score_column=score_column,
        score_range=score_range,
        gate=gate,  # type: ignore[arg-type]
        gate_reasons=tuple(reasons),
        labels=tuple(labels),
        order=order,  # type: ignore[arg-type]
    )


def _range_slider(rows: ReviewRows, column: str, bounds: tuple[float, float]) -> tuple[float, float]:
    lo, hi = bounds
    if rows.is_integer(column):
        lo_i, hi_i = int(lo), int(hi)
        if lo_i == hi_i:
            return (lo, hi)
        got = st.slider(f"{column} range", lo_i, hi_i, (lo_i, hi_i), key=f"range_{column}")
        return (float(got[0]), float(got[1]))
    # about 100-1000 steps whatever the scale (a 0-1 score or a perplexity), with the ends widened to the
    # step's grid so the full range keeps every row
    exp = math.floor(math.log10((hi - lo) / 100)) if hi > lo else -2
    step, digits = 10.0**exp, max(0, -exp)
    lo_f, hi_f = round(math.floor(lo / step) * step, digits), round(math.ceil(hi / step) * step, digits)
    if lo_f == hi_f:
        return (lo, hi)
    got_f = st.slider(f"{column} range", lo_f, hi_f, (lo_f, hi_f), step=step, key=f"range_{column}")
    return (float(got_f[0]), float(got_f[1]))


def actions(row: dict[str, Any], pos: int, total: int) -> None:
    """Previous, Next, Accept, Reject, Edit and Clear, with their keys, plus the note field."""
    kind = str(row["kind"])
    cols = st.columns(6)
    cols[0].button("Previous", key="prev", shortcut="K", help="k or p", on_click=_move, args=(-1,), disabled=pos == 0)
    cols[1].button(
        "Next", key="next", shortcut="J", help="j or n", on_click=_move, args=(1,), disabled=pos >= total - 1
    )
    cols[2].button("Accept", key="accept", type="primary", shortcut="A", help="a", on_click=_label, args=("accept",))
    cols[3].button(
        "Reject  R",
        key="reject",
        help="r (the note below is saved with it)",
        on_click=_label,
        args=("reject",),
    )
    cols[4].button(
        "Edit",
        key="edit",
        shortcut="E",
        help="e: rewrite the text fields, then save (accepts the row)",
        on_click=_edit,
        disabled=not editable(kind),
    )
    cols[5].button(
        "Clear label",
        key="clear",
        help="back to unreviewed",
        on_click=_label,
        args=(None,),
        disabled=row.get("review_label") is None,
    )
    st.text_input(
        "Note (saved with accept, reject or edit)",
        value=row.get("review_note") or "",
        key=f"note_{row['_ord']}",
        placeholder="why, for the record",
    )


def edit_form(row: dict[str, Any]) -> None:
    kind, ord_ = str(row["kind"]), row["_ord"]
    current = {**{name: row.get(name) or "" for name in editable(kind)}, **edits_of(row)}
    with st.form(f"edit_form_{ord_}"):
        st.markdown(f"**Edit row {ord_}**: saving stores the changed fields and accepts the row.")
        for name in editable(kind):
            st.text_area(name, value=current[name], key=f"edit_{ord_}_{name}", height=160)
        left, right = st.columns(2)
        left.form_submit_button("Save edit", key="save_edit", type="primary", on_click=_save_edit)
        right.form_submit_button("Cancel", key="cancel_edit", on_click=_cancel_edit)


def detail(rows: ReviewRows, row: dict[str, Any]) -> None:
    """The row in full: its kind's fields (edited text where it has an edit), every stage column, its label."""
    edits = edits_of(row)
    text_col, score_col = st.columns([3, 2])
    with text_col:
        for name in fields(str(row["kind"])):
            value = edits.get(name, row.get(name))
            if value in (None, "") and name not in edits:
                continue
            st.markdown(f"**{name}**" + (" (edited)" if name in edits else ""))
            st.text(field_text(value))
            if name in edits:
                with st.expander(f"original {name}"):
                    st.text(field_text(row.get(name)))
    with score_col:
        label = row.get("review_label") or "unreviewed"
        st.markdown(f"Label: **{label}**" + (f" · note: {row['review_note']}" if row.get("review_note") else ""))
        if "gate_reasons" in row:
            reasons = row["gate_reasons"] or []
            st.markdown("Gate: " + (f"**failed** {', '.join(reasons)}" if reasons else "passed"))
        shown = [(c, row.get(c)) for c in rows.stage_columns if row.get(c) is not None]
        shown += [("score", row.get("score")), ("eligible", row.get("eligible"))]
        st.table({"column": [c for c, _ in shown], "value": [show_value(v) for _, v in shown]})


def page_table(rows: ReviewRows, f: Filters, pos: int) -> None:
    """The page of rows around the current one; picking a row makes it current."""
    start = pos - pos % PAGE
    data = rows.page(f, start)
    table = [
        {
            " ": "▶" if start + i == pos else "",
            "#": start + i + 1,
            **{k: (", ".join(v) if isinstance(v, list) else v) for k, v in r.items() if k not in ("id", "preview")},
            "preview": r["preview"],  # last: the widest, so the scores stay in view
            "id": r["id"][:12],
        }
        for i, r in enumerate(data)
    ]
    key = f"table_{pos}"
    st.dataframe(
        table,
        hide_index=True,
        on_select=partial(_pick, key, start),
        selection_mode="single-row",
        key=key,
    )


def main() -> None:
    st.set_page_config(page_title="distill review", layout="wide")
    root = dataset_arg(sys.argv)
    if root is None:
        st.error("no dataset: run `distill review DIR`")
        st.stop()
    try:
        rows = load_rows(root)
    except DistillError as exc:
        st.error(str(exc))
        st.stop()
    st.html(KEY_SCRIPT, unsafe_allow_javascript=True)
    f = sidebar(rows)
    st.session_state.setdefault("pos", 0)
    st.session_state.setdefault("editing", None)
    if st.session_state.get("filters") != f:  # new filters: start at their first row
        st.session_state.filters, st.session_state.pos, st.session_state.editing = f, 0, None
    total = rows.count(f)
    st.sidebar.markdown(f"**{total:,}** of {rows.total:,} rows match")
    if total == 0:
        st.info("No rows match the filters.")
        return
    pos = st.session_state.pos = max(0, min(st.session_state.pos, total - 1))
    ord_ = rows.ord_at(f, pos)
    row = rows.row(ord_) if ord_ is not None else None
    if row is None:
        st.error("the row under the cursor went away; change a filter to reload")
        return
    st.session_state.current = row["_ord"]  # what the buttons act on, set before anything of the row is drawn
    st.subheader(f"Row {pos + 1:,} of {total:,}")
    st.caption(
        f"_ord {row['_ord']} · id {row['id']} · {row['kind']} · domain {row.get('domain') or '—'} · {row['source']}"
    )
    actions(row, pos, total)
    if st.session_state.editing == row["_ord"]:
        edit_form(row)
    detail(rows, row)
    page_table(rows, f, pos)
    # a form, not a widget mirroring `pos`: a mirrored value can reach the browser late (a key pressed while
    # the script runs), and the stale value comes back as a "change" that jumps to the old row
    with st.sidebar.form("goto_form", border=False):
        st.number_input("Go to row", min_value=1, value=1, step=1, key="goto")
        st.form_submit_button("Go", key="go", on_click=_goto, args=(total,))
    st.sidebar.caption(f"Keys: {KEYS}")


if __name__ == "__main__":  # `streamlit run` and AppTest run the script as __main__; importing it runs nothing
    main()
