"""`distill report DIR --out report.html`: one self-contained page of scores, funnel, mix, duplicates, lengths."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from engine import api
from engine.cli.params import DatasetDir

app = typer.Typer()


@app.command(epilog="Example:\n\n  distill report out/sample --out out/sample/report.html")
def report(
    path: DatasetDir,
    out: Annotated[Path, typer.Option(help="The HTML file to write (opens offline: plotly.js is inlined).")] = Path(
        "report.html"
    ),
    bins: Annotated[int, typer.Option(help="Bins per histogram.")] = 40,
    selection: Annotated[
        Path | None, typer.Option(help="A `distill select` output whose mix (target vs achieved) to show.")
    ] = None,
) -> None:
    """Write an HTML report: score distributions, retention funnel, mix, duplicate clusters, lengths."""
    result = api.report(path, out=out, bins=bins, selection=selection)
    s = result.summary
    left = s["funnel"][-1]["rows"]
    typer.echo(
        f"{result.out}: {result.charts} charts, {s['rows']} rows ({left} left after every stage's flags), "
        f"{len(s['scores'])} score columns, {result.bytes / 1e6:.1f} MB in {result.seconds:.2f}s"
    )
