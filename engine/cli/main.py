"""The `distill` app: mounts one typer per verb; the only place that catches DistillError."""

from __future__ import annotations

import sys

import typer

from engine.cli import (
    chunk,
    dedup,
    experiment,
    export,
    gate,
    generate,
    ifd,
    info,
    ingest,
    judge,
    kenlm,
    models,
    regenerate,
    report,
    review,
    run,
    score,
    select,
    sql,
    verify,
)
from engine.errors import DistillError

app = typer.Typer(
    name="distill",
    help="Curate LLM fine-tuning data: ingest, score, dedup, select, export. Every command has an example in --help.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
    add_completion=False,
    rich_markup_mode=None,
)
for module in (
    ingest,
    chunk,
    generate,
    judge,
    regenerate,
    info,
    verify,
    run,
    score,
    dedup,
    gate,
    kenlm,
    ifd,
    models,
    sql,
    select,
    export,
    report,
    review,
    experiment,
):
    app.add_typer(module.app)


def main() -> None:
    """Console entry point: `Error: <message>` on stderr and exit 2 (1 for failed checks)."""
    try:
        app()  # standalone: typer reports usage errors itself and exits
    except DistillError as exc:
        sys.stderr.write(f"Error: {exc}\n")
        sys.exit(exc.exit_code)


if __name__ == "__main__":
    main()
