"""Validate a teacher's answer against the Q&A schema; every failure gets a reason code.

Schema: {"pairs": [{question, answer, reasoning, difficulty, source_chunk}]} (a bare list of pairs is
accepted too). Row-level codes: `invalid_json`, `not_an_object`, `no_pairs`. Pair-level codes:
`missing_field`, `wrong_type`, `empty_text`, `bad_difficulty`, `not_an_object`.
A code fence around the JSON is tolerated; prose around it is not.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

FIELDS = ("question", "answer", "reasoning", "difficulty", "source_chunk")
REQUIRED_TEXT = ("question", "answer")
DIFFICULTIES = frozenset({"easy", "medium", "hard"})
_FENCE = re.compile(r"^\s*```(?:json)?\s*\n(.*?)\n?```\s*$", re.DOTALL)


@dataclass(frozen=True, slots=True)
class Problem:
    pair: int | None
    reason: str
    detail: str


def _check_pair(i: int, pair: Any) -> Problem | None:
    if not isinstance(pair, dict):
        return Problem(i, "not_an_object", f"pairs[{i}] is {type(pair).__name__}, expected an object")
    for f in FIELDS:
        if f not in pair:
            return Problem(i, "missing_field", f"pairs[{i}] has no {f!r}")
        if not isinstance(pair[f], str):
            return Problem(i, "wrong_type", f"pairs[{i}].{f} is {type(pair[f]).__name__}, expected text")
    for f in REQUIRED_TEXT:
        if not pair[f].strip():
            return Problem(i, "empty_text", f"pairs[{i}].{f} is empty")
    if pair["difficulty"].strip().lower() not in DIFFICULTIES:
        return Problem(
            i, "bad_difficulty", f"pairs[{i}].difficulty is {pair['difficulty']!r}, expected easy|medium|hard"
        )
    return None


def parse_pairs(content: str) -> tuple[list[dict[str, str]], list[Problem]]:
    """The valid pairs of an answer and a Problem for each invalid one (or one for the whole answer)."""
    m = _FENCE.match(content)
    text = m.group(1) if m else content
    try:
        doc = json.loads(text)
    except ValueError as exc:
        return [], [Problem(None, "invalid_json", f"{exc}; answer starts {content[:80]!r}")]
    pairs = doc.get("pairs") if isinstance(doc, dict) else doc
    if not isinstance(pairs, list):
        return [], [Problem(None, "not_an_object", f'expected {{"pairs": [...]}}, got {type(doc).__name__}')]
    if not pairs:
        return [], [Problem(None, "no_pairs", "the pairs list is empty")]
    good: list[dict[str, str]] = []
    bad: list[Problem] = []
    for i, pair in enumerate(pairs):
        if (p := _check_pair(i, pair)) is None:
            good.append({f: pair[f].strip() if f != "difficulty" else pair[f].strip().lower() for f in FIELDS})
        else:
            bad.append(p)
    return good, bad


def parse_scores(content: str, *, grounded: bool) -> tuple[dict[str, Any] | None, Problem | None]:
    """A judge's answer: 1..10 integers per dimension (+ groundedness when asked) and a reason."""
    m = _FENCE.match(content)
    try:
        doc = json.loads(m.group(1) if m else content)
    except ValueError as exc:
        return None, Problem(None, "invalid_json", f"{exc}; answer starts {content[:80]!r}")
    if not isinstance(doc, dict):
        return None, Problem(None, "not_an_object", f"expected an object, got {type(doc).__name__}")
    dims = ("correctness", "helpfulness", "clarity", "safety") + (("groundedness",) if grounded else ())
    out: dict[str, Any] = {}
    for d in dims:
        v = doc.get(d)
        if isinstance(v, bool) or not isinstance(v, int | float) or not 1 <= v <= 10:
            return None, Problem(None, "bad_score", f"{d} is {v!r}, expected a number from 1 to 10")
        out[d] = float(v)
    reason = doc.get("reason")
    out["reason"] = reason.strip() if isinstance(reason, str) else None
    return out, None


def parse_response(content: str) -> tuple[str | None, Problem | None]:
    """A teacher's free-text response (to fill or regenerate an sft row): any non-empty text."""
    text = content.strip()
    if not text:
        return None, Problem(None, "empty_text", "the response is empty")
    return text, None
