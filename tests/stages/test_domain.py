"""The domain stage: content rules checked row by row against plain Python, mapping, field and default."""

from __future__ import annotations

import json
import re
from pathlib import Path

import polars as pl
import pytest

from engine import api
from engine.errors import ConfigError
from engine.stages.domain import DomainConfig
from engine.store.dataset import open_dataset
from tests.conftest import DATA


def _run(tmp_path: Path, sources: list[Path], domain: str | None = None, **settings: object) -> pl.DataFrame:
    api.ingest(sources, tmp_path / "ds", domain=domain, overwrite=True)
    api.score("domain", tmp_path / "ds", settings=settings)
    return open_dataset(tmp_path / "ds").scan().collect()


def test_rules_agree_with_a_plain_python_reading_of_each_row(tmp_path: Path) -> None:
    df = _run(tmp_path, [DATA / "alpaca_en_demo.json", DATA / "glaive_toolcall_en_demo.json"], order="rules")

    def expected(row: dict) -> str:
        calls = any(m["tool_calls"] is not None or m["role"] == "tool" for m in row["messages"] or [])
        if (row["tools"] or "").strip() not in ("", "[]", "null") or calls:
            return "tool_use"
        turns = "\n".join(m["content"] or "" for m in row["messages"] or [])
        text = "\n".join(t for t in (row["instruction"], row["input"], row["response"], turns) if t)
        if re.search(r"(?m)^####\s*\S", text) or any(
            s in text for s in ("\\boxed{", "\\frac{", "\\sqrt{", "\\(", "\\[", "$$")
        ):
            return "math"
        return "coding" if "```" in text else "general"

    want = [expected(r) for r in df.iter_rows(named=True)]
    assert df["domain_name"].to_list() == want
    counts = df["domain_name"].value_counts()
    assert set(counts["domain_name"]) >= {"tool_use", "coding", "general"}
    assert df.filter(pl.col("domain_name") == "general")["domain_rule"].unique().to_list() == ["default"]


def test_gsm8k_answers_make_math_and_ingest_domain_is_the_fallback(tmp_path: Path) -> None:
    gsm = tmp_path / "gsm.jsonl"
    gsm.write_text("".join((DATA / "gsm8k_train.jsonl").read_text().splitlines(keepends=True)[:200]))
    df = _run(tmp_path, [gsm, DATA / "c4_demo.jsonl"], domain="web")
    rlvr = df.filter(pl.col("kind") == "rlvr")
    assert (rlvr["domain_name"] == "math").all() and (rlvr["domain_rule"] == "rule:math").all()
    text = df.filter(pl.col("kind") == "text")
    assert (text.filter(pl.col("domain_rule") == "field")["domain_name"] == "web").all()
    assert text.filter(pl.col("domain_rule") == "field").height > 0.9 * text.height


def test_map_by_source_and_meta_field_wins_in_the_order_given(tmp_path: Path) -> None:
    rows = [
        {"instruction": "Sort a list in Python.", "output": "```python\nsorted(x)\n```", "category": "code"},
        {"instruction": "Name a color.", "output": "Blue.", "category": "trivia"},
        {"instruction": "Say hi.", "output": "Hi.", "category": "chit-chat"},
    ]
    (tmp_path / "a.json").write_text(json.dumps(rows))
    df = _run(
        tmp_path,
        [tmp_path / "a.json"],
        map=("code=coding", "trivia=knowledge"),
        map_field="meta.category",
        order=("map", "rules"),
    )
    assert df["domain_name"].to_list() == ["coding", "knowledge", "general"]
    assert df["domain_rule"].to_list() == ["map:code", "map:trivia", "default"]
    (tmp_path / "m.csv").write_text("key,domain\na\ncode,programming\n".replace("\na\n", "\n"))
    df = _run(
        tmp_path,
        [tmp_path / "a.json"],
        map_file=str(tmp_path / "m.csv"),
        map_field="meta.category",
        order=("map",),
        default="other",
    )
    assert df["domain_name"].to_list() == ["programming", "other", "other"]


def test_config_errors_name_the_option() -> None:
    with pytest.raises(ConfigError, match="unknown decider 'rule'; did you mean 'rules'"):
        DomainConfig(order=("rule",))
    with pytest.raises(ConfigError, match="expected KEY=DOMAIN"):
        DomainConfig(map=("alpaca",))
    with pytest.raises(ConfigError, match="no such file"):
        DomainConfig(map_file="/nonexistent/map.csv")
