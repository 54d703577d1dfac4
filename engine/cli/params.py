"""Shared typer arguments and options."""

from __future__ import annotations

from typing import Annotated

import typer

DatasetDir = Annotated[
    str,
    typer.Argument(
        help="A dataset made by `distill ingest`: a directory, or an s3://bucket/prefix or gs://bucket/prefix.",
        show_default=False,
    ),
]
Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="Print only the final summary, no progress bars.")]
Engine = Annotated[
    str,
    typer.Option(
        "--engine",
        help='Where partitions run: local, or ray (one Ray task per partition, same bytes; pip install -e ".[ray]").',
    ),
]
Address = Annotated[
    str | None,
    typer.Option(
        "--address",
        help="With --engine ray: the cluster to join, auto or HOST:PORT (default: start a local Ray).",
        show_default=False,
    ),
]
Settings = Annotated[
    list[str] | None,
    typer.Option(
        "--set",
        help="Stage option as KEY=VALUE; repeat for several (see the stage table in README).",
        show_default=False,
    ),
]
