"""The length stage: per-kind prompt/response views and one case per reason code."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest

from engine import api
from engine.errors import ConfigError
from engine.stages.length import LengthConfig
from engine.store.dataset import open_dataset
from tests.conftest import DATA


def _scored(tmp_path: Path, rows: list[dict], **settings: object) -> pl.DataFrame:
    (tmp_path / "x.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    api.ingest([tmp_path / "x.jsonl"], tmp_path / "ds", format="alpaca")
    api.score("length", tmp_path / "ds", settings=settings)
    return open_dataset(tmp_path / "ds").scan().collect()


def test_reason_codes(tmp_path: Path) -> None:
    df = _scored(
        tmp_path,
        [
            {"instruction": "Say a word.", "output": "Hi"},
            {"instruction": "Say a word.", "output": "Hello there, friend."},
            {"instruction": "Tell a long story " * 20, "output": "Once upon a time."},
            {"instruction": "Be brief.", "input": "ctx", "output": "x" * 50},
        ],
        min_response_chars=3,
        max_response_chars=40,
        max_prompt_chars=200,
    )
    assert df["len_reason"].to_list() == ["response_too_short", None, "prompt_too_long", "response_too_long"]
    assert df["len_prompt_chars"][3] == len("Be brief.\n\nctx")
    assert df["len_response_tokens"][1] == 5  # Hello there , friend .


def test_views_per_kind_on_real_rows(tmp_path: Path) -> None:
    api.ingest(
        [DATA / "glaive_toolcall_en_demo.json", DATA / "gsm8k_train.jsonl", DATA / "c4_demo.jsonl"], tmp_path / "ds"
    )
    api.score("length", tmp_path / "ds")
    df = open_dataset(tmp_path / "ds").scan().collect()
    chat = df.filter(pl.col("kind") == "chat").row(0, named=True)
    last = [t for t in chat["messages"] if t["role"] == "assistant"][-1]
    assert chat["len_response_chars"] == len(last["content"])
    rlvr = df.filter(pl.col("kind") == "rlvr").row(0, named=True)
    assert rlvr["len_prompt_chars"] == len(rlvr["problem"]) and rlvr["len_response_chars"] == len(rlvr["solution"])
    text = df.filter(pl.col("kind") == "text")
    assert text["len_prompt_chars"].null_count() == text.height


def test_bad_config_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="min_response_chars <= max_response_chars"):
        LengthConfig(min_response_chars=10, max_response_chars=5)
    with pytest.raises(ConfigError, match=r"length: unknown option 'min_chars'; did you mean 'min_response_chars'"):
        api.score("length", DATA, settings={"min_chars": "1"})
