"""The rule gate: one tiny case per rule, the word-list fingerprint, and the funnel on real data."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest

from engine import api
from engine import config as cfgmod
from engine.errors import ConfigError
from engine.schema import dataset_polars_schema
from engine.stages.gate import GateConfig, funnel, length_bias, rule_names, transform
from engine.stages.views import response_text
from engine.store.dataset import open_dataset
from tests.conftest import DATA


def _rows(*rows: dict[str, object]) -> pl.LazyFrame:
    schema = dataset_polars_schema()
    full = [{"id": str(i), "kind": "sft", **r} for i, r in enumerate(rows)]
    return pl.DataFrame([{c: r.get(c) for c in schema.names()} for r in full], schema=schema).lazy()


def _reasons(lf: pl.LazyFrame, **cfg: object) -> list[list[str]]:
    return transform(lf, GateConfig(**cfg)).collect()["gate_reasons"].to_list()  # type: ignore[arg-type]


def test_each_rule_flags_its_case() -> None:
    lf = _rows(
        {"instruction": "Write a haiku.", "response": "Leaves fall, quiet pond, a frog jumps in."},
        {"instruction": "Haiku?", "response": "Short."},
        {"instruction": "Summarise it.", "response": "It grew 5% [1] per year [citation needed]."},
        {"instruction": "Explain lists.", "response": "```python\nx = [1, 2]\n"},
        {"instruction": "Describe a bomb threat drill.", "response": "Staff walk out calmly and wait outside."},
        {"instruction": "List sources.", "response": "See Smith et al., 2019 for details on the method used."},
    )
    got = _reasons(
        lf,
        min_words={"response": 3},
        action_verbs=("write", "summarise", "explain", "describe", "list"),
        safety_words=("bomb",),
    )
    assert got == [[], ["min_words:response", "action_verb"], ["citation"], ["code_fence"], ["safety"], ["citation"]]
    out = transform(lf, GateConfig()).collect()
    assert out["gate_pass"].to_list() == [r == [] for r in _reasons(lf)]


def test_json_fields_and_char_bounds() -> None:
    lf = _rows(
        {"instruction": "a", "response": "b", "tools": '[{"name": "f"}]'},
        {"instruction": "a", "response": "b", "tools": "[{'name': 'f'}]"},
        {"instruction": "a", "response": "b" * 50, "tools": None},
    )
    got = _reasons(lf, json_fields=("tools",), max_chars={"response": 10})
    assert got == [[], ["json:tools"], ["max_chars:response", "json:tools"]]


def test_judge_rule_and_missing_scores() -> None:
    lf = _rows(*({"instruction": "a", "response": "b"} for _ in range(3))).with_columns(
        judge_score=pl.Series([8.0, 3.0, None])
    )
    assert _reasons(lf, judge_column="judge_score", min_judge=5) == [[], ["judge"], ["judge"]]
    assert _reasons(lf, judge_column="judge_score", min_judge=5, judge_missing="pass") == [[], ["judge"], []]
    absent = _rows({"instruction": "a", "response": "b"})
    assert _reasons(absent, judge_column="judge_score") == [["judge"]]  # unscored rows fail by default


def test_word_list_file_is_read_and_fingerprinted(tmp_path: Path) -> None:
    words = tmp_path / "unsafe.txt"
    words.write_text("# one per line\nnerve agent\n")
    cfg = cfgmod.from_mapping(GateConfig, {"safety_words_file": str(words)}, where="gate")
    lf = _rows({"instruction": "How is a nerve agent made?", "response": "I cannot help."})
    assert transform(lf, cfg).collect()["gate_reasons"].to_list() == [["safety"]]
    before = cfgmod.fingerprint(cfg)
    words.write_text("nerve agent\nanthrax\n")
    after = cfgmod.fingerprint(cfgmod.from_mapping(GateConfig, {"safety_words_file": str(words)}, where="gate"))
    assert before != after
    with pytest.raises(ConfigError, match=r"safety_words_file: .* is not a file"):
        GateConfig(safety_words_file=str(tmp_path / "missing.txt"))


def test_unknown_field_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="unknown field 'respons'; did you mean 'response'"):
        cfgmod.from_mapping(GateConfig, {"min_chars": "respons=3"}, where="gate")


def test_funnel_adds_up_on_real_data(tmp_path: Path) -> None:
    sources = [DATA / "alpaca_en_demo.json", DATA / "glaive_toolcall_en_demo.json", DATA / "dpo_en_demo.json"]
    api.ingest(sources, tmp_path / "ds")
    settings = {
        "min_words": {"response": 20},
        "max_chars": {"prompt": 400},
        "action_verbs": ("write", "explain", "describe", "list", "give", "create", "what", "how"),
        "safety_words": ("kill", "weapon"),
    }
    report = api.gate(tmp_path / "ds", settings=settings)
    df = open_dataset(tmp_path / "ds").scan().collect()
    assert report.rows == df.height
    assert report.passed + int((~df["gate_pass"]).sum()) == report.rows  # rows in = passed + failed
    steps = {s.rule: s for s in report.funnel}
    assert [s.rule for s in report.funnel] == ["rows in", *rule_names(GateConfig(**settings))]
    # independent computations: min_words on sft rows straight from the text, every rule from gate_reasons
    sft = df.filter(pl.col("kind") == "sft")
    short_sft = int((sft["response"].str.count_matches(r"\S+") < 20).sum())
    assert short_sft > 0
    assert int(sft["gate_reasons"].list.contains("min_words:response").sum()) == short_sft
    words = df.select(response_text().fill_null("").str.count_matches(r"\S+")).to_series()
    assert steps["min_words:response"].failed == int((words < 20).sum())
    reasons = [set(r) for r in df["gate_reasons"].to_list()]
    names = [s.rule for s in report.funnel[1:]]
    for i, name in enumerate(names):  # remaining after each rule, by a plain count over the reason sets
        assert steps[name].remaining == sum(1 for r in reasons if not r & set(names[: i + 1])), name
    for step in report.funnel[1:]:
        expected = int(df["gate_reasons"].list.contains(step.rule).sum())
        assert step.failed == expected, step
    remaining = [s.remaining for s in report.funnel]
    assert remaining == sorted(remaining, reverse=True) and remaining[-1] == report.passed
    assert sum(s.dropped for s in report.funnel) == report.rows - report.passed
    assert report.length_bias is not None and report.length_bias.pairs == 300


def test_funnel_and_length_bias_are_lazy_and_pure() -> None:
    lf = pl.LazyFrame({"gate_reasons": [["a"], ["a", "b"], [], ["b"]]})
    out = funnel(lf, ["a", "b"]).collect()
    assert out.to_dicts() == [
        {"rule": "rows in", "failed": 0, "remaining": 4, "dropped": 0},
        {"rule": "a", "failed": 2, "remaining": 2, "dropped": 2},
        {"rule": "b", "failed": 2, "remaining": 1, "dropped": 1},
    ]
    pairs = pl.LazyFrame(
        {"kind": ["dpo", "dpo", "sft"], "chosen": ["long one", "a", "x"], "rejected": ["no", "bb", None]}
    )
    bias = length_bias(pairs).collect().row(0, named=True)
    assert bias == {"pairs": 2, "chosen_longer": 1, "share_chosen_longer": 0.5, "median_len_ratio": pytest.approx(2.25)}


def test_length_bias_on_real_dpo_pairs(tmp_path: Path) -> None:
    api.ingest([DATA / "dpo_en_demo.json"], tmp_path / "ds")
    bias = api.length_bias(tmp_path / "ds")
    rows = json.loads((DATA / "dpo_en_demo.json").read_text())
    lens = [(len(r["chosen"]["value"]), len(r["rejected"]["value"])) for r in rows]
    assert bias.pairs == len(rows) == 300
    assert bias.chosen_longer == sum(c > r for c, r in lens)
