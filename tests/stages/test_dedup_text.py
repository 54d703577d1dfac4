"""The fast normalisation (numba for ASCII rows) gives exactly what the plain Polars expressions give."""

from __future__ import annotations

import json

import polars as pl
import pytest

from engine.errors import ConfigError
from engine.stages.dedup_text import TextKeyConfig, key_text, key_text_reference, raw_text
from tests.conftest import DATA

EDGES = [
    "Ｆｕｌｌ  Ｗｉｄｔｈ\u00a0ñ ÀB  ",  # fullwidth forms and a no-break space: NFKC folds them
    "  ",
    "",
    "a\u2028b\u2029c",
    "x\x0by\x0cz\r\nw",
    "Ǆ abc ﬁ İstanbul",  # compatibility digraph and ligature; a capital whose lower case is two code points
    "a\u3000b\u205fc\u1680d\u0085e\u200af\u202fg\u200bh",  # every Unicode space (U+200B is not one)
    "ΟΔΟΣ ΟΔΟΣ.",  # final sigma
    "Hello,   World!!  (it's) 3.14 — “quoted” … end_",
]


def _frame() -> pl.DataFrame:
    alpaca = json.loads((DATA / "alpaca_en_demo.json").read_text())
    texts = [f"{r['instruction']}\n\t {r['input']}  \n{r['output'].upper()}" for r in alpaca]
    texts += [json.loads(line)["text"] for line in (DATA / "c4_demo.jsonl").read_text().splitlines()]
    return pl.DataFrame({"text": texts + EDGES, "kind": "text"})


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"strip_punctuation": True},
        {"nfkc": False},
        {"casefold": False},
        {"collapse_whitespace": False},
        {"nfkc": False, "casefold": False, "strip_punctuation": True},
    ],
    ids=str,
)
def test_fast_path_equals_polars_reference(options: dict[str, bool]) -> None:
    df = _frame()
    cfg = TextKeyConfig(fields=("text",), **options)
    fast = df.select(key_text(cfg)).to_series()
    slow = df.select(key_text_reference(cfg)).to_series()
    assert fast.to_list() == slow.to_list()
    assert fast.str.contains(r"[^\x00-\x7f]").any()  # non-ASCII rows took part


def test_default_text_per_kind() -> None:
    df = pl.DataFrame(
        {
            "kind": ["sft", "dpo", "rlvr", "text"],
            "instruction": ["Add", None, None, None],
            "input": ["1 and 2", None, None, None],
            "response": ["3", None, None, None],
            "prompt": [None, "Pick", None, None],
            "chosen": [None, "this", None, None],
            "completion": [None, None, None, None],
            "problem": [None, None, "2+2?", None],
            "solution": [None, None, None, None],
            "answer": [None, None, "4", None],
            "text": [None, None, None, "plain"],
            "messages": [None, None, None, None],
        },
        schema_overrides={
            "messages": pl.List(pl.Struct({"role": pl.String, "content": pl.String, "tool_calls": pl.String}))
        },
    )
    assert df.select(raw_text()).to_series().to_list() == ["Add\n1 and 2\n3", "Pick\nthis", "2+2?\n4", "plain"]


def test_unknown_field_is_named() -> None:
    with pytest.raises(ConfigError, match=r"'respons' is not a text column; did you mean 'response'"):
        TextKeyConfig(fields=("respons",))
