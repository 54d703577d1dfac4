"""The report on real data: its numbers against DuckDB/numpy/Python, and its rendering in headless Chromium."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import duckdb
import numpy as np
import pytest
from typer.testing import CliRunner

from engine import api
from engine.cli import report as report_cli
from tests.conftest import CHROMIUM_FLAGS as BASE_FLAGS

SOURCES = ("alpaca_en_demo.json", "glaive_toolcall_en_demo.json", "dpo_en_demo.json", "c4_demo.jsonl")
CHROMIUM_FLAGS = [*BASE_FLAGS, "--virtual-time-budget=15000"]


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory, data: Path) -> tuple[Path, Path, dict]:
    tmp = tmp_path_factory.mktemp("report")
    ds = tmp / "ds"
    api.ingest([data / s for s in SOURCES], ds)
    api.dedup(ds)
    api.score("length", ds, settings={"min_response_chars": 20})
    result = api.report(ds, out=tmp / "report.html", bins=25)
    return ds, result.out, result.summary


def _embedded(page: Path) -> dict:
    m = re.search(r'<script type="application/json" id="distill-summary">(.*?)</script>', page.read_text(), re.S)
    assert m
    return json.loads(m.group(1).replace("<\\/", "</"))


def _q(ds: Path, sql: str) -> list[tuple]:
    con = duckdb.connect()
    con.execute(f"create view base as select * from read_parquet('{ds}/part-*.parquet')")
    for stage in ("exact_dedup", "near_dedup", "length"):
        con.execute(f"create view {stage} as select * from read_parquet('{ds}/stages/{stage}/part-*.parquet')")
    return con.execute(sql).fetchall()


def test_page_numbers_match_independent_counts(built: tuple[Path, Path, dict]) -> None:
    ds, page, summary = built
    s = _embedded(page)
    assert s == json.loads(json.dumps(summary))  # the page carries exactly what was computed
    assert s["rows"] == _q(ds, "select count(*) from base")[0][0] == 1899
    assert s["kinds"] == dict(_q(ds, "select kind, count(*) from base group by kind"))
    exact = _q(ds, "select count(exact_dup_of), count(distinct exact_dup_of) from exact_dedup")[0]
    assert (s["duplicates"]["exact"]["duplicate_rows"], s["duplicates"]["exact"]["groups"]) == exact
    near = _q(ds, "select count(distinct mh_cluster), count(*) from near_dedup where mh_cluster_size > 1")[0]
    assert (s["duplicates"]["near"]["clusters"], s["duplicates"]["near"]["rows_in_clusters"]) == near
    assert s["duplicates"]["near"]["flagged_rows"] == _q(ds, "select count(*) from near_dedup where not dup_keep")[0][0]
    # funnel: rows left after each stage, row-aligned across the stage files (positional join)
    left = _q(
        ds,
        "select count(*) filter (where e.exact_dup_of is null), "
        "count(*) filter (where e.exact_dup_of is null and n.dup_keep), "
        "count(*) filter (where e.exact_dup_of is null and n.dup_keep and l.len_reason is null) "
        "from exact_dedup e positional join near_dedup n positional join length l",
    )[0]
    assert [f["rows"] for f in s["funnel"]] == [1899, *left]
    reasons = dict(_q(ds, "select len_reason, count(*) from length where len_reason is not null group by 1"))
    assert {r["reason"]: r["rows"] for r in s["reasons"]} == reasons and reasons
    assert s["mix"]["rows"] == [{"domain": "(none)", "achieved_rows": 1899, "achieved_share": 1.0}]


def test_histograms_match_numpy(built: tuple[Path, Path, dict]) -> None:
    ds, _, s = built
    h = next(x for x in s["scores"] if x["column"] == "len_response_chars")
    values = np.array([v for (v,) in _q(ds, "select len_response_chars from length")], dtype=float)
    counts, _ = np.histogram(values, bins=np.array(h["edges"]))
    assert h["counts"] == counts.tolist() and sum(h["counts"]) == len(values)
    assert {x["column"] for x in s["scores"]} >= {"len_prompt_chars", "len_response_tokens", "mh_cluster_size"}
    assert "mh_cluster" not in {x["column"] for x in s["scores"]}  # identifiers have no distribution


def test_length_views_match_a_per_kind_oracle(built: tuple[Path, Path, dict]) -> None:
    ds, _, s = built
    rows = _q(ds, "select kind, response, messages, chosen, text from base")

    def answer(kind: str, response: str, messages: list, chosen: str, text: str) -> str:
        if kind == "chat":
            return [m for m in messages if m["role"] == "assistant"][-1]["content"]
        return {"sft": response, "dpo": chosen, "text": text}[kind]

    lengths = [len(answer(*r)) for r in rows]
    h = next(x for x in s["lengths"] if x["column"] == "response chars")
    assert (h["count"], h["min"], h["max"]) == (len(lengths), min(lengths), max(lengths))


@pytest.mark.skipif(shutil.which("chromium") is None, reason="needs Debian's chromium (installed by .ci/run)")
def test_renders_in_headless_chromium(built: tuple[Path, Path, dict], tmp_path: Path) -> None:
    Image = pytest.importorskip("PIL.Image")
    page = built[1]
    shot = tmp_path / "shot.png"
    base = ["chromium", *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}"]
    subprocess.run([*base, f"--screenshot={shot}", page.as_uri()], check=True, capture_output=True, timeout=120)
    img = np.asarray(Image.open(shot).convert("L"))
    assert img.shape == (2000, 1280)
    assert (img < 240).mean() > 0.03  # text, tables and bars, not a blank page
    dom = subprocess.run(
        [*base, "--dump-dom", page.as_uri()], check=True, capture_output=True, text=True, timeout=120
    ).stdout
    drawn = dom.count('class="main-svg"')  # plotly.js draws 2+ of these in each chart div; none if it fails
    charts = page.read_text().count('class="plotly-graph-div"')
    assert charts >= 8 and drawn >= 2 * charts
    assert "1,899" in dom


def test_cli_writes_the_page(built: tuple[Path, Path, dict], tmp_path: Path) -> None:
    ds = built[0]
    out = tmp_path / "r.html"
    result = CliRunner().invoke(report_cli.app, [str(ds), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert result.output.startswith(f"{out}: ") and "1899 rows" in result.output
    assert _embedded(out)["rows"] == 1899
    bad = CliRunner().invoke(report_cli.app, [str(ds), "--out", str(out), "--bins", "1"])
    assert "--bins 1: expected 2..500 histogram bins" in str(bad.exception)
