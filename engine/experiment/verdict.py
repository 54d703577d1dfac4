"""Per arm and eval set: the metric over seeds, its seed spread, and a verdict against the baseline (random) arm.

The rule, stated so a reader can check it: arms share seeds (same initialisation, same batch order of their own
rows), so each seed gives a paired difference arm - baseline. An arm is `better` (or `worse`) only when every
paired difference has the same sign and the mean difference exceeds the seed spread (max - min over seeds) of
both the arm and the baseline; otherwise `not different`. When other arms are draws of the baseline (the same
queries and parameters but `seed`), the spread between their means (`draw_spread`: what a different random draw
alone changes) is shown beside it, and a difference inside it is marked so.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import polars as pl

LOWER_IS_BETTER = {"loss": True, "ppl": True, "accuracy": False}


def curves(results: Sequence[dict[str, Any]]) -> pl.DataFrame:
    rows = [{"arm": r["arm"], "seed": r["seed"], **point} for r in results for point in r["curve"]]
    return pl.DataFrame(rows).with_columns(pl.col("step", "tokens").cast(pl.Int64))


def metrics(results: Sequence[dict[str, Any]]) -> pl.DataFrame:
    rows = [
        {
            "arm": r["arm"],
            "seed": r["seed"],
            "eval": name,
            "train_seconds": r["train_seconds"],
            "eval_seconds": r["eval_seconds"],
            "peak_rss_mb": r["peak_rss_mb"],
            **{k: float(v) for k, v in m.items()},
        }
        for r in results
        for name, m in r["metrics"].items()
    ]
    return pl.DataFrame(rows)


def verdicts(m: pl.DataFrame, baseline: str, draws: Sequence[str]) -> pl.DataFrame:
    """One row per (arm, eval set, metric): mean, seed spread, paired difference with the baseline, verdict."""
    names = [c for c in ("loss", "accuracy") if c in m.columns]
    long = m.unpivot(index=["arm", "seed", "eval"], on=names, variable_name="metric").drop_nulls("value")
    summary = long.group_by("arm", "eval", "metric").agg(
        mean=pl.col("value").mean(), spread=pl.col("value").max() - pl.col("value").min(), seeds=pl.len()
    )
    base = long.filter(pl.col("arm") == baseline).select("seed", "eval", "metric", base=pl.col("value"))
    paired = (
        long.join(base, on=["seed", "eval", "metric"])
        .with_columns(diff=pl.col("value") - pl.col("base"))
        .group_by("arm", "eval", "metric")
        .agg(diff=pl.col("diff").mean(), all_neg=(pl.col("diff") < 0).all(), all_pos=(pl.col("diff") > 0).all())
    )
    base_spread = summary.filter(pl.col("arm") == baseline).select("eval", "metric", base_spread="spread")
    draws = (
        summary.filter(pl.col("arm").is_in(list(draws)))
        .group_by("eval", "metric")
        .agg(draw_spread=pl.when(pl.len() > 1).then(pl.col("mean").max() - pl.col("mean").min()))
    )
    lower = pl.col("metric").replace_strict(LOWER_IS_BETTER, default=True, return_dtype=pl.Boolean)
    noise = pl.max_horizontal("spread", "base_spread")
    clear = pl.col("diff").abs() > noise
    improved = pl.when(lower).then(pl.col("all_neg")).otherwise(pl.col("all_pos"))
    worsened = pl.when(lower).then(pl.col("all_pos")).otherwise(pl.col("all_neg"))
    return (
        summary.join(paired, on=["arm", "eval", "metric"], how="left")
        .join(base_spread, on=["eval", "metric"], how="left")
        .join(draws, on=["eval", "metric"], how="left")
        .with_columns(
            verdict=pl.when(pl.col("arm") == baseline)
            .then(pl.lit("baseline"))
            .when(clear & improved)
            .then(pl.lit("better"))
            .when(clear & worsened)
            .then(pl.lit("worse"))
            .otherwise(pl.lit("not different")),
            within_draw_spread=pl.col("diff").abs() <= pl.col("draw_spread"),
        )
        .drop("all_neg", "all_pos")
        .sort("eval", "metric", "arm")
    )
