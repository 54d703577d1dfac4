"""`distill verify`: consistency checks and a summary; exit 1 when a check fails."""

from __future__ import annotations

from typing import Annotated

import typer

from engine import api
from engine.cli.params import DatasetDir
from engine.errors import CheckFailed

app = typer.Typer()


@app.command(epilog="Example:\n\n  distill verify out/sample --max-dup-rate 0.01")
def verify(
    path: DatasetDir,
    max_dup_rate: Annotated[
        float | None, typer.Option(help="Fail when more than this share of ids are duplicates.")
    ] = None,
) -> None:
    """Check row counts, schema, required fields, ids and stage files; print lengths and score means."""
    report = api.verify(path, max_dup_rate=max_dup_rate)
    for c in report.checks:
        typer.echo(f"{'ok  ' if c.ok else 'FAIL'}  {c.name}: {c.detail}")
    for k, v in report.stats.items():
        typer.echo(f"  {k}: {v:.4g}" if isinstance(v, float) else f"  {k}: {v}")
    if not report.ok:
        failed = [c.name for c in report.checks if not c.ok]
        msg = f"{path}: {len(failed)} check(s) failed: {', '.join(failed)}"
        raise CheckFailed(msg)
