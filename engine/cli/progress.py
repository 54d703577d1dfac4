"""Rich progress bars fed by the library's `on_progress` reports."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from engine.progress import OnProgress
from engine.progress import Progress as Report

err = Console(stderr=True)


@contextmanager
def progress_bars(quiet: bool) -> Iterator[OnProgress]:
    """Yield an on_progress callback that draws one bar per task (rows/s and ETA), or prints nothing."""
    if quiet:
        yield lambda _: None
        return
    bars = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=err,
        transient=False,
    )
    tasks: dict[str, TaskID] = {}

    def on_progress(r: Report) -> None:
        if r.message:
            err.print(r.message)
            return
        if not tasks:
            bars.start()  # lazily: a command that fails before any work prints no empty bar
        if r.task not in tasks:
            tasks[r.task] = bars.add_task(f"{r.task} ({r.unit})", total=r.total, rate="")
        task = bars.tasks[tasks[r.task]]
        elapsed = task.elapsed or 0.0
        rate = f"{r.rows / elapsed:,.0f} rows/s" if elapsed > 0 and r.rows else ""
        bars.update(tasks[r.task], completed=r.done, total=r.total, rate=rate)

    try:
        yield on_progress
    finally:
        if tasks:
            bars.stop()
