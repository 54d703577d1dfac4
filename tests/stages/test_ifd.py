"""The ifd stage: columns and reason codes, the score's definition, chunk resume after a kill, shards that merge."""

from __future__ import annotations

import json
import math
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
import pytest

import engine.models.causal_lm_mlx  # noqa: F401 - loads OpenBLAS before anything imports mlx
from engine import api
from engine.store.dataset import open_dataset
from tests.conftest import DATA
from tests.models.test_ifd_tiny import build_tiny_llama

REPO = Path(__file__).resolve().parents[2]
FAST = {"max_length": 256, "batch_tokens": 2048}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_llama(tmp_path_factory.mktemp("tiny"))


@pytest.fixture(scope="module")
def sources(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """30 alpaca (sft), 12 glaive (chat with tool calls) and 8 c4 (text) real rows."""
    d = tmp_path_factory.mktemp("src")
    alpaca, glaive = d / "alpaca.json", d / "glaive.json"
    alpaca.write_text(json.dumps(json.loads((DATA / "alpaca_en_demo.json").read_text())[:30]))
    glaive.write_text(json.dumps(json.loads((DATA / "glaive_toolcall_en_demo.json").read_text())[:12]))
    c4 = d / "c4.jsonl"
    c4.write_text("\n".join((DATA / "c4_demo.jsonl").read_text().splitlines()[:8]) + "\n")
    return [alpaca, glaive, c4]


def _ingest(sources: list[Path], out: Path, rows: int = 20) -> Path:
    api.ingest(sources, out, partition_rows=rows)
    return out


def _frame(root: Path) -> pl.DataFrame:
    return open_dataset(root).scan().collect()


def test_columns_reasons_and_score_definition(tiny: Path, sources: list[Path], tmp_path: Path) -> None:
    root = _ingest(sources, tmp_path / "ds")
    api.ifd(root, model=str(tiny), **FAST)
    df = _frame(root)
    assert df.height == 50
    text = df.filter(pl.col("kind") == "text")
    assert text["ifd_reason"].unique().to_list() == ["undefined"] and text["ifd_score"].null_count() == 8
    scored = df.filter(pl.col("kind") != "text")
    assert scored["ifd_score"].null_count() == 0
    expect = [math.exp(c - u) for c, u in zip(scored["ifd_loss_cond"], scored["ifd_loss_uncond"], strict=True)]
    assert scored["ifd_score"].to_list() == pytest.approx(expect, rel=1e-12)
    reasons = set(scored["ifd_reason"].drop_nulls())
    assert reasons <= {"truncated", "not_helpful"} and "truncated" in reasons  # max_length 256 cuts long chats
    flags = scored.select(
        ok=pl.col("ifd_valid") == pl.col("ifd_reason").is_null(),
        not_helpful=(pl.col("ifd_reason") == "not_helpful") == ((pl.col("ifd_score") >= 1) & ~pl.col("ifd_valid")),
    )
    assert flags["ok"].all()
    assert scored.filter(pl.col("ifd_valid"))["ifd_score"].max() < 1
    chat = df.filter(pl.col("kind") == "chat")
    assert (chat["ifd_answer_tokens"] > 0).all()


def test_partitioning_does_not_change_a_bit(tiny: Path, sources: list[Path], tmp_path: Path) -> None:
    one = _ingest(sources, tmp_path / "one", rows=1000)
    three = _ingest(sources, tmp_path / "three", rows=20)
    for root in (one, three):
        api.ifd(root, model=str(tiny), **FAST)
    a, b = _frame(one), _frame(three)
    # on a CPU every sequence runs in a batch of its own, so the scores are the same bits
    assert a.select(pl.col("^ifd_.*$")).equals(b.select(pl.col("^ifd_.*$")))


def test_cached_chunks_are_reused(tiny: Path, sources: list[Path], tmp_path: Path) -> None:
    """A chunk finished by an earlier (killed) run is read back, not recomputed: plant one and see it used."""
    root = _ingest(sources, tmp_path / "ds")
    api.ifd(root, model=str(tiny), chunk_rows=5, **FAST)
    first = _frame(root)
    from engine import config as cfgmod
    from engine.stages import ifd as stage

    cfg = cfgmod.from_mapping(stage.IfdConfig, {"model": str(tiny), "chunk_rows": 5, **FAST})
    key = stage._chunk_key(cfg, first["id"][:5])
    planted = root / "stages" / "ifd" / "_chunks" / f"{key}.parquet"
    planted.parent.mkdir(parents=True)
    pl.DataFrame(
        {
            "ifd_loss_cond": [1.0] * 5,
            "ifd_loss_uncond": [2.0] * 5,
            "ifd_answer_tokens": [7] * 5,
            "_truncated": [False] * 5,
        },
        schema=stage._SCORED.to_schema(),
    ).write_parquet(planted)
    (root / "stages" / "ifd" / "part-00000.parquet").unlink()
    api.ifd(root, model=str(tiny), chunk_rows=5, **FAST)
    again = _frame(root)
    assert again["ifd_answer_tokens"][:5].to_list() == [7] * 5
    assert again["ifd_score"][:5].to_list() == pytest.approx([math.exp(-1.0)] * 5)
    assert again[5:].equals(first[5:])
    assert not planted.parent.exists()  # chunks are dropped once their partitions are committed


def test_killed_run_resumes_mid_partition_with_identical_bytes(tiny: Path, sources: list[Path], tmp_path: Path) -> None:
    whole = _ingest(sources, tmp_path / "whole", rows=1000)
    api.ifd(whole, model=str(tiny), chunk_rows=4, **FAST)
    root = _ingest(sources, tmp_path / "killed", rows=1000)
    code = (
        "import engine.models.causal_lm_mlx; from engine import api; "
        f"api.ifd({str(root)!r}, model={str(tiny)!r}, chunk_rows=4, max_length=256, batch_tokens=2048)"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=REPO)
    chunks = root / "stages" / "ifd" / "_chunks"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and len(list(chunks.glob("*.parquet"))) < 3 and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = len(list(chunks.glob("*.parquet")))
    assert 3 <= done < 13, done  # killed mid-partition (50 rows = 13 chunks), some chunks committed
    assert not (root / "stages" / "ifd" / "part-00000.parquet").exists()
    api.ifd(root, model=str(tiny), chunk_rows=4, **FAST)
    name = "stages/ifd/part-00000.parquet"
    assert (root / name).read_bytes() == (whole / name).read_bytes()


def test_shards_merge_into_one_dataset(tiny: Path, sources: list[Path], tmp_path: Path) -> None:
    full = _ingest(sources, tmp_path / "full")
    api.ifd(full, model=str(tiny), **FAST)
    machines = [_ingest(sources, tmp_path / f"m{i}") for i in range(2)]
    reports = [api.ifd(m, model=str(tiny), shard=f"{i}/2", **FAST) for i, m in enumerate(machines)]
    assert [r.written for r in reports] == [2, 1]  # partitions 0, 2 and 1 of 3
    merged = machines[0]
    for f in (machines[1] / "stages" / "ifd").glob("part-*.parquet"):
        shutil.copy(f, merged / "stages" / "ifd" / f.name)
    final = api.ifd(merged, model=str(tiny), **FAST)
    assert (final.written, final.skipped) == (0, 3)
    assert _frame(merged).equals(_frame(full))
    stage_log = [e for e in open_dataset(merged).manifest["stages"] if e["stage"] == "ifd"]
    assert stage_log[0]["status"] == "complete"
