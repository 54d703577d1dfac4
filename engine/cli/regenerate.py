"""`distill regenerate`: re-ask teachers for the rows a reviewer rejected in `distill review`."""

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
    Teachers,
    limits,
    usage_line,
)
from engine.cli.progress import progress_bars

app = typer.Typer()

EPILOG = """Example:

  distill review out/qa            # reject the weak rows (key r), with a note on what is wrong
  distill regenerate out/qa --teacher big=qwen2.5-72b@http://127.0.0.1:8000/v1 --max-cost 5 --price qwen2.5-72b=0.9,0.9
  distill review out/qa            # regenerated rows are back in the queue: accept (a) or reject again

Each rejected row is asked again with its instruction, input, source passage, the rejected response and
your note; the new response is saved as the row's edit, labelled `regenerated`. Selection writes edited
rows with the edit applied and leaves rejected rows out. API keys come from $OPENAI_API_KEY only.
"""


@app.command(epilog=EPILOG)
def regenerate(
    path: DatasetDir,
    teacher: Teachers,
    max_requests: MaxRequests = None,
    max_tokens: MaxTokens = None,
    max_cost: MaxCost = None,
    price: PriceOpt = None,
    prices: PricesFile = None,
    concurrency: Concurrency = 64,
    max_repairs: Annotated[int, typer.Option(help="Re-asks with a stricter prompt after an empty answer.")] = 2,
    cache: LlmCache = None,
    quiet: Quiet = False,
) -> None:
    """Rewrite the responses of rejected rows with a stricter prompt; they come back labelled `regenerated`."""
    with progress_bars(quiet) as on_progress:
        r = api.regenerate(
            path,
            teacher=teacher,
            limits=limits(max_requests, max_tokens, max_cost, price, prices),
            concurrency=concurrency,
            max_repairs=max_repairs,
            cache=cache,
            on_progress=on_progress,
        )
    t = r.tally
    if not t.rejected:
        typer.echo(f"regenerate: {path}: no rejected rows (label rows with `distill review {path}` first)")
        return
    reasons = ", ".join(f"{k} {v}" for k, v in sorted(t.reasons.items()))
    typer.echo(
        f"regenerate: {t.rejected} rejected rows: {t.regenerated} regenerated, {t.failed} failed, {t.pending} pending, "
        f"{t.skipped} skipped{f' ({reasons})' if reasons else ''}; {usage_line(r.spent)}, "
        f"{r.client['cache_hits']} from cache"
    )
    if r.budget_exhausted:
        typer.echo("budget reached: rerun with a larger budget to continue (answered rows come from the cache)")
