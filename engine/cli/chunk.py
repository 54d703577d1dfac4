"""`distill chunk`: cut documents into overlapping chunks (a text dataset)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from engine import api
from engine.cli.params import Quiet
from engine.cli.progress import progress_bars

app = typer.Typer()


@app.command(
    epilog="Example:\n\n  distill chunk ../shared/data/wiki_demo.txt --out out/chunks --chunk-size 800 --overlap 100"
)
def chunk(
    files: Annotated[list[Path], typer.Argument(help="Documents: .txt or .md.", show_default=False)],
    out: Annotated[Path, typer.Option("--out", "-o", help="Dataset directory to create.", show_default=False)],
    chunk_size: Annotated[int, typer.Option(help="Most characters in a chunk.")] = 800,
    overlap: Annotated[
        int, typer.Option(help="Characters shared by consecutive chunks (at a sentence or word start).")
    ] = 100,
    domain: Annotated[str | None, typer.Option(help="Domain recorded on every chunk.")] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace what is in --out.")] = False,
    quiet: Quiet = False,
) -> None:
    """Cut documents at paragraph and sentence boundaries; chunk_id, doc and char offsets go in meta."""
    with progress_bars(quiet) as on_progress:
        report = api.chunk(
            files,
            out,
            chunk_size=chunk_size,
            overlap=overlap,
            domain=domain,
            overwrite=overwrite,
            on_progress=on_progress,
        )
    typer.echo(f"chunk: {report.kept} chunks from {len(files)} document(s) -> {report.out}")
