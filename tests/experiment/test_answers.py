"""RLVR exact match: final answers from `#### N` or `\\boxed{}`, compared as numbers when both parse."""

from __future__ import annotations

import json

from engine.experiment.answers import exact_match
from tests.conftest import DATA


def test_exact_match_cases() -> None:
    pred = [
        "so she has 72 clips.\n#### 72",
        "#### 1,234.",
        "The answer is \\boxed{18.0}",
        "no final answer here: 5",
        "#### 3\nthen later #### 4",
        "\\boxed{x+1}",
        "#### $5",
    ]
    ref = ["72", "#### 1234", "18", "5", "4", "x+1", "5.00"]
    assert exact_match(pred, ref).to_list() == [True, True, True, False, True, True, True]


def test_gsm8k_solutions_match_their_own_answers() -> None:
    lines = (DATA / "gsm8k_train.jsonl").read_text().splitlines()[:200]
    rows = [json.loads(x) for x in lines]
    answers = [r["answer"].split("####")[-1] for r in rows]
    assert exact_match([r["answer"] for r in rows], answers).all()
    assert not exact_match([r["answer"] for r in rows[1:]], answers[:-1]).all()
