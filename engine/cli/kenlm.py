"""`distill kenlm train`: build a KenLM n-gram model from text files, for the `kenlm` stage."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from engine import api

app = typer.Typer(name="kenlm", no_args_is_help=True, help="KenLM n-gram models for the kenlm perplexity stage.")

EXAMPLE = """Example:

  distill kenlm train --corpus data/sample/wiki_demo.txt --order 5 --out models/wiki.arpa

  distill score kenlm out/sample --set model=models/wiki.arpa
"""


@app.callback(epilog=EXAMPLE)
def kenlm() -> None:
    """KenLM n-gram models: train one here, score with `distill score kenlm DIR --set model=MODEL`."""


@app.command(epilog=EXAMPLE)
def train(
    corpus: Annotated[
        list[Path],
        typer.Option(
            "--corpus", help="Text file, one sentence or paragraph per line; repeat for several.", show_default=False
        ),
    ],
    out: Annotated[Path, typer.Option("--out", help="The ARPA file to write.", show_default=False)],
    order: Annotated[int, typer.Option("--order", help="Longest n-gram (1..6).")] = 5,
) -> None:
    """Train an interpolated modified Kneser-Ney model (as KenLM's lmplz) and write it as ARPA.

    Lines are normalised as the kenlm stage normalises rows (lower case, no accents, digits as 0,
    punctuation split off), so scores match. The file loads in `kenlm.Model`.
    """
    report = api.kenlm_train(corpus, out, order=order)
    grams = ", ".join(f"{n}-grams {c:,}" for n, c in enumerate(report.ngrams, start=1))
    typer.echo(
        f"{report.path}: order {report.order}, {report.sentences:,} sentences, {report.tokens:,} tokens; {grams}"
    )
    if report.fallback_orders:
        orders = ", ".join(map(str, report.fallback_orders))
        typer.echo(
            f"note: too little data for Kneser-Ney discounts at order {orders}; used 0.5/1/1.5 (lmplz's fallback)"
        )
