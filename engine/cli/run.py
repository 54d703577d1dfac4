"""`distill run`: a pipeline file end to end, resuming where it stopped."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from engine import api
from engine.cli.params import Quiet
from engine.cli.progress import progress_bars

app = typer.Typer()


@app.command(epilog="Example:\n\n  distill run pipelines/default.toml --out out/sample")
def run(
    pipeline: Annotated[
        Path, typer.Argument(help="A pipeline TOML: [ingest] then [[stage]] tables.", show_default=False)
    ],
    out: Annotated[Path | None, typer.Option(help="Dataset directory (default: the pipeline's ingest.out).")] = None,
    quiet: Quiet = False,
) -> None:
    """Ingest the pipeline's sources and run its stages in order; a rerun skips what is up to date."""
    with progress_bars(quiet) as on_progress:
        report = api.run(pipeline, out=out, on_progress=on_progress)
    i = report.ingest
    typer.echo(
        f"ingest: kept {i.kept}, rejected {i.rejected} of {i.rows_read} rows"
        + (" (up to date)" if i.up_to_date else f" in {i.seconds:.2f}s")
    )
    for s in report.stages:
        typer.echo(
            f"{s.stage}: {s.written} partition(s) written, {s.skipped} up to date, {s.rows} rows, {s.seconds:.2f}s"
        )
    typer.echo(f"dataset: {report.out}")
