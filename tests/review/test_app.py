"""The review app under Streamlit's AppTest: rows, filters, labels and edits on a real scored dataset.

Counts are checked against Polars on the same files; labels are read back with `read_labels`, the
function the selection uses, so a label the app shows is a label `distill select` sees.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from engine.review.app import KEY_SCRIPT
from engine.review.rows import PAGE, Filters, ReviewRows, show_value
from engine.store.labels import read_labels

App = Callable[[], Any]


def matching(at: Any) -> int:
    """The sidebar's '**N** of M rows match' count."""
    for md in at.sidebar.markdown:
        got = re.fullmatch(r"\*\*([\d,]+)\*\* of [\d,]+ rows match", md.value)
        if got:
            return int(got.group(1).replace(",", ""))
    pytest.fail("no row count in the sidebar")


def shown_instruction(at: Any) -> str:
    return at.text[0].value


def label(ds: Path, ord_: int) -> dict[str, Any] | None:
    rows = read_labels(ds).filter(pl.col("_ord") == ord_).to_dicts()
    return rows[0] if rows else None


def test_first_row_renders_with_its_scores(start_app: App, frame: pl.DataFrame) -> None:
    at = start_app()
    first = frame.row(0, named=True)
    assert at.subheader[0].value == f"Row 1 of {frame.height:,}"
    assert matching(at) == frame.height
    assert shown_instruction(at) == first["instruction"]
    assert at.text[1].value == first["response"]
    scores = dict(zip(at.table[0].value["column"], at.table[0].value["value"], strict=True))
    for col in ("heur_score", "heur_clarity", "len_response_chars", "gate_pass"):
        assert scores[col] == show_value(first[col]), col
    assert any(md.value == "Label: **unreviewed**" for md in at.markdown)
    assert [b.key for b in at.main.button] == ["prev", "next", "accept", "reject", "edit", "clear"]


def test_score_filter_counts_what_polars_counts(start_app: App, frame: pl.DataFrame) -> None:
    at = start_app()
    at.selectbox(key="score_column").select("heur_score").run()
    assert matching(at) == frame["heur_score"].is_not_null().sum()  # a column alone filters only nulls
    at.slider(key="range_heur_score").set_range(0.5, 0.8).run()
    inside = frame.filter(pl.col("heur_score").is_between(0.5, 0.8))
    assert 0 < inside.height < frame.height
    assert matching(at) == inside.height
    assert shown_instruction(at) == inside["instruction"][0]
    at.selectbox(key="order").select("score_asc").run()
    assert shown_instruction(at) == inside.sort("heur_score", "_ord")["instruction"][0]


def test_gate_filters_count_what_polars_counts(start_app: App, frame: pl.DataFrame) -> None:
    at = start_app()
    assert at.multiselect(key="gate_reasons").options == ["citation", "code_fence", "min_words:response", "safety"]
    at.multiselect(key="gate_reasons").select("safety").select("citation").run()
    hit = frame.filter(pl.col("gate_reasons").list.eval(pl.element().is_in(["safety", "citation"])).list.any())
    assert 0 < hit.height < 20
    assert matching(at) == hit.height
    assert shown_instruction(at) == hit["instruction"][0]
    at.multiselect(key="gate_reasons").set_value([]).run()
    at.radio(key="gate").set_value("fail").run()
    assert matching(at) == frame.filter(~pl.col("gate_pass")).height


def test_accept_saves_a_label_and_moves_to_the_next_row(start_app: App, ds: Path, frame: pl.DataFrame) -> None:
    at = start_app()
    at.button(key="accept").click().run()
    saved = label(ds, 0)
    assert saved is not None and saved["review_label"] == "accept" and saved["id"] == frame["id"][0]
    assert read_labels(ds).height == 1
    assert at.subheader[0].value == f"Row 2 of {frame.height:,}"
    assert shown_instruction(at) == frame["instruction"][1]


def test_reject_saves_the_note(start_app: App, ds: Path) -> None:
    at = start_app()
    at.text_input(key="note_0").input("recipe, not an instruction")
    at.button(key="reject").click().run()
    saved = label(ds, 0)
    assert saved is not None and (saved["review_label"], saved["review_note"]) == (
        "reject",
        "recipe, not an instruction",
    )


def test_edit_saves_only_the_changed_field(start_app: App, ds: Path, frame: pl.DataFrame) -> None:
    at = start_app()
    at.button(key="edit").click().run()
    assert [t.key for t in at.text_area] == ["edit_0_instruction", "edit_0_input", "edit_0_response"]
    assert at.text_area(key="edit_0_instruction").value == frame["instruction"][0]
    at.text_area(key="edit_0_response").input("Whisk flour, eggs and milk; cook thin rounds in a hot pan.")
    at.button(key="save_edit").click().run()
    saved = label(ds, 0)
    assert saved is not None and saved["review_label"] == "accept"
    assert json.loads(saved["review_edit"]) == {
        "response": "Whisk flour, eggs and milk; cook thin rounds in a hot pan."
    }
    assert not at.text_area  # the form closed
    at.button(key="prev").click().run()
    assert at.text[1].value == "Whisk flour, eggs and milk; cook thin rounds in a hot pan."  # the row shows its edit
    assert any(md.value == "**response** (edited)" for md in at.markdown)


def test_labels_survive_a_restart_and_filter(start_app: App, ds: Path, frame: pl.DataFrame) -> None:
    at = start_app()
    at.button(key="accept").click().run()
    at.button(key="reject").click().run()
    restarted = start_app()  # a new session and a new view over the same dir
    assert any(md.value == "Label: **accept**" for md in restarted.markdown)
    restarted.multiselect(key="labels").select("unreviewed").run()
    assert matching(restarted) == frame.height - 2
    assert shown_instruction(restarted) == frame["instruction"][2]
    restarted.multiselect(key="labels").set_value(["reject"]).run()
    assert matching(restarted) == 1 and shown_instruction(restarted) == frame["instruction"][1]
    restarted.button(key="clear").click().run()
    assert label(ds, 1) is None and matching(restarted) == 0


def test_next_previous_and_go_to(start_app: App, frame: pl.DataFrame) -> None:
    at = start_app()
    assert at.button(key="prev").disabled
    at.button(key="next").click().run()
    at.button(key="next").click().run()
    assert shown_instruction(at) == frame["instruction"][2]
    at.button(key="prev").click().run()
    assert shown_instruction(at) == frame["instruction"][1]
    at.sidebar.number_input(key="goto").set_value(frame.height + 5)
    at.button(key="go").click().run()  # past the end: the last row
    assert shown_instruction(at) == frame["instruction"][-1] and at.button(key="next").disabled


def test_keys_are_bound(start_app: App) -> None:
    """a, e, j, k are Streamlit shortcuts on the buttons; r, n, p are the page's listener (driven in test_browser)."""
    at = start_app()
    assert {b.key: b.proto.shortcut for b in at.main.button} == {
        "prev": "k",
        "next": "j",
        "accept": "a",
        "reject": "",
        "edit": "e",
        "clear": "",
    }
    for key in ('r: "reject"', 'n: "next"', 'p: "prev"'):
        assert key in KEY_SCRIPT
    assert "a accept · r reject · e edit · j/n next · k/p previous" in at.sidebar.caption[-1].value


def test_two_script_runs_at_once_share_the_view(ds: Path, frame: pl.DataFrame) -> None:
    """A key pressed while a run is drawing starts the next run in a new thread on the same session's view.

    DuckDB refuses a second caller on a busy connection, so without the view's lock one of these raises.
    """
    rows = ReviewRows(ds)
    f = Filters(score_column="heur_score", score_range=(0.3, 0.9), order="score_desc")
    expected = frame.filter(pl.col("heur_score").is_between(0.3, 0.9)).height

    def work(i: int) -> tuple[int, int, int]:
        row = rows.row(i)
        assert row is not None
        if i % 10 == 0:
            rows.label(row, "accept")  # a save rebuilds the view while the other threads query it
        return rows.count(f), len(rows.page(f, i)), row["_ord"] - i

    with ThreadPoolExecutor(4) as pool:
        assert set(pool.map(work, range(60))) == {(expected, PAGE, 0)}
    assert read_labels(ds)["_ord"].to_list() == list(range(0, 60, 10))
