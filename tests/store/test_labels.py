"""Review labels: saved beside the dataset, newest wins, stale ones ignored, edits applied with fresh ids."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest

from engine import api
from engine.errors import ConfigError
from engine.store.dataset import open_dataset
from engine.store.ids import content_key, hash_ids
from engine.store.labels import apply_edits, current_labels, read_labels, save_labels


@pytest.fixture
def alpaca(tmp_path: Path, data: Path) -> Path:
    rows = json.loads((data / "alpaca_en_demo.json").read_text())[:60]
    (tmp_path / "a.json").write_text(json.dumps(rows))
    api.ingest([tmp_path / "a.json"], tmp_path / "ds", partition_rows=25)
    return tmp_path / "ds"


def _rows(ds: Path) -> pl.DataFrame:
    return open_dataset(ds).scan().with_row_index("_ord").with_columns(pl.col("_ord").cast(pl.Int64)).collect()


def test_labels_survive_reopen_newest_wins_and_none_clears(alpaca: Path) -> None:
    rows = _rows(alpaca)
    r = rows.row
    save_labels(alpaca, [{"_ord": 3, "id": r(3, named=True)["id"], "review_label": "reject", "review_note": "vague"}])
    save_labels(alpaca, [{"_ord": 30, "id": r(30, named=True)["id"], "review_label": "accept"}])
    save_labels(alpaca, [{"_ord": 3, "id": r(3, named=True)["id"], "review_label": "accept"}])
    got = read_labels(alpaca)
    assert got.select("_ord", "review_label", "review_note").rows() == [(3, "accept", None), (30, "accept", None)]
    save_labels(alpaca, [{"_ord": 30, "id": r(30, named=True)["id"], "review_label": None}])
    assert read_labels(alpaca)["_ord"].to_list() == [3]
    with pytest.raises(ConfigError, match="review label 'maybe': expected one of accept, reject, regenerated"):
        save_labels(alpaca, [{"_ord": 1, "id": "x", "review_label": "maybe"}])


def test_a_label_whose_row_changed_is_ignored(alpaca: Path) -> None:
    rows = _rows(alpaca)
    save_labels(alpaca, [{"_ord": 5, "id": "0" * 32, "review_label": "reject"}])  # the id of another content
    save_labels(alpaca, [{"_ord": 6, "id": rows["id"][6], "review_label": "reject"}])
    assert current_labels(read_labels(alpaca), rows.select("_ord", "id"))["_ord"].to_list() == [6]
    eligible = api.sql(alpaca, "select _ord from scored where not eligible").rows
    assert eligible == [(6,)]


def test_edits_apply_with_a_fresh_content_id(alpaca: Path) -> None:
    rows = _rows(alpaca)
    edits = pl.DataFrame(
        {"_ord": [2, 7], "review_edit": [json.dumps({"response": "A better answer."}), None]},
        schema={"_ord": pl.Int64, "review_edit": pl.String},
    )
    out = apply_edits(rows, edits)
    assert out.height == rows.height and out["_ord"].equals(rows["_ord"])
    assert out["response"][2] == "A better answer." and out.drop("response", "id").equals(rows.drop("response", "id"))
    want = hash_ids(out[2].select(content_key(out[2], "sft")).to_series())[0]
    assert out["id"][2] == want != rows["id"][2] and out["id"].drop_nulls().len() == rows.height
    assert (out["id"] == rows["id"]).sum() == rows.height - 1
    bad = pl.DataFrame({"_ord": [2], "review_edit": [json.dumps({"chosen": "x"})]})
    with pytest.raises(
        ConfigError, match="field 'chosen' cannot be edited \\(editable: instruction, input, response\\)"
    ):
        apply_edits(rows, bad)
