"""`distill judge`: score rows 1-10 with an LLM judge, appending judge_* columns."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from engine import api
from engine.cli.params import DatasetDir, Quiet
from engine.cli.progress import progress_bars

app = typer.Typer()

EPILOG = """Example:

  distill judge out/qa --judge gpt-4o@https://api.openai.com/v1 --sample 0.5 --max-requests 5000

Then gate on it: distill score gate out/qa --set judge_column=judge_score --set min_judge=7
"""

Budget = Annotated[int | None, typer.Option(help="Stop before the run spends more than this (no limit by default).")]


@app.command(epilog=EPILOG)
def judge(
    path: DatasetDir,
    judge: Annotated[str, typer.Option(help="MODEL@BASE_URL of an OpenAI-compatible server.", show_default=False)],
    sample: Annotated[float, typer.Option(help="Fraction of rows judged, chosen by id (deterministic).")] = 1.0,
    max_requests: Budget = None,
    max_tokens: Budget = None,
    concurrency: Annotated[int, typer.Option(help="Requests in flight at once.")] = 64,
    cache: Annotated[
        Path | None, typer.Option(help="Response cache (default ~/.cache/distill/llm-cache.sqlite).")
    ] = None,
    quiet: Quiet = False,
) -> None:
    """Append judge_correctness/helpfulness/clarity/safety/groundedness, judge_score, judge_reason, judge_status."""
    with progress_bars(quiet) as on_progress:
        r = api.judge(
            path,
            judge=judge,
            sample=sample,
            max_requests=max_requests,
            max_tokens=max_tokens,
            concurrency=concurrency,
            cache=cache,
            on_progress=on_progress,
        )
    mean = f"{r.mean_score:.2f}" if r.mean_score is not None else "n/a"
    typer.echo(
        f"judge: {r.rows} rows: {r.judged} judged (mean score {mean}), {r.failed} failed, {r.pending} pending; "
        f"{r.written} partition(s) written, {r.skipped} up to date"
    )
    if r.pending:
        typer.echo("budget reached: rerun with a larger budget to judge the rest (answered rows come from the cache)")
