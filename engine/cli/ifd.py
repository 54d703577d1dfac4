"""`distill ifd DIR`: IFD scores (Cherry_LLM) with a causal LM, resumable per chunk and shardable."""

from __future__ import annotations

from typing import Annotated

import typer

from engine import api
from engine.cli.params import Address, DatasetDir, Engine, Quiet
from engine.cli.progress import progress_bars

app = typer.Typer()

EXAMPLE = """Example:

  distill models prepare smollm2 && distill ifd out/sample

  distill ifd out/big --shard 0/4 --batch-tokens 8192     # machine 0 of 4, by hand

  distill ifd out/big --engine ray --address auto         # a Ray cluster: a GPU per task where it has GPUs
"""


@app.command(epilog=EXAMPLE)
def ifd(
    path: DatasetDir,
    model: Annotated[
        str, typer.Option(help="'smollm2' (after `distill models prepare smollm2`) or an HF-layout dir.")
    ] = "smollm2",
    backend: Annotated[str, typer.Option(help="auto|mlx|torch; auto picks the fastest for this machine.")] = "auto",
    batch_tokens: Annotated[int, typer.Option(help="Token budget of one forward batch (rows x padded length).")] = 4096,
    max_length: Annotated[
        int, typer.Option(help="Longest prompt + answer in tokens; longer pairs are truncated and flagged.")
    ] = 1024,
    template: Annotated[str, typer.Option(help="auto|chat|plain: the model's chat template, or plain text.")] = "auto",
    chunk_rows: Annotated[
        int, typer.Option(help="Rows per checkpoint inside a partition (a killed run resumes there).")
    ] = 1000,
    shard: Annotated[
        str | None, typer.Option(help="I/N: score only partitions I, I+N, ... (one machine's share).")
    ] = None,
    engine: Engine = "local",
    address: Address = None,
    quiet: Quiet = False,
) -> None:
    """Append ifd_loss_cond, ifd_loss_uncond, ifd_score, ifd_answer_tokens, ifd_valid and ifd_reason to every row."""
    with progress_bars(quiet) as on_progress:
        report = api.ifd(
            path,
            model=model,
            backend=backend,
            batch_tokens=batch_tokens,
            max_length=max_length,
            template=template,
            chunk_rows=chunk_rows,
            shard=shard,
            engine=engine,
            address=address,
            on_progress=on_progress,
        )
    typer.echo(
        f"ifd: {report.written} partition(s) written, {report.skipped} up to date, "
        f"{report.rows} rows in {report.seconds:.2f}s"
    )
