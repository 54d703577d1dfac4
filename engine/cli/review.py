"""`distill review DIR`: serve the labelling app (engine/review/app.py) with Streamlit until Ctrl-C."""

from __future__ import annotations

import webbrowser
from typing import Annotated

import typer

from engine.cli.params import DatasetDir
from engine.review.server import start_server, stop

app = typer.Typer()

EXAMPLE = """Example:

  distill review out/sample

  distill review out/sample --port 8600 --no-open
"""


@app.command(epilog=EXAMPLE)
def review(
    path: DatasetDir,
    host: Annotated[str, typer.Option(help="Address to serve on; keep 127.0.0.1 unless you mean to share it.")] = (
        "127.0.0.1"
    ),
    port: Annotated[int, typer.Option(help="Port to serve on.")] = 8501,
    open_browser: Annotated[
        bool, typer.Option("--open/--no-open", help="Open the app in the default browser once it is up.")
    ] = True,
) -> None:
    """Label rows in the browser: accept, reject or edit them, with their scores beside them.

    Serves the Streamlit app on HOST:PORT until Ctrl-C. The sidebar filters by a score column's range, gate
    pass/fail and rule, and review label; the page shows the current row in full with every stage column,
    and a table of 50 rows around it.

    \b
    Keys:  a    accept            r    reject (the note field is saved with it)
           e    edit, then save   j/n  next            k/p  previous

    Labels are saved at once in DIR/review/labels.parquet and survive restarts; `distill select` leaves
    rejected rows out and writes edited rows with their edits.
    """
    server = start_server(path, host=host, port=port)
    try:
        typer.echo(
            f"distill review: {server.url} ({server.rows:,} rows; labels go to {path}/review/labels.parquet; Ctrl-C stops)"
        )
        if open_browser:
            webbrowser.open(server.url)
        code = server.proc.wait()
    except KeyboardInterrupt:
        stop(server.proc)
        typer.echo("distill review: stopped")
        return
    if code != 0:
        raise typer.Exit(code)
