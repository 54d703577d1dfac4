"""`distill sql DIR "SELECT ..."`: ad-hoc DuckDB SQL over the dataset's `scored` view."""

from __future__ import annotations

from typing import Annotated

import typer

from engine import api
from engine.cli.params import DatasetDir

app = typer.Typer()

EXAMPLE = """Example:

  distill sql out/sample "select domain, count(*) as n, avg(heur_score) from scored group by domain"

  distill sql out/sample "select id, sort_key from scored where eligible order by sort_key desc limit 5" --by heur_score
"""


def _cell(v: object) -> str:
    s = "NULL" if v is None else (f"{v:.6g}" if isinstance(v, float) else str(v))
    s = s.replace("\n", "\\n")
    return s if len(s) <= 60 else s[:57] + "..."


@app.command(epilog=EXAMPLE)
def sql(
    path: DatasetDir,
    query: Annotated[str, typer.Argument(help="One DuckDB statement over the view `scored`.", show_default=False)],
    by: Annotated[str | None, typer.Option(help="Score column shown as `sort_key` and `score` in the view.")] = None,
    limit: Annotated[int, typer.Option(help="Rows to print at most.")] = 50,
) -> None:
    """Run SQL over every partition and appended column of a dataset.

    The view `scored` has the canonical columns, every stage's columns, `_ord` (row position), `sort_key`/`score`
    (the --by column, default quality_composite or heur_score), `eligible` (not flagged as duplicate, failed gate,
    bad length or invalid IFD) and `domain` (the domain stage's, where it ran). DuckDB reads only the columns used.
    """
    res = api.sql(path, query, by=by, limit=limit)
    if not res.columns:
        typer.echo("ok")
        return
    table = [list(res.columns)] + [[_cell(v) for v in row] for row in res.rows]
    widths = [max(len(r[i]) for r in table) for i in range(len(res.columns))]
    for n, row in enumerate(table):
        typer.echo("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
        if n == 0:
            typer.echo("  ".join("-" * w for w in widths))
    more = f" (first {limit}; --limit for more)" if res.truncated else ""
    typer.echo(f"{len(res.rows)} row(s){more}")
