"""`distill select DIR --query NAME --param k=v --out OUT`: write the rows a SQL selection picks."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from engine import api
from engine.cli.params import Address, DatasetDir, Engine
from engine.config import parse_sets

app = typer.Typer()

EXAMPLE = """Example:

  distill select out/sample --query top_n --param n=500 --by heur_score --out out/top500

  distill select out/sample --query top_pct_per_domain --param pct=0.2 --by ifd_score --out out/ifd20

  distill select out/sample --query mix --param n=2000 --mix queries/mix_default.toml --query split --out out/mix

  distill select out/big --query mix --param n=100000 --out out/mix --engine ray --address auto
"""


@app.command(epilog=EXAMPLE)
def select(
    path: DatasetDir,
    query: Annotated[
        list[str],
        typer.Option(
            help="A query in queries/ by name (top_n, top_pct_per_domain, threshold, quality_tiers, split, mix) "
            "or a .sql file; repeat to chain: each reads the rows the last one chose.",
            show_default=False,
        ),
    ],
    out: Annotated[Path, typer.Option(help="Directory for the selected rows (a new dataset).", show_default=False)],
    param: Annotated[
        list[str] | None, typer.Option(help="Query parameter NAME=VALUE, bound by DuckDB; repeat for several.")
    ] = None,
    by: Annotated[
        str | None, typer.Option(help="Score column to rank by (default: quality_composite, else heur_score).")
    ] = None,
    ascending: Annotated[bool, typer.Option(help="Rank low values first (e.g. --by kenlm_ppl).")] = False,
    all_rows: Annotated[
        bool, typer.Option(help="Let flagged rows (duplicates, failed gate, bad length, invalid IFD) qualify.")
    ] = False,
    mix: Annotated[
        Path | None, typer.Option(help="Mix table for the mix query: TOML [mix] or CSV domain,share.")
    ] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace OUT if it exists.")] = False,
    engine: Engine = "local",
    address: Address = None,
) -> None:
    """Select rows with SQL from queries/ and write them, with every score column, as a new dataset.

    Parameters are bound by DuckDB, never formatted into the SQL. The output's manifest (and selection.json)
    records the queries, parameters and the input's fingerprint; a mix also records target vs achieved rows
    per domain and any shortfall. With --engine ray the chain runs as map/reduce tasks over the narrow score
    columns (the shipped queries say how they split); the rows are the same as a local run's.
    """
    r = api.select(
        path,
        query,
        out,
        params=parse_sets(param or [], option="--param", example="n=1000"),
        by=by,
        ascending=ascending,
        all_rows=all_rows,
        mix=mix,
        overwrite=overwrite,
        engine=engine,
        address=address,
    )
    typer.echo(f"select: {' -> '.join(r.steps)} by {r.by or '(no score)'}: {r.rows} of {r.pool} eligible rows")
    for m in r.mix or []:
        short = f"  short {m['shortfall']}" if m["shortfall"] else ""
        typer.echo(
            f"  {m['domain']:<14} target {m['target_rows']:>8} ({m['target_share']:.1%})  "
            f"available {m['available']:>8}  got {m['achieved_rows']:>8}{short}"
        )
    typer.echo(f"wrote {r.out} in {r.seconds:.2f}s")
