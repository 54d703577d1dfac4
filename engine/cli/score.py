"""`distill score NAME DIR`: run one registered stage over a dataset."""

from __future__ import annotations

from typing import Annotated

import typer

from engine import api
from engine.cli.params import Address, DatasetDir, Engine, Quiet, Settings
from engine.cli.progress import progress_bars
from engine.config import parse_sets
from engine.stages import STAGES

app = typer.Typer()

_STAGES = ", ".join(s.name for s in STAGES)


@app.command(
    epilog="Example:\n\n  distill score length out/sample --set min_response_chars=20\n\n"
    "  distill score minhash out/big --engine ray --address auto"
)
def score(
    stage: Annotated[str, typer.Argument(help=f"Stage to run: {_STAGES}.", show_default=False)],
    path: DatasetDir,
    set: Settings = None,
    engine: Engine = "local",
    address: Address = None,
    quiet: Quiet = False,
) -> None:
    """Append a stage's columns to every row; partitions already scored with the same config are skipped."""
    with progress_bars(quiet) as on_progress:
        report = api.score(
            stage, path, settings=parse_sets(set or []), engine=engine, address=address, on_progress=on_progress
        )
    typer.echo(
        f"{report.stage}: {report.written} partition(s) written, {report.skipped} up to date, "
        f"{report.rows} rows in {report.seconds:.2f}s"
    )
