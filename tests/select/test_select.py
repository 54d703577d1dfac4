"""`select` writes a valid dataset of exactly the chosen rows, records why, and splits stably."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

from engine import api
from engine.errors import StoreError
from engine.store.dataset import open_dataset
from tests.select.conftest import build
from tests.select.test_queries import _best_first, _pool


def test_output_is_a_verified_dataset_of_the_chosen_rows_with_all_their_columns(scored: Path, tmp_path: Path) -> None:
    r = api.select(scored, ["top_n"], tmp_path / "top", params={"n": "333"})
    assert r.rows == 333 and r.by == "heur_score"
    assert api.verify(tmp_path / "top").ok
    src = open_dataset(scored).scan().with_row_index("_ord").collect()
    out = open_dataset(tmp_path / "top").scan().collect()
    want = _best_first(_pool(scored)).head(333)["_ord"].sort()
    expect = src.filter(pl.col("_ord").is_in(want.implode())).drop("_ord")
    assert out.drop("sel_rank").equals(expect)  # every column, dataset order
    assert out["sel_rank"].sort().to_list() == list(range(1, 334))
    # re-chunked to the input's partition size (700)
    assert [p["rows"] for p in open_dataset(tmp_path / "top").manifest["partitions"]] == [333]


def test_manifest_records_query_text_parameters_and_input_fingerprint(scored: Path, tmp_path: Path) -> None:
    api.select(scored, ["top_pct_per_domain"], tmp_path / "p", params={"pct": "0.1"}, by="heur_response")
    m = open_dataset(tmp_path / "p").manifest
    sel = m["selection"]
    assert sel["query"] == (Path(__file__).parents[2] / "queries" / "top_pct_per_domain.sql").read_text()
    assert sel["params"] == {"pct": 0.1} and sel["by"] == "heur_response"
    assert json.loads((tmp_path / "p" / "selection.json").read_text()) == sel
    # the fingerprint changes when the input's columns change, and only then
    api.select(scored, ["top_pct_per_domain"], tmp_path / "q", params={"pct": "0.1"})
    assert open_dataset(tmp_path / "q").manifest["selection"]["input_fingerprint"] == sel["input_fingerprint"]
    api.score("length", scored, settings={"min_response_chars": 2})
    try:
        api.select(scored, ["top_n"], tmp_path / "r", params={"n": "5"})
        assert open_dataset(tmp_path / "r").manifest["selection"]["input_fingerprint"] != sel["input_fingerprint"]
    finally:
        api.score("length", scored)  # back to the shared fixture's config


def test_chain_mix_then_split_keeps_both_columns_and_only_mixed_rows(scored: Path, tmp_path: Path) -> None:
    r = api.select(scored, ["mix", "split"], tmp_path / "ms", params={"n": "600"})
    out = open_dataset(tmp_path / "ms").scan().collect()
    assert out.height == r.rows == 600
    assert set(out["split"]) == {"train", "valid", "test"} and out["sel_rank"].null_count() == 0
    assert out["id"].n_unique() == 600


def test_splits_do_not_move_when_ten_percent_more_rows_arrive(tmp_path: Path) -> None:
    small = build(tmp_path / "a" / "ds", gsm8k_rows=1000)
    big = build(tmp_path / "b" / "ds", gsm8k_rows=1300)  # ~10% more rows in all
    sa = api.select(small, ["split"], tmp_path / "sa")
    sb = api.select(big, ["split"], tmp_path / "sb")
    assert sb.rows >= sa.rows * 1.08
    a = open_dataset(tmp_path / "sa").scan().select("id", "split").collect()
    b = open_dataset(tmp_path / "sb").scan().select("id", "split").collect()
    both = a.join(b, on="id", suffix="_b")
    assert both.height == a.height  # every old row is still there
    assert (both["split"] == both["split_b"]).all()


def test_existing_output_needs_overwrite_and_input_is_never_the_output(scored: Path, tmp_path: Path) -> None:
    api.select(scored, ["top_n"], tmp_path / "o", params={"n": "3"})
    with pytest.raises(StoreError, match="already exists; pass --overwrite"):
        api.select(scored, ["top_n"], tmp_path / "o", params={"n": "3"})
    api.select(scored, ["top_n"], tmp_path / "o", params={"n": "4"}, overwrite=True)
    assert open_dataset(tmp_path / "o").manifest["rows"] == 4
    with pytest.raises(StoreError, match="must differ from the input"):
        api.select(scored, ["top_n"], scored, params={"n": "3"}, overwrite=True)


def test_cli_select_and_sql(scored: Path, tmp_path: Path) -> None:
    def distill(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "engine.cli.main", *args], capture_output=True, text=True)

    res = distill("select", str(scored), "--query", "mix", "--param", "n=100", "--out", str(tmp_path / "m"))
    assert res.returncode == 0, res.stderr
    assert "mix_plan -> mix by heur_score: 100 of" in res.stdout and "specialty" in res.stdout
    res = distill("sql", str(tmp_path / "m"), "select count(*) as n from scored")
    assert res.returncode == 0 and res.stdout.splitlines()[2].strip() == "100"
    res = distill("select", str(scored), "--query", "top_n", "--out", str(tmp_path / "x"))
    assert res.returncode == 2 and "parameter $n (BIGINT" in res.stderr and "is required" in res.stderr
    res = distill("sql", str(scored), "select nope from scored")
    assert res.returncode == 2 and res.stderr.startswith("Error: sql: Binder Error")


def test_a_selection_of_no_rows_is_an_empty_valid_dataset(scored: Path, tmp_path: Path) -> None:
    r = api.select(scored, ["threshold"], tmp_path / "none", params={"min": "2"})  # heur_score is in [0, 1]
    assert r.rows == 0 and api.verify(tmp_path / "none").ok
    out = open_dataset(tmp_path / "none").scan().collect()
    assert out.height == 0 and "heur_score" in out.columns and "domain_name" in out.columns
