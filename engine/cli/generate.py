"""`distill generate`: ask teacher models for Q&A pairs per chunk; the pairs become an sft dataset."""

from __future__ import annotations

from pathlib import Path
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

  distill generate out/chunks --teacher big=qwen2.5-72b@http://127.0.0.1:8000/v1:60 --teacher small=llama3-8b@http://127.0.0.1:8001/v1:40 --out out/qa --max-tokens 2000000

  distill ingest instructions.jsonl --format prompts --out out/prompts
  distill generate out/prompts --teacher gpt=gpt-4o@https://api.openai.com/v1 --out out/answered --max-cost 20 --price gpt-4o=2.5,10

Text rows (chunks) get Q&A pairs; sft rows without a response get one. Each row's domain picks its
prompt template (general, medical, legal, technical, financial, scientific) unless --domain names one.
API keys come from $OPENAI_API_KEY only; they are never written anywhere.
"""


@app.command(epilog=EPILOG)
def generate(
    path: DatasetDir,
    teacher: Teachers,
    out: Annotated[Path, typer.Option("--out", "-o", help="Dataset directory to create.", show_default=False)],
    pairs: Annotated[int, typer.Option(help="Q&A pairs asked per chunk.")] = 3,
    domain: Annotated[
        str,
        typer.Option(
            help="Prompt template: row (each row's own domain) or general|medical|legal|technical|financial|scientific."
        ),
    ] = "row",
    max_requests: MaxRequests = None,
    max_tokens: MaxTokens = None,
    max_cost: MaxCost = None,
    price: PriceOpt = None,
    prices: PricesFile = None,
    concurrency: Concurrency = 64,
    max_repairs: Annotated[int, typer.Option(help="Re-asks with a stricter prompt after an invalid answer.")] = 2,
    cache: LlmCache = None,
    overwrite: Annotated[bool, typer.Option(help="Replace what is in --out.")] = False,
    quiet: Quiet = False,
) -> None:
    """Generate Q&A pairs (text rows) or responses (sft rows without one); invalid answers go to OUT/source/rejects.parquet."""
    with progress_bars(quiet) as on_progress:
        r = api.generate(
            path,
            teacher=teacher,
            out=out,
            pairs=pairs,
            domain=domain,
            limits=limits(max_requests, max_tokens, max_cost, price, prices),
            concurrency=concurrency,
            max_repairs=max_repairs,
            cache=cache,
            overwrite=overwrite,
            on_progress=on_progress,
        )
    t = r.tally
    per = ", ".join(f"{k} {v.rows}" for k, v in t.teachers.items())
    typer.echo(
        f"generate: {t.rows_in} rows: {t.rows_ok} answered ({per}), {t.rows_rejected} rejected, {t.rows_pending} pending; "
        f"{t.pairs_kept} pairs kept, {t.pairs_rejected} rejected, {t.responses_filled} responses filled; "
        f"{usage_line(r.spent)}, {r.client['cache_hits']} from cache"
    )
    if r.budget_exhausted:
        typer.echo(
            "budget reached: the run stopped cleanly; rerun with a larger budget to continue (answered rows come from the cache)"
        )
