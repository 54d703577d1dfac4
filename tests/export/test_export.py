"""Exports of the real sample datasets: round trips through ingest, trainer loaders, the reference registry."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from engine import api
from engine.cli import export as export_cli
from engine.errors import ConfigError, SchemaError, StoreError
from engine.export.splits import with_split
from engine.store.dataset import open_dataset

SOURCES = ("alpaca_en_demo.json", "glaive_toolcall_en_demo.json", "dpo_en_demo.json", "c4_demo.jsonl")
SHAREGPT_TAGS = {"human", "gpt", "function_call", "observation", "system"}
# the `columns` keys LLaMA-Factory's data/README.md documents (the reference file uses all but query/history)
LF_COLUMNS = {"prompt", "query", "response", "history", "messages", "system", "tools", "images", "videos", "audios"}
LF_COLUMNS |= {"chosen", "rejected", "kto_tag"}


def _lines(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text(encoding="utf-8").split("\n") if x]


@pytest.fixture(scope="module")
def ds(tmp_path_factory: pytest.TempPathFactory, data: Path) -> Path:
    """Every kind: the sample files, the first 500 GSM8K rows, and KTO rows made from the DPO pairs."""
    tmp = tmp_path_factory.mktemp("export")
    gsm = tmp / "gsm8k.jsonl"
    gsm.write_text("".join((data / "gsm8k_train.jsonl").read_text().splitlines(keepends=True)[:500]))
    pairs = json.loads((data / "dpo_en_demo.json").read_text())[:40]
    kto = tmp / "kto.jsonl"
    kto.write_text(
        "".join(
            json.dumps(
                {"prompt": p["conversations"][-1]["value"], "completion": p[side]["value"], "label": side == "chosen"}
            )
            + "\n"
            for p in pairs
            for side in ("chosen", "rejected")
        )
    )
    out = tmp / "ds"
    api.ingest([*(data / s for s in SOURCES), gsm, kto], out)
    api.score("length", out)
    return out


@pytest.fixture(scope="module")
def frame(ds: Path) -> pl.DataFrame:
    return open_dataset(ds).scan().collect()


def _split_of(ids: pl.Series) -> list[str]:
    """The split rule, written independently of engine.export.splits."""
    out = []
    for i in ids.to_list():
        u = int(i[:8], 16) / 2**32
        out.append("train" if u < 0.9 else "valid" if u < 0.95 else "test")
    return out


def test_alpaca_round_trip_gives_the_same_sft_rows(ds: Path, frame: pl.DataFrame, tmp_path: Path) -> None:
    report = api.export(ds, format="alpaca", out=tmp_path / "alpaca", skip_unsupported=True)
    assert report.skipped == {"chat": 300, "text": 300}
    files = sorted((tmp_path / "alpaca").glob("sft_*.jsonl"))
    api.ingest(files, tmp_path / "again", format="alpaca")
    again = open_dataset(tmp_path / "again").scan().collect()
    sft = frame.filter(pl.col("kind") == "sft")
    rlvr = frame.filter(pl.col("kind") == "rlvr")
    assert again.height == sft.height + rlvr.height
    cols = ["id", "instruction", "input", "response"]
    # same canonical fields give the same content-hash id (exact duplicates share one)
    assert set(sft.select(cols).iter_rows()) <= set(again.select(cols).iter_rows())
    # rlvr rows train as "solution\n#### answer"
    want = {(p, f"{s}\n#### {a}") for p, s, a in rlvr.select("problem", "solution", "answer").iter_rows()}
    got = set(again.filter(~pl.col("id").is_in(sft["id"].implode())).select("instruction", "response").iter_rows())
    assert got == want


def test_sharegpt_round_trip_keeps_messages_and_tools(ds: Path, frame: pl.DataFrame, tmp_path: Path) -> None:
    api.export(ds, format="sharegpt", out=tmp_path / "sg", skip_unsupported=True)
    rows = [r for f in sorted((tmp_path / "sg").glob("chat_*.jsonl")) for r in _lines(f)]
    assert {t["from"] for r in rows for t in r["conversations"]} <= SHAREGPT_TAGS
    chat_file = tmp_path / "chat.jsonl"
    chat_file.write_text(
        "".join(
            json.dumps(r) + "\n"
            for r in rows
            if "function_call" in {t["from"] for t in r["conversations"]} or r["tools"]
        )
    )
    api.ingest([chat_file], tmp_path / "again", format="sharegpt")
    again = open_dataset(tmp_path / "again").scan().collect()
    chat = frame.filter(pl.col("kind") == "chat")
    back = again.join(chat.select("id", "messages", "tools"), on="id", suffix="_orig")
    assert back.height >= again.height > 100  # every row found again by id
    assert back["messages"].to_list() == back["messages_orig"].to_list()
    assert back["tools"].to_list() == back["tools_orig"].to_list()


def test_mlx_lm_chat_splits_follow_the_id_hash(ds: Path, frame: pl.DataFrame, tmp_path: Path) -> None:
    report = api.export(ds, format="mlx-lm", out=tmp_path / "mlx", skip_unsupported=True)
    held = frame.filter(pl.col("kind").is_in(["sft", "chat", "rlvr"]))
    want = pl.Series(_split_of(held["id"])).value_counts()
    want_counts = dict(want.iter_rows())
    for split in ("train", "valid", "test"):
        rows = _lines(tmp_path / "mlx" / f"{split}.jsonl")
        assert len(rows) == want_counts.get(split, 0)
        assert all(r["messages"][-1]["role"] == "assistant" for r in rows)
    rows = _lines(tmp_path / "mlx" / "train.jsonl")
    calls = [m for r in rows for m in r["messages"] if "tool_calls" in m]
    assert calls and all(
        c["tool_calls"][0]["type"] == "function" and "name" in c["tool_calls"][0]["function"] for c in calls
    )
    assert all(isinstance(r["tools"], list) for r in rows if "tools" in r)
    assert report.skipped == {"dpo": 300, "kto": 80, "text": 300}


def test_mlx_lm_completions_hold_sft_and_rlvr_only(ds: Path, frame: pl.DataFrame, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"300 chat rows: not held by mlx-lm"):
        api.export(ds, format="mlx-lm", style="completions", out=tmp_path / "c")
    api.export(ds, format="mlx-lm", style="completions", out=tmp_path / "c", skip_unsupported=True)
    rows = [r for s in ("train", "valid", "test") for r in _lines(tmp_path / "c" / f"{s}.jsonl")]
    assert len(rows) == frame.filter(pl.col("kind").is_in(["sft", "rlvr"])).height
    assert all(set(r) == {"prompt", "completion"} and r["prompt"] and r["completion"] for r in rows)


def test_llama_factory_dataset_info_follows_the_reference(ds: Path, data: Path, tmp_path: Path) -> None:
    api.export(ds, format="llama-factory", out=tmp_path / "lf", name="cur")
    ref = json.loads((data / "dataset_info.json").read_text())
    ref_keys = {k for e in ref.values() for k in e}
    ref_columns = {k for e in ref.values() for k in e.get("columns", {})}
    assert ref_columns <= LF_COLUMNS
    info = json.loads((tmp_path / "lf" / "dataset_info.json").read_text())
    groups = {name.split("_")[1] for name in info}
    assert groups == {"sft", "chat", "dpo", "kto", "pt"}
    for name, entry in info.items():
        assert set(entry) <= ref_keys and set(entry["columns"]) <= LF_COLUMNS, name
        assert entry.get("formatting", "alpaca") in {"alpaca", "sharegpt"}
        rows = _lines(tmp_path / "lf" / entry["file_name"])
        assert rows, name
        for r in rows:
            assert set(entry["columns"].values()) <= set(r), name
        if entry.get("formatting") == "sharegpt":
            assert "tags" not in entry  # default from/value tags, as the reference's glaive and dpo entries
            assert all(t["from"] in SHAREGPT_TAGS for r in rows for t in r["conversations"])
    dpo = info["cur_dpo_train"]
    ref_dpo = ref["dpo_en_demo"]
    assert dpo["ranking"] is True and dpo["formatting"] == ref_dpo["formatting"]
    assert ref_dpo["columns"].items() <= dpo["columns"].items()
    for r in _lines(tmp_path / "lf" / dpo["file_name"]):
        assert r["chosen"]["from"] == r["rejected"]["from"] == "gpt"
        turns = r["conversations"][1:] if r["conversations"][0]["from"] == "system" else r["conversations"]
        assert len(turns) % 2 == 1 and turns[-1]["from"] == "human"  # LLaMA-Factory's check, after the system turn
    assert ref["glaive_toolcall_en_demo"]["columns"].items() <= info["cur_chat_train"]["columns"].items()
    kto = info["cur_kto_train"]
    assert "kto_tag" in kto["columns"] and "kto_tag" in ref["kto_en_demo"]["columns"]
    assert {type(r["kto_tag"]) for r in _lines(tmp_path / "lf" / kto["file_name"])} == {bool}
    assert info["cur_pt_train"]["columns"] == ref["c4_demo"]["columns"]
    tools = [r for r in _lines(tmp_path / "lf" / "chat_train.jsonl") if r["tools"]]
    assert tools and all(isinstance(json.loads(r["tools"]), list) for r in tools)


def test_parquet_loads_with_datasets_and_polars(ds: Path, frame: pl.DataFrame, tmp_path: Path) -> None:
    datasets = pytest.importorskip("datasets")
    report = api.export(ds, format="parquet", out=tmp_path / "pq")
    files = {f.split: str(tmp_path / "pq" / f.name) for f in report.files}
    loaded = datasets.load_dataset("parquet", data_files=files, cache_dir=str(tmp_path / "hf"))
    assert {s: loaded[s].num_rows for s in files} == {f.split: f.rows for f in report.files}
    assert sum(loaded[s].num_rows for s in files) == frame.height
    assert {"id", "kind", "messages", "len_response_chars", "split"} <= set(loaded["train"].column_names)
    back = pl.scan_parquet(list(files.values())).collect()
    assert sorted(back["id"].to_list()) == sorted(frame["id"].to_list())
    assert back["split"].to_list() == [s for s in _split_of(back["id"])]


def test_split_column_of_a_selection_is_kept() -> None:
    lf = pl.LazyFrame({"id": ["ffffffff" + "0" * 24, "00000000" + "0" * 24], "split": ["train", "test"]})
    assert with_split(lf).collect()["split"].to_list() == ["train", "test"]
    assert with_split(lf.drop("split")).collect()["split"].to_list() == ["test", "train"]
    with pytest.raises(SchemaError, match="'split': 1 rows have 'dev'"):
        with_split(lf.with_columns(split=pl.Series(["train", "dev"])), where="sel").collect()


def test_existing_out_needs_overwrite_and_no_temp_dir_is_left(ds: Path, frame: pl.DataFrame, tmp_path: Path) -> None:
    api.export(ds, format="jsonl", out=tmp_path / "j")
    with pytest.raises(StoreError, match="already exists; pass --overwrite"):
        api.export(ds, format="jsonl", out=tmp_path / "j")
    with pytest.raises(ConfigError, match="did you mean 'sharegpt'"):
        api.export(ds, format="sharegtp", out=tmp_path / "x")
    api.export(ds, format="jsonl", out=tmp_path / "j", overwrite=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["j"]
    meta = json.loads((tmp_path / "j" / "export.json").read_text())
    assert meta["split_from"] == "id hash" and sum(f["rows"] for f in meta["files"]) == frame.height


def test_cli_prints_files_and_the_summary(ds: Path, frame: pl.DataFrame, tmp_path: Path) -> None:
    out = tmp_path / "lf"
    result = CliRunner().invoke(export_cli.app, [str(ds), "--format", "llama-factory", "--out", str(out), "--quiet"])
    assert result.exit_code == 0, result.output
    assert "  dataset_info.json" not in result.output
    assert result.output.splitlines()[-1].startswith(f"llama-factory: {frame.height} rows in 15 file(s) to {out}")
