"""The rows of an arm or eval set as token pairs: prompt turns through the model's chat template, answer bare.

The same prompt/answer views as IFD (`engine.stages.views`), so "answer tokens" mean the same thing in a score
and in an experiment's loss; except that an RLVR row with a worked solution trains on `solution\n#### answer`
(GSM8K's own form), so a model can learn to state the final answer that exact match reads.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl

from engine.models.causal_lm import PairEncoder
from engine.models.finetune import TokenPairs
from engine.stages.views import prompt_turns, response_text
from engine.store.dataset import Dataset


def read_rows(ds: Dataset, ords: np.ndarray | None = None) -> pl.DataFrame:
    """_ord, id, kind, turns, answer (the response view) and the rlvr `answer` field, for `ords` (None: all rows)."""
    lf = ds.scan(stages=[]).with_row_index("_ord")
    if ords is not None:
        lf = lf.filter(pl.col("_ord").is_in(pl.Series(ords, dtype=pl.UInt32).implode()))
    return (
        lf.select(
            "_ord",
            "id",
            "kind",
            turns=prompt_turns(),
            response=pl.when(
                (pl.col("kind") == "rlvr") & pl.col("solution").is_not_null() & pl.col("answer").is_not_null()
            )
            .then(pl.concat_str(pl.col("solution"), pl.lit("\n#### "), pl.col("answer")))
            .otherwise(response_text()),
            final=pl.when(pl.col("kind") == "rlvr").then(pl.col("answer")),
        )
        .filter(pl.col("response").fill_null("") != "")
        .collect()
    )


def encode(rows: pl.DataFrame, encoder: PairEncoder) -> TokenPairs:
    enc = encoder.encode(rows["turns"].to_list(), rows["response"].to_list())
    return TokenPairs(enc.prompts_ids, enc.answers_ids)


def save_rows(rows: pl.DataFrame, encoder: PairEncoder, out: Path) -> TokenPairs:
    """Token pairs to `out.npz` and the row ids (+ rlvr final answers) to `out.parquet`, both atomically."""
    pairs = encode(rows, encoder)
    pairs.save(out.with_suffix(".npz"))
    tmp = out.with_name(f".{out.name}.tmp.parquet")
    rows.select("_ord", "id", "kind", "final").write_parquet(tmp)
    tmp.replace(out.with_suffix(".parquet"))
    return pairs
