"""The fast normalisation (numba for ASCII rows) gives exactly what the plain Polars expressions give."""

from __future__ import annotations

import json
import random
import unicodedata

import polars as pl
import pytest

from engine.errors import ConfigError
from engine.stages.dedup_text import (
    _COMPOSES_AFTER_14,
    TextKeyConfig,
    _composes_after,
    key_rows,
    key_text,
    key_text_reference,
    raw_text,
    scan_composes_after,
)
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


TRICKY = [
    "e\u0301",  # e + combining acute: NFKC composes it
    "\u1100\u1161\u11a8",  # Hangul L + V + T jamo: compose into one syllable
    "\uac00\u11a8",  # a syllable + T jamo: compose
    "\u0b47\u0b3e",  # Oriya: the second part is a starter (ccc 0) that composes
    "a\u0323\u0302",  # two marks already in order; reversed below
    "a\u0302\u0323",  # marks out of canonical order: NFKC reorders them
    "a\u0315\u0316",  # the same with marks that compose with nothing
    "\u2026",  # ellipsis: three dots under NFKC
    "\u00a0\u2028\u3000",  # Unicode spaces
    "ΟΔΟΣ Σ",  # final sigma
    "İ",  # lower case is two code points
    "\u00e9\u4e2d\u201c\u201d\u2014\U0001f600",  # stable: é, a CJK ideograph, quotes, a dash, an emoji
]


def _generated(n: int, seed: int) -> list[str]:
    """Rows of ASCII words, whitespace runs and punctuation, mixed with characters from every plane and the
    cases above; long enough that the 64-byte blocks see ASCII-only blocks, dropped bytes and wide bytes."""
    rng = random.Random(seed)
    pieces = ["Word", "lower", "UP", " ", "  ", "\n", "\t \r\n", ",", "!?", "_x_", "3.14", *TRICKY]
    rows = []
    for _ in range(n):
        parts = []
        for _ in range(rng.randint(0, 120)):
            if rng.random() < 0.06:
                ch = chr(rng.randint(0x80, 0x10FFFF))
                # characters assigned in Python's Unicode version (Polars' may be newer) and not surrogates
                parts.append(ch if unicodedata.category(ch) not in ("Cn", "Cs") else "x")
            else:
                parts.append(rng.choice(pieces))
        rows.append("".join(parts))
    return rows


@pytest.mark.parametrize("options", [{}, {"strip_punctuation": True}, {"nfkc": False}, {"casefold": False}], ids=str)
def test_fast_path_equals_polars_reference_on_generated_text(options: dict[str, bool]) -> None:
    df = pl.DataFrame({"text": [*_generated(3000, 7), None, *TRICKY], "kind": "text"})
    cfg = TextKeyConfig(fields=("text",), **options)
    fast = df.select(key_text(cfg)).to_series()
    slow = df.select(key_text_reference(cfg)).to_series()
    assert fast.to_list() == slow.to_list()


def test_rows_of_stable_characters_skip_the_unicode_steps() -> None:
    """Only rows with a character NFKC or lower case may change go through Python's Unicode steps."""
    stable = ["Caf\u00e9 \u201cquoted\u201d \u2014 \u4e2d\u6587 \U0001f600", "plain ASCII"]
    unstable = ["wait\u2026", "CAF\u00c9", "e\u0301", "\u0b47\u0b3e", "\u00a0", "a\u0315\u0316"]
    keys = key_rows(pl.Series([*stable, *unstable]), TextKeyConfig())
    assert keys.prepared.tolist() == [-1, -1, 0, 1, 2, 3, 4, 5]


def test_composition_table_matches_the_unicode_data() -> None:
    """The shipped table is what scanning Python's Unicode data gives (it is used only for its version)."""
    scanned = scan_composes_after()
    assert _composes_after() == scanned
    assert {0x301, 0x3099, 0x1161, 0x11A8, 0x0B3E} <= scanned  # combining acute, kana voicing, jamo, Oriya AA
    if unicodedata.unidata_version == "14.0.0":
        assert frozenset(cp for lo, hi in _COMPOSES_AFTER_14 for cp in range(lo, hi + 1)) == scanned


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
