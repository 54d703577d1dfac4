"""`distill info`: what a dataset holds."""

from __future__ import annotations

import typer

from engine import api
from engine.cli.params import DatasetDir

app = typer.Typer()


@app.command(epilog="Example:\n\n  distill info out/sample")
def info(path: DatasetDir) -> None:
    """Show kind, row counts, columns with simple stats, rejects by reason and the stage log."""
    i = api.info(path)
    kinds = ", ".join(f"{k} {n}" for k, n in i.kinds.items())
    typer.echo(f"{i.path}: {i.kind} ({kinds}); {i.rows} rows in {i.partitions} partition(s); {i.rejected} rejected")
    if i.rejects_by_reason:
        typer.echo("rejects: " + ", ".join(f"{r} {n}" for r, n in i.rejects_by_reason.items()))
    typer.echo("columns:")
    width = max(len(c.name) for c in i.columns)
    for c in i.columns:
        typer.echo(f"  {c.name:<{width}}  {c.dtype:<14.14}  nulls {c.nulls:<8} {c.stat}")
    typer.echo("stages:" + ("" if i.stages else " none yet"))
    for s in i.stages:
        typer.echo(
            f"  {s['stage']} v{s['version']}: {s.get('status')}, {s.get('partitions_written', 0)} written, "
            f"{s.get('partitions_skipped', 0)} skipped, config {s['config']}"
        )
