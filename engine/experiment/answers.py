"""Final answers for RLVR exact match: GSM8K's `#### N`, else the last `\\boxed{...}`, compared as numbers when both parse.

Columnar (Polars string expressions over the whole column of generations), so a thousand greedy outputs cost
one pass. Normalising: surrounding space, `$`, thousands commas and a trailing period go; `18`, `18.0` and
`18.00` are the same number.
"""

from __future__ import annotations

from collections.abc import Sequence

import polars as pl

HASHES = r"####\s*([^\n]+)"
BOXED = r"\\boxed\{([^{}]*)\}"


def final_answer(text: pl.Expr) -> pl.Expr:
    """The text after the last `####`, else inside the last `\\boxed{}`, normalised; null when neither."""
    hashes = text.str.extract_all(HASHES).list.last().str.extract(HASHES)
    boxed = text.str.extract_all(BOXED).list.last().str.extract(BOXED)
    return (
        pl.coalesce(hashes, boxed)
        .str.strip_chars()
        .str.replace_all(r"[$,]", "")
        .str.strip_chars_end(".")
        .str.strip_chars()
    )


def exact_match(predicted: Sequence[str], reference: Sequence[str]) -> pl.Series:
    """Per row: does the prediction's final answer equal the reference's (reference may be a bare answer)?"""
    df = pl.DataFrame({"pred": list(predicted), "ref": list(reference)}, schema={"pred": pl.String, "ref": pl.String})
    ref = pl.col("ref")
    ref_final = pl.coalesce(final_answer(ref), ref.str.strip_chars().str.replace_all(r"[$,]", ""))
    pred = final_answer(pl.col("pred"))
    num = (pred.cast(pl.Float64, strict=False), ref_final.cast(pl.Float64, strict=False))
    same = (
        pl.when(num[0].is_not_null() & num[1].is_not_null())
        .then(num[0] == num[1])
        .otherwise(pred == ref_final)
        .fill_null(False)
    )
    return df.select(same.alias("correct")).to_series()
