"""`distill ingest`: read sources into a dataset directory."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from engine import api
from engine.cli.params import Quiet
from engine.cli.progress import err, progress_bars

app = typer.Typer()

EPILOG = """Example:

  distill ingest ../shared/data/alpaca_en_demo.json ../shared/data/gsm8k_train.jsonl --out out/mix --domain general
"""


@app.command(epilog=EPILOG)
def ingest(
    sources: Annotated[
        list[Path],
        typer.Argument(help="Files: .json, .jsonl(.gz/.zst), .parquet, .csv, .txt, .md.", show_default=False),
    ],
    out: Annotated[
        str,
        typer.Option("--out", "-o", help="Dataset directory (or s3:// / gs:// prefix) to create.", show_default=False),
    ],
    format: Annotated[
        str,
        typer.Option(
            help="auto|alpaca|prompts|sharegpt|openai|dpo|kto|rlvr|text; auto detects per file from its fields."
        ),
    ] = "auto",
    map: Annotated[
        list[str] | None,
        typer.Option(
            "--map",
            help="Override a field: CANONICAL=SOURCE_FIELD, e.g. response=answer. Repeatable.",
            show_default=False,
        ),
    ] = None,
    domain: Annotated[
        str | None, typer.Option(help="Domain recorded on every row (general, math, coding, ...).")
    ] = None,
    source: Annotated[
        str | None, typer.Option(help="Source name recorded on every row (default: the file's stem).")
    ] = None,
    partition_rows: Annotated[
        int, typer.Option(help="Rows per Parquet partition; memory is bounded by this.")
    ] = 100_000,
    text_unit: Annotated[
        str, typer.Option(help="For .txt/.md: auto|line|paragraph|file (auto: line for .txt, file for .md).")
    ] = "auto",
    codec: Annotated[
        str | None,
        typer.Option(
            help="Compression of the partitions: lz4 (every stage reads back fastest) or zstd (~2/3 of the disk). "
            "Default: the codec of the dataset already in --out, lz4 for a new one.",
            show_default=False,
        ),
    ] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace a dataset already in --out.")] = False,
    quiet: Quiet = False,
) -> None:
    """Ingest files of any common format into canonical Parquet partitions, with rejects and reasons."""
    with progress_bars(quiet) as on_progress:
        report = api.ingest(
            sources,
            out,
            format=format,
            mapping=api.parse_map(map or []),
            domain=domain,
            source=source,
            partition_rows=partition_rows,
            text_unit=text_unit,
            codec=codec,
            overwrite=overwrite,
            on_progress=on_progress,
        )
    if report.up_to_date:
        err.print(f"{out}: up to date (same sources and options); nothing to do")
    for f in report.files:
        typer.echo(f"{f.path}: {f.format} -> {f.kind}: read {f.rows_read}, kept {f.kept}, rejected {f.rejected}")
    rate = report.rows_read / report.seconds if report.seconds else 0
    typer.echo(
        f"kept {report.kept}, rejected {report.rejected} of {report.rows_read} rows read "
        f"into {report.partitions} partition(s) in {out} ({report.seconds:.2f}s, {rate:,.0f} rows/s)"
    )
    if report.rejected:
        typer.echo(f"rejects with file, line, field and reason: {report.out / 'rejects'}")
