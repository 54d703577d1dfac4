"""The heuristic counting kernel against per-row Python `re` oracles on real text, plus tiny cases."""

from __future__ import annotations

import itertools
import json
import re
import statistics

import numpy as np
import polars as pl
import pytest

from engine.stages import quality_kernels as Q
from engine.stages.string_views import text_rows
from tests.conftest import DATA

# --- the oracle: the kernel's definitions written as Python regexes, one row at a time -------------
_C = "bcdfghjklmnpqrstvwxz"


def _run(not_last: str) -> str:
    last = "".join(c for c in _C if c not in not_last)
    return f"(?:[{_C}]*[{last}]|[{_C}]*ll|l)"


SILENT = rf"(?:{_run('l')}e|{_run('ltd')}ed|{_run('lsxzcgh')}es)(?![A-Za-z0-9_])"
SYLLABLE = re.compile(rf"[aeiouy]+(?:{SILENT})?", re.IGNORECASE)
SEGMENT = re.compile(r"\b[^.!?]+[.!?]*")
LIST_ITEM = re.compile(r"(?m)^[ \t]*(?:[-*•+]|\d{1,3}[.)])[ \t]+\S")
STEP_LINE = re.compile(r"(?m)^[ \t]*(?:\d{1,3}[.)][ \t]|[sS]tep[ \t]*\d+)")
STEP_WORD = re.compile(
    r"(?<![A-Za-z0-9_])(?:" + "|".join(f"[{w[0]}{w[0].upper()}]{w[1:]}" for w in Q.STEP_WORDS) + r")(?![A-Za-z0-9_])"
)
CODE = re.compile("|".join(("(?<![A-Za-z0-9_])" if m[0].isalnum() else "") + re.escape(m) for m in Q.CODE_MARKERS))


def _words(text: str) -> list[str]:
    return [t for t in text.split() if re.search(r"\w", t)]


def oracle(text: str, window: int = 100) -> dict[str, float]:
    words = _words(text)
    vowelless = sum(1 for w in words if not re.search("[aeiouyAEIOUY]", w))
    raw = text.encode()
    ends = [m.start() for m in re.finditer(rb"[.!?] |\n", raw)]
    spans = [b - a for a, b in itertools.pairwise([0, *ends, len(raw)]) if b - a >= Q.SPAN_MIN_BYTES]
    head = text[: window * Q.CHARS_PER_WORD].replace("\n", " ")
    toks = [t.lower() for t in head.split(" ")][:window]
    return {
        "words": len(words),
        "sentences": sum(1 for seg in SEGMENT.findall(text) if len(_words(seg)) >= 3),
        "syllables": len(SYLLABLE.findall(text)) + vowelless,
        "vowelless": vowelless,
        "breaks": len(re.findall(r"\n(?:[ \t]*\n)+", text)),
        "list_items": len(LIST_ITEM.findall(text)),
        "steps": len(STEP_LINE.findall(text)) + len(STEP_WORD.findall(text)),
        "code": int(bool(CODE.search(text))),
        "spread": statistics.stdev(spans) / statistics.mean(spans) if len(spans) >= 2 else 0.0,
        "ttr": len(set(toks)) / len(toks),
        "bigrams": len(set(itertools.pairwise(toks))) / (len(toks) - 1) if len(toks) > 1 else 0.0,
    }


NAMES = ("words", "sentences", "syllables", "vowelless", "breaks", "list_items", "steps", "code")


def _kernel(texts: list[str], window: int = 100) -> list[dict[str, float]]:
    counts, ratios = Q.count_rows(text_rows(pl.Series(texts, dtype=pl.String)), window)
    out = []
    for c, r in zip(counts, ratios, strict=True):
        row: dict[str, float] = dict(zip(NAMES, (int(x) for x in c), strict=True))
        row.update(spread=r[Q.SPREAD], ttr=r[Q.TTR], bigrams=r[Q.BIGRAMS])
        out.append(row)
    return out


@pytest.fixture(scope="module")
def alpaca_texts() -> list[str]:
    rows = json.loads((DATA / "alpaca_en_demo.json").read_text())
    texts = [r["output"] for r in rows] + [r["instruction"] for r in rows]
    return [t for t in texts if t.isascii()]  # non-ASCII word classes are approximated; see the module doc


def test_kernel_counts_equal_the_regex_oracle_on_alpaca(alpaca_texts: list[str]) -> None:
    assert len(alpaca_texts) > 1850  # of 1,998
    ours = _kernel(alpaca_texts)
    for name in (*NAMES, "spread", "ttr", "bigrams"):
        got = np.array([r[name] for r in ours], dtype=float)
        want = np.array([oracle(t)[name] for t in alpaca_texts], dtype=float)
        bad = np.flatnonzero(~np.isclose(got, want, atol=1e-9))
        assert bad.size == 0, (name, bad[:5], [alpaca_texts[i][:80] for i in bad[:2]])
    assert sum(r["code"] for r in ours) > 10 and sum(r["list_items"] > 0 for r in ours) > 50  # both occur


def test_silent_endings_and_vowelless_words() -> None:
    (one, two, three, four) = _kernel(["make named types whale", "table wanted boxes", "2 html agreed", "9ze 5ze x_le"])
    assert one["syllables"] == 4
    assert two["syllables"] == 6
    assert three["syllables"] == 1 + 1 + 2 and three["vowelless"] == 2
    assert four["syllables"] == 3  # a silent e needs a vowel before its consonants, not a digit or "_"


_PIECES = [*"aeiouyAEIOUYlLsStTdDeEbcxzghk .!?\n\t\r-*+1234567890`#(){}<=>;_'\""]
_PIECES += ["ll", "ed", "es", "le", "Step 2", "1. ", "first ", "Then ", "def ", "print(", "```", "</", "=>", "{\n"]
_PIECES += ["};", "();", "function(", "console.log", "SELECT ", "  \n", "\n \t\n", ". ", "whale ", "boxes ", "9ze "]


def test_every_count_equals_the_oracle_on_adversarial_text_across_block_boundaries() -> None:
    # the kernel reads 64-byte blocks and chains words, segments, consonant runs and blank lines across
    # them: random runs of the pieces every definition turns on, 0 to ~900 bytes, every length near 64
    rng = np.random.default_rng(11)
    texts = ["".join(rng.choice(_PIECES, size=int(n))) for n in rng.choice([0, 1, 3, 10, 30, 60, 64, 100, 130], 1500)]
    texts += ["x" * n for n in range(60, 70)] + ["ab " * n + "make" for n in range(18, 24)] + ["a.\n" * 40]
    assert {len(t) % 64 for t in texts} == set(range(64))
    for window in (3, 100):
        ours = _kernel(texts, window)
        for name in (*NAMES, "spread", "ttr", "bigrams"):
            got = np.array([r[name] for r in ours], dtype=float)
            want = np.array([oracle(t, window)[name] for t in texts], dtype=float)
            bad = np.flatnonzero(~np.isclose(got, want, atol=1e-9))
            assert bad.size == 0, (name, window, bad[:5], [texts[i][:80] for i in bad[:2]])


def test_structure_counts_on_a_tiny_answer() -> None:
    text = "Steps:\n\n1. First, boil water.\n2) Then add pasta.\n- salt\n\nStep 3 drain it. def f(): pass\n```"
    (row,) = _kernel([text])
    assert row == pytest.approx(oracle(text))
    assert (row["breaks"], row["list_items"], row["code"]) == (2, 3, 1)
    assert row["steps"] == 3 + 2  # "1.", "2)", "Step 3"; First, Then


def test_empty_and_null_rows_count_zero() -> None:
    counts, ratios = Q.count_rows(text_rows(pl.Series(["", None], dtype=pl.String)), 100)
    assert not counts.any()
    assert ratios[:, Q.SPREAD].tolist() == [0.0, 0.0]
    assert ratios[:, Q.TTR].tolist() == [1.0, 1.0]  # one empty token, as str.split(" ") gives


def test_structure_and_diversity_equal_the_oracle_on_c4_and_non_ascii_text() -> None:
    # web text: long (diversity stops at window * 10 characters), and mostly with non-ASCII characters;
    # word classes of non-ASCII are approximated, everything split at ASCII bytes must match exactly
    texts = [json.loads(line)["text"] for line in (DATA / "c4_demo.jsonl").read_text().splitlines()]
    texts += [r["output"] for r in json.loads((DATA / "alpaca_en_demo.json").read_text()) if not r["output"].isascii()]
    assert sum(len(t) > 1000 for t in texts) > 200 and sum(not t.isascii() for t in texts) > 250
    ours = _kernel(texts)
    for name in ("sentences", "breaks", "list_items", "steps", "code", "spread", "ttr", "bigrams"):
        got = np.array([r[name] for r in ours], dtype=float)
        want = np.array([oracle(t)[name] for t in texts], dtype=float)
        bad = np.flatnonzero(~np.isclose(got, want, atol=1e-9))
        assert bad.size == 0, (name, bad[:5], [texts[i][:80] for i in bad[:2]])


def test_diversity_folds_ascii_case_and_hashes_long_tokens_whole() -> None:
    long = "internationalization"  # 20 bytes: three 8-byte chunks
    text = f"Hello hello HELLO {long} {long.upper()} {long}s\nhello"
    (row,) = _kernel([text])
    assert row["ttr"] == pytest.approx(3 / 7)  # hello, internationalization, internationalizations
    assert row["bigrams"] == pytest.approx(5 / 6)  # hello hello repeats
    assert row == pytest.approx(oracle(text))
    (window,) = _kernel(["a b " * 300], window=5)
    assert window["ttr"] == pytest.approx(2 / 5) and window["bigrams"] == pytest.approx(2 / 4)
