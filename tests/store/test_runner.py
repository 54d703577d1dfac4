"""The stage runner: skip what is up to date, redo what changed, refuse what cannot work."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine import api
from engine.errors import StoreError
from engine.stages import get_stage
from engine.store.dataset import open_dataset
from engine.store.runner import scanned_stages
from tests.conftest import DATA


def test_rerun_skips_and_config_change_rewrites(tmp_path: Path) -> None:
    api.ingest([DATA / "alpaca_en_demo.json"], tmp_path / "ds", partition_rows=250)
    first = api.score("length", tmp_path / "ds")
    assert (first.written, first.skipped, first.rows) == (4, 0, 999)
    again = api.score("length", tmp_path / "ds")
    assert (again.written, again.skipped) == (0, 4)
    changed = api.score("length", tmp_path / "ds", settings={"min_response_chars": "500"})
    assert changed.written == 4
    df = open_dataset(tmp_path / "ds").scan().collect()
    assert (df["len_reason"] == "response_too_short").sum() == (df["response"].str.len_chars() < 500).sum()
    log = open_dataset(tmp_path / "ds").manifest["stages"]
    assert [e["stage"] for e in log] == ["length"]
    assert log[0]["config"]["min_response_chars"] == 500 and log[0]["status"] == "complete"


def test_not_a_dataset_is_a_store_error(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match=r"no such dataset directory; create one with `distill ingest SRC --out"):
        api.score("length", tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(StoreError, match=r"not a dataset directory \(no manifest.json\)"):
        api.info(tmp_path / "empty")


def test_missing_partition_is_reported(tmp_path: Path) -> None:
    api.ingest([DATA / "c4_demo.jsonl"], tmp_path / "ds", partition_rows=100)
    (tmp_path / "ds" / "part-00001.parquet").unlink()
    with pytest.raises(StoreError, match=r"partition part-00001\.parquet is listed in the manifest but missing"):
        api.verify(tmp_path / "ds")


def test_later_stages_leave_out_array_only_stage_files_they_do_not_read(tmp_path: Path) -> None:
    # Polars reads a column of every input of a horizontal concat, the only one whole: a scan needing
    # nothing of embed's file (sem_emb alone) would read every embedding; stages that do not read it get
    # LazyFrames without that file. minhash also writes the narrow mh_shingles, so it is always kept.
    api.ingest([DATA / "alpaca_en_demo.json"], tmp_path / "ds", partition_rows=500)
    for name in ("embed", "minhash", "length"):
        api.score(name, tmp_path / "ds")
    ds = open_dataset(tmp_path / "ds")
    prior = ["embed", "minhash", "length"]
    assert scanned_stages(ds, get_stage("heuristic"), prior) == ["minhash", "length"]
    assert scanned_stages(ds, get_stage("semantic_dedup"), prior) == prior  # reads sem_emb
    assert api.score("heuristic", tmp_path / "ds").written == 2
    df = open_dataset(tmp_path / "ds").scan().collect()
    assert df["heur_score"].is_not_null().all() and df["sem_emb"].is_not_null().all()
    sem = api.score("semantic_dedup", tmp_path / "ds")  # still sees sem_emb through its LazyFrames
    assert sem.written == 2 and open_dataset(tmp_path / "ds").scan().collect()["sem_keep"].sum() > 900
