"""The heuristic stage: Flesch against textstat, the four dimensions, weights, and the dpo/rlvr columns."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from engine import api
from engine import config as cfgmod
from engine.errors import ConfigError
from engine.schema import dataset_polars_schema
from engine.stages.heuristic import STAGE, HeuristicConfig, transform
from engine.store.dataset import open_dataset
from engine.store.runner import run_stage
from tests.conftest import DATA

DIMS = ("heur_clarity", "heur_response", "heur_diversity", "heur_complexity", "heur_score")

STRUCTURED = """Here is how to reverse a list in Python, step by step.

1. First, create the list: `items = [1, 2, 3]`.
2. Then call the built-in method, which works in place and returns nothing.
3. Finally, print the result to check it.

```python
items = [1, 2, 3]
items.reverse()
print(items)  # [3, 2, 1]
```

If you need a new list instead, slicing with `items[::-1]` copies it. That is slower for long lists,
but it leaves the original untouched, which matters when other code still holds a reference."""


def _scored(tmp_path: Path, sources: list[Path], cfg: HeuristicConfig | None = None, **ingest: object) -> pl.DataFrame:
    out = tmp_path / "ds"
    api.ingest(sources, out, **ingest)  # type: ignore[arg-type]
    run_stage(out, STAGE, cfg or STAGE.default_config())
    return open_dataset(out).scan().collect()


def _jsonl(path: Path, rows: list[dict[str, object]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _pearson(a: object, b: object) -> float:
    return float(np.corrcoef(np.asarray(a, dtype=float), np.asarray(b, dtype=float))[0, 1])


def test_flesch_agrees_with_textstat_on_alpaca(tmp_path: Path) -> None:
    # textstat 0.7.4 (pyphen syllables): 0.7.7+ install a top-level `tests` package that shadows ours,
    # 0.7.9+ download the CMU dictionary at first use, and 0.7.5-0.7.6 do not work (KeyError, no backend)
    textstat = pytest.importorskip("textstat")
    df = _scored(tmp_path, [DATA / "alpaca_en_demo.json"])
    assert df.height == 999  # every row of the file
    textstat.set_rounding(False)  # its syllables per word are otherwise rounded to 0.1
    try:
        expected = np.array([textstat.flesch_reading_ease(r) for r in df["response"]])
    finally:
        textstat.set_rounding(True)
    r = _pearson(df["heur_flesch"], expected)
    assert r >= 0.95, r  # 0.972
    mean_abs = float(np.mean(np.abs(df["heur_flesch"].to_numpy() - expected)))
    assert mean_abs < 10, mean_abs  # 6.6 points on the 0-100 scale


def test_scores_are_in_unit_range_for_every_kind(tmp_path: Path) -> None:
    sources = ["alpaca_en_demo.json", "glaive_toolcall_en_demo.json", "dpo_en_demo.json", "gsm8k_train.jsonl"]
    df = _scored(tmp_path, [DATA / s for s in [*sources, "c4_demo.jsonl"]])
    assert set(df["kind"]) == {"sft", "chat", "dpo", "rlvr", "text"}
    for col in DIMS:
        assert df[col].null_count() == 0, col
        assert df[col].is_between(0.0, 1.0).all(), col
    assert df["heur_flesch"].null_count() == 0
    for kind, part in df.group_by("kind"):
        assert part["heur_score"].std() > 0.01, kind  # the scorer separates rows of every kind


def test_structured_multistep_answer_beats_a_one_word_answer(tmp_path: Path) -> None:
    ask = "How do I reverse a list in Python? Explain the steps."
    rows = [{"instruction": ask, "output": STRUCTURED}, {"instruction": ask, "output": "Yes."}]
    good, bad = _scored(tmp_path, [_jsonl(tmp_path / "x.jsonl", rows)], format="alpaca").iter_rows(named=True)
    for col in ("heur_response", "heur_complexity", "heur_score"):
        assert good[col] > bad[col] + 0.2, (col, good[col], bad[col])
    assert good["heur_complexity"] == pytest.approx(1.0)  # steps, code and a how-question
    assert good["heur_clarity"] == bad["heur_clarity"]  # same prompt


def test_a_question_is_clearer_than_garbled_or_empty_prompts(tmp_path: Path) -> None:
    prompts = ["What is the capital of France, and why did it become the capital?", "xq zzk vbn !! ## qrtz"]
    rows = [{"instruction": p, "output": "Paris, because the kings settled there."} for p in prompts]
    question, garbled = _scored(tmp_path, [_jsonl(tmp_path / "x.jsonl", rows)], format="alpaca")["heur_clarity"]
    # ingest rejects an empty instruction, so the empty prompt goes through the transform on a canonical frame
    schema = dataset_polars_schema()
    row = {"id": "e", "kind": "sft", "instruction": "", "input": "", "response": "Paris."}
    canonical = pl.DataFrame([{c: row.get(c) for c in schema.names()}], schema=schema)
    blank = transform(canonical.lazy(), STAGE.default_config()).collect()["heur_clarity"][0]
    assert question > 0.9
    assert question > garbled + 0.3
    assert blank == 0.0 < garbled


def test_repetition_and_common_topics_lower_diversity(tmp_path: Path) -> None:
    varied = "Paris sits on the Seine; its museums, cafes and parks draw millions of visitors every year."
    rows = [
        {"instruction": "Describe Paris.", "output": varied},
        {"instruction": "Describe Paris.", "output": "Paris is nice. " * 12},
        {"instruction": "Describe Paris and its social media fame.", "output": varied},
    ]
    df = _scored(tmp_path, [_jsonl(tmp_path / "x.jsonl", rows)], format="alpaca")
    fresh, repeated, topical = df["heur_diversity"]
    assert fresh == 1.0  # every word and bigram distinct
    assert repeated < 0.35
    assert topical == pytest.approx(fresh * (1 - HeuristicConfig().topic_penalty))


def test_weights_set_heur_score(tmp_path: Path) -> None:
    src = DATA / "alpaca_en_demo.json"
    df = _scored(tmp_path, [src])
    expected = (
        0.25 * df["heur_clarity"]
        + 0.35 * df["heur_response"]
        + 0.2 * df["heur_diversity"]
        + 0.2 * df["heur_complexity"]
    )
    assert np.allclose(df["heur_score"], expected)
    only = {"weight_clarity": 0.0, "weight_response": 0.0, "weight_diversity": 0.0, "weight_complexity": 0.0}
    for dim in ("clarity", "response", "diversity", "complexity"):
        cfg = cfgmod.from_mapping(HeuristicConfig, {**only, f"weight_{dim}": 3.0}, where="heuristic")
        run_stage(tmp_path / "ds", STAGE, cfg)  # a new config rescores every partition
        rescored = open_dataset(tmp_path / "ds").scan().collect()
        assert np.allclose(rescored["heur_score"], rescored[f"heur_{dim}"]), dim  # weights are normalised
    assert not np.allclose(rescored["heur_score"], df["heur_score"])


def test_bad_weights_and_bands_are_config_errors() -> None:
    with pytest.raises(ConfigError, match=r"heuristic: weight_clarity, .* must be >= 0 with a positive sum"):
        HeuristicConfig(weight_clarity=-0.1)
    with pytest.raises(ConfigError, match="positive sum"):
        HeuristicConfig(weight_clarity=0, weight_response=0, weight_diversity=0, weight_complexity=0)
    with pytest.raises(ConfigError, match="response_words must be 4 non-decreasing numbers"):
        HeuristicConfig(response_words=(0, 500, 30, 2000))
    with pytest.raises(ConfigError, match="topic_penalty must be in"):
        HeuristicConfig(topic_penalty=2.0)
    with pytest.raises(ConfigError, match="unknown option 'weight_clarty'; did you mean 'weight_clarity'"):
        cfgmod.from_mapping(HeuristicConfig, {"weight_clarty": "1"}, where="heuristic")
    cfg = cfgmod.from_mapping(HeuristicConfig, {"instruction_words": "1,5,100,400"}, where="heuristic")
    assert cfg.instruction_words == (1.0, 5.0, 100.0, 400.0)


def test_pref_columns_on_real_dpo_rows(tmp_path: Path) -> None:
    df = _scored(tmp_path, [DATA / "dpo_en_demo.json", DATA / "alpaca_en_demo.json"])
    dpo, other = df.filter(pl.col("kind") == "dpo"), df.filter(pl.col("kind") != "dpo")
    assert dpo.height == 300 and other.height > 0
    expected = [len(c) / len(r) for c, r in zip(dpo["chosen"], dpo["rejected"], strict=True)]
    assert np.allclose(dpo["heur_pref_len_ratio"], expected)
    assert dpo["heur_pref_gap"].null_count() == 0 and dpo["heur_pref_gap"].is_between(-1.0, 1.0).all()
    assert other["heur_pref_len_ratio"].null_count() == other.height
    assert other["heur_pref_gap"].null_count() == other.height
    assert other["heur_answer_extractable"].null_count() == other.height


def test_pref_gap_is_the_score_difference_of_chosen_and_rejected(tmp_path: Path) -> None:
    ask = "How do I reverse a list in Python? Explain the steps."
    pair = {"prompt": ask, "chosen": STRUCTURED, "rejected": "Yes."}
    (row,) = _scored(tmp_path, [_jsonl(tmp_path / "p.jsonl", [pair])], format="dpo").iter_rows(named=True)
    sft = [{"instruction": ask, "output": STRUCTURED}, {"instruction": ask, "output": "Yes."}]
    good, bad = _scored(tmp_path / "sft", [_jsonl(tmp_path / "s.jsonl", sft)], format="alpaca")["heur_score"]
    assert row["heur_score"] == pytest.approx(good)
    assert row["heur_pref_gap"] == pytest.approx(good - bad)
    assert row["heur_pref_len_ratio"] == pytest.approx(len(STRUCTURED) / len("Yes."))


def test_answer_extractable_on_gsm8k_and_boxed_answers(tmp_path: Path) -> None:
    boxed = _jsonl(tmp_path / "boxed.jsonl", [{"problem": "6 x 7?", "solution": "6 x 7 = 42, so \\boxed{42}."}])
    answers = [
        {"problem": "Is it a good idea?", "answer": "It depends on the context."},
        {"problem": "6 x 7?", "answer": "#### 42"},
        {"problem": "Half of 3?", "answer": "1.5"},
    ]
    sources = [DATA / "gsm8k_train.jsonl", boxed, _jsonl(tmp_path / "answers.jsonl", answers), DATA / "c4_demo.jsonl"]
    df = _scored(tmp_path, sources)
    gsm8k = df.filter(pl.col("src_file").str.ends_with("gsm8k_train.jsonl"))
    assert gsm8k.height == 7473 and gsm8k["heur_answer_extractable"].all()
    ours = df.filter(pl.col("src_file").str.contains(r"(boxed|answers)\.jsonl$")).sort("src_file", "src_line")
    assert ours["answer"].to_list() == ["It depends on the context.", "42", "1.5", "42"]  # answers, then boxed
    assert ours["heur_answer_extractable"].to_list() == [False, True, True, True]
    assert df.filter(pl.col("kind") == "text")["heur_answer_extractable"].null_count() == 300


def test_partitioning_does_not_change_scores(tmp_path: Path) -> None:
    sources = [DATA / "alpaca_en_demo.json", DATA / "dpo_en_demo.json", DATA / "c4_demo.jsonl"]
    one = _scored(tmp_path / "one", sources, partition_rows=100_000)
    three = _scored(tmp_path / "three", sources, partition_rows=600)
    assert len(list((tmp_path / "three" / "ds").glob("part-*.parquet"))) == 3
    assert one.equals(three)
    assert one.columns[-len(STAGE.writes) :] == list(STAGE.writes)
    assert {c: one.schema[c] for c in STAGE.writes} == dict(STAGE.writes)
