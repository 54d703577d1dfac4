"""`distill export DIR --format F --out OUT`: write a dataset or selection in a trainer's format."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from engine import api
from engine.cli.params import Quiet
from engine.cli.progress import progress_bars

app = typer.Typer()

EXAMPLE = """Example:

  distill export out/sample --format llama-factory --out out/lf

  distill export out/selected --format mlx-lm --style completions --out out/mlx --overwrite
"""


@app.command(epilog=EXAMPLE)
def export(
    path: Annotated[Path, typer.Argument(help="A dataset or selection directory.", show_default=False)],
    format: Annotated[
        str, typer.Option(help="parquet | jsonl | alpaca | sharegpt | openai | llama-factory | mlx-lm.")
    ] = "parquet",
    out: Annotated[Path, typer.Option(help="Output directory (written to a temp dir, then renamed).")] = Path(
        "out/export"
    ),
    style: Annotated[str, typer.Option(help="mlx-lm only: chat | completions | text.")] = "chat",
    train_frac: Annotated[float, typer.Option(help="Share of rows in train when the input has no split column.")] = 0.9,
    valid_frac: Annotated[float, typer.Option(help="Share in valid; test gets the rest.")] = 0.05,
    name: Annotated[
        str | None, typer.Option(help="LLaMA-Factory: dataset name prefix (default: the --out folder name).")
    ] = None,
    skip_unsupported: Annotated[
        bool, typer.Option("--skip-unsupported", help="Leave out rows the format cannot hold instead of failing.")
    ] = False,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace --out if it exists.")] = False,
    quiet: Quiet = False,
) -> None:
    """Write every row, one file per group and split (train/valid/test), plus export.json."""
    with progress_bars(quiet) as on_progress:
        report = api.export(
            path,
            format=format,
            out=out,
            style=style,
            train_frac=train_frac,
            valid_frac=valid_frac,
            name=name,
            skip_unsupported=skip_unsupported,
            overwrite=overwrite,
            on_progress=on_progress,
        )
    for f in report.files:
        typer.echo(f"  {f.name}: {f.rows} rows")
    skipped = ", ".join(f"{n} {k}" for k, n in report.skipped.items())
    typer.echo(
        f"{report.format}: {report.rows} rows in {len(report.files)} file(s) to {report.out} "
        f"in {report.seconds:.2f}s" + (f"; left out {skipped}" if skipped else "")
    )
