"""Progress reports: the library never prints; it calls `on_progress` and the CLI draws the bars."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Progress:
    """One report. `done`/`total` count `unit`s (bytes, partitions); `rows` is rows handled so far."""

    task: str
    done: int
    total: int | None
    unit: str = "rows"
    rows: int = 0
    message: str | None = None


OnProgress = Callable[[Progress], None]


def ignore(_: Progress) -> None:
    """The default callback: report nothing."""
