"""Regenerate rejected rows against a real local OpenAI-compatible server, and what selection makes of labels."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest
from fake_openai import FakeOpenAI
from typer.testing import CliRunner

from engine import api
from engine.cli.main import app
from engine.generate.budget import Limits
from engine.store.dataset import open_dataset
from engine.store.labels import read_labels, save_labels


@pytest.fixture
def qa(tmp_path: Path, server: FakeOpenAI, data: Path) -> Path:
    (tmp_path / "w.txt").write_text((data / "wiki_demo.txt").read_text()[:8000])
    api.chunk([tmp_path / "w.txt"], tmp_path / "ch", chunk_size=1500, overlap=0)
    api.generate(tmp_path / "ch", teacher=[f"t=m@{server.url}"], out=tmp_path / "qa", cache=tmp_path / "c.db", pairs=2)
    return tmp_path / "qa"


def _rows(ds: Path) -> pl.DataFrame:
    return open_dataset(ds).scan().with_row_index("_ord").with_columns(pl.col("_ord").cast(pl.Int64)).collect()


def _label(ds: Path, rows: pl.DataFrame, ords: list[int], label: str, **extra: object) -> None:
    save_labels(ds, [{"_ord": o, "id": rows["id"][o], "review_label": label, **extra} for o in ords])


def _select_all(ds: Path, out: Path) -> pl.DataFrame:
    api.select(ds, ["top_n"], out, params={"n": "100000"}, overwrite=True)
    assert api.verify(out).ok
    return open_dataset(out).scan().collect()


def test_rejected_rows_are_left_out_then_regenerated_and_selected_with_the_edit(
    qa: Path, server: FakeOpenAI, tmp_path: Path
) -> None:
    rows = _rows(qa)
    assert rows.height >= 8
    _label(qa, rows, [0], "reject", review_note="too vague, name the year")
    _label(qa, rows, [1, 2], "reject")
    _label(qa, rows, [3], "accept", review_edit={"instruction": "What does the passage say first?"})
    picked = _select_all(qa, tmp_path / "sel1")
    assert picked.height == rows.height - 3 and not set(rows["id"][:3]) & set(picked["id"])
    edited = picked.filter(pl.col("instruction") == "What does the passage say first?")
    assert edited.height == 1 and edited["id"][0] != rows["id"][3] and edited["response"][0] == rows["response"][3]

    server.prompts.clear()
    rep = api.regenerate(qa, teacher=[f"t=m@{server.url}"], cache=tmp_path / "c.db")
    t = rep.tally
    assert (t.rejected, t.regenerated, t.failed, t.pending, t.skipped) == (3, 3, 0, 0, 0)
    assert len(server.prompts) == 3 and all("A reviewer rejected the previous response" in p for p in server.prompts)
    asked0 = next(p for p in server.prompts if rows["instruction"][0] in p)
    meta0 = json.loads(rows["meta"][0])
    assert "The reviewer's note: too vague, name the year" in asked0 and rows["response"][0] in asked0
    assert meta0["chunk_text"][:200] in asked0  # the source passage goes with a generated Q&A row
    labels = read_labels(qa).sort("_ord")
    regen = labels.filter(pl.col("review_label") == "regenerated")
    assert regen["_ord"].to_list() == [0, 1, 2] and set(regen["review_by"]) == {"regenerate:t"}
    want = ["Revised response to: " + q for q in rows["instruction"][:3]]
    assert [json.loads(e)["response"] for e in regen["review_edit"]] == want

    picked = _select_all(qa, tmp_path / "sel2")
    assert picked.height == rows.height and set(want) <= set(picked["response"])
    manifest = json.loads((qa / "manifest.json").read_text())
    assert manifest["regenerate"][-1]["tally"]["regenerated"] == 3
    again = api.regenerate(qa, teacher=[f"t=m@{server.url}"], cache=tmp_path / "c.db")
    assert again.tally.rejected == 0 and len(server.prompts) == 3


def test_budget_stop_keeps_the_rest_rejected_and_the_cli_reports(qa: Path, server: FakeOpenAI, tmp_path: Path) -> None:
    rows = _rows(qa)
    _label(qa, rows, [0, 1, 2, 4], "reject")
    cut = api.regenerate(
        qa, teacher=[f"t=m@{server.url}"], cache=tmp_path / "c.db", limits=Limits(max_requests=1), concurrency=1
    )
    assert (cut.tally.regenerated, cut.tally.pending, cut.budget_exhausted) == (1, 3, True)
    assert read_labels(qa).group_by("review_label").len().sort("review_label").rows() == [
        ("regenerated", 1),
        ("reject", 3),
    ]
    res = CliRunner().invoke(
        app, ["regenerate", str(qa), "--teacher", f"t=m@{server.url}", "--cache", str(tmp_path / "c.db"), "-q"]
    )
    assert res.exit_code == 0, res.output
    assert "3 rejected rows: 3 regenerated, 0 failed, 0 pending, 0 skipped" in res.output
    assert set(read_labels(qa)["review_label"]) == {"regenerated"}
