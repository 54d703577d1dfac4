"""`distill run`: a pipeline file end to end, resuming where it stopped."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from engine import api
from engine.cli.params import Address, Engine, Quiet
from engine.cli.progress import progress_bars

app = typer.Typer()


@app.command(
    epilog="Example:\n\n  distill run pipelines/default.toml --out out/sample\n\n"
    "  distill run pipelines/default.toml --out s3://bucket/big --engine ray --address auto"
)
def run(
    pipeline: Annotated[
        Path,
        typer.Argument(
            help="A pipeline TOML: [ingest], [[stage]] tables, then optional [select], [export], [report].",
            show_default=False,
        ),
    ],
    out: Annotated[
        str | None,
        typer.Option(help="Dataset directory or s3:// / gs:// prefix (default: the pipeline's ingest.out)."),
    ] = None,
    engine: Engine = "local",
    address: Address = None,
    quiet: Quiet = False,
) -> None:
    """Ingest the pipeline's sources, run its stages in order, then select, export and report.

    A rerun skips the stages that are up to date.
    """
    with progress_bars(quiet) as on_progress:
        report = api.run(pipeline, out=out, engine=engine, address=address, on_progress=on_progress)
    i = report.ingest
    typer.echo(
        f"ingest: kept {i.kept}, rejected {i.rejected} of {i.rows_read} rows"
        + (" (up to date)" if i.up_to_date else f" in {i.seconds:.2f}s")
    )
    for s in report.stages:
        typer.echo(
            f"{s.stage}: {s.written} partition(s) written, {s.skipped} up to date, {s.rows} rows, {s.seconds:.2f}s"
        )
    if (sel := report.select) is not None:
        short = ", ".join(f"{m['domain']} {m['shortfall']}" for m in sel.mix or [] if m["shortfall"])
        typer.echo(
            f"select: {' -> '.join(sel.steps)} by {sel.by}: {sel.rows} of {sel.pool} eligible rows -> {sel.out}"
            + (f" (short: {short})" if short else "")
        )
    if (ex := report.export) is not None:
        typer.echo(f"export: {ex.format}: {ex.rows} rows in {len(ex.files)} file(s) -> {ex.out}")
    if (rp := report.report) is not None:
        typer.echo(f"report: {rp.out}")
    typer.echo(f"dataset: {report.out}")
