"""Shared typer arguments and options."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

DatasetDir = Annotated[Path, typer.Argument(help="A dataset directory made by `distill ingest`.", show_default=False)]
Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="Print only the final summary, no progress bars.")]
Settings = Annotated[
    list[str] | None,
    typer.Option(
        "--set",
        help="Stage option as KEY=VALUE; repeat for several (see the stage table in README).",
        show_default=False,
    ),
]
