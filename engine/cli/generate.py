"""`distill generate`: ask teacher models for Q&A pairs per chunk; the pairs become an sft dataset."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from engine import api
from engine.cli.params import DatasetDir, Quiet
from engine.cli.progress import progress_bars

app = typer.Typer()

EPILOG = """Example:

  distill generate out/chunks --teacher big=qwen2.5-72b@http://127.0.0.1:8000/v1:60 --teacher small=llama3-8b@http://127.0.0.1:8001/v1:40 --out out/qa --max-tokens 2000000

API keys come from $OPENAI_API_KEY only; they are never written anywhere.
"""

Budget = Annotated[int | None, typer.Option(help="Stop before the run spends more than this (no limit by default).")]


@app.command(epilog=EPILOG)
def generate(
    path: DatasetDir,
    teacher: Annotated[
        list[str],
        typer.Option(help="NAME=MODEL@BASE_URL[:SHARE]; repeat to share the rows by percentage.", show_default=False),
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="Dataset directory to create.", show_default=False)],
    pairs: Annotated[int, typer.Option(help="Q&A pairs asked per chunk.")] = 3,
    domain: Annotated[
        str, typer.Option(help="Prompt template: general|medical|legal|technical|financial|scientific.")
    ] = "general",
    max_requests: Budget = None,
    max_tokens: Budget = None,
    concurrency: Annotated[int, typer.Option(help="Requests in flight at once.")] = 64,
    max_repairs: Annotated[int, typer.Option(help="Re-asks with a stricter prompt after an invalid answer.")] = 2,
    cache: Annotated[
        Path | None, typer.Option(help="Response cache (default ~/.cache/distill/llm-cache.sqlite).")
    ] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace what is in --out.")] = False,
    quiet: Quiet = False,
) -> None:
    """Generate Q&A pairs with one or more teachers; invalid answers go to OUT/source/rejects.parquet."""
    with progress_bars(quiet) as on_progress:
        r = api.generate(
            path,
            teacher=teacher,
            out=out,
            pairs=pairs,
            domain=domain,
            max_requests=max_requests,
            max_tokens=max_tokens,
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
        f"{t.pairs_kept} pairs kept, {t.pairs_rejected} rejected; {r.spent['requests']} requests, "
        f"{r.spent['prompt_tokens'] + r.spent['completion_tokens']} tokens, {r.client['cache_hits']} from cache"
    )
    if r.budget_exhausted:
        typer.echo(
            "budget reached: the run stopped cleanly; rerun with a larger budget to continue (answered rows come from the cache)"
        )
