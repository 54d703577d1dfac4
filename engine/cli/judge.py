"""`distill judge`: score rows 1-10 with an LLM judge, appending judge_* columns."""

from __future__ import annotations

from typing import Annotated

import typer

from engine import api
from engine.cli.params import (
    Concurrency,
    DatasetDir,
    LlmCache,
    MaxCost,
    MaxRequests,
    MaxTokens,
    PriceOpt,
    PricesFile,
    Quiet,
    limits,
    usage_line,
)
from engine.cli.progress import progress_bars

app = typer.Typer()

EPILOG = """Example:

  distill judge out/qa --judge gpt-4o@https://api.openai.com/v1 --sample 0.5 --max-requests 5000

Then gate on it: distill score gate out/qa --set judge_column=judge_score --set min_judge=7
"""


@app.command(epilog=EPILOG)
def judge(
    path: DatasetDir,
    judge: Annotated[str, typer.Option(help="MODEL@BASE_URL of an OpenAI-compatible server.", show_default=False)],
    sample: Annotated[float, typer.Option(help="Fraction of rows judged, chosen by id (deterministic).")] = 1.0,
    max_requests: MaxRequests = None,
    max_tokens: MaxTokens = None,
    max_cost: MaxCost = None,
    price: PriceOpt = None,
    prices: PricesFile = None,
    concurrency: Concurrency = 64,
    cache: LlmCache = None,
    quiet: Quiet = False,
) -> None:
    """Append judge_correctness/helpfulness/clarity/safety/groundedness, judge_score, judge_reason, judge_status."""
    with progress_bars(quiet) as on_progress:
        r = api.judge(
            path,
            judge=judge,
            sample=sample,
            limits=limits(max_requests, max_tokens, max_cost, price, prices),
            concurrency=concurrency,
            cache=cache,
            on_progress=on_progress,
        )
    mean = f"{r.mean_score:.2f}" if r.mean_score is not None else "n/a"
    typer.echo(
        f"judge: {r.rows} rows: {r.judged} judged (mean score {mean}), {r.failed} failed, {r.pending} pending; "
        f"{r.written} partition(s) written, {r.skipped} up to date; {usage_line(r.spent)}"
    )
    if r.pending:
        typer.echo("budget reached: rerun with a larger budget to judge the rest (answered rows come from the cache)")
