"""Python's cyclic garbage collector kept off the objects a job starts with.

Why: a job's Python heap is almost all imported modules (~95K-180K tracked objects once polars, pyarrow,
numba and the engine are loaded), none of them garbage, yet each full collection rescans them all
(~0.04 s holding the GIL, measured on 2 cores, while the job's other threads wait for it); a dedup job
sets off one, an ingest of 1M rows two. `frozen_start()`, around `run_stage` and `ingest`, moves the
objects that exist when a job begins into the collector's permanent generation for the job's length
(`gc.freeze`), so collections during it scan only what the job made (cycles the job makes are still
collected), and hands them back afterwards (`gc.unfreeze`): garbage that predates the job is collected
after it, as it would have been. Where the process has frozen objects itself, it is left as it is.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

_lock = threading.Lock()
_depth = 0


@contextmanager
def frozen_start() -> Iterator[None]:
    """Freeze the objects alive now for the duration of the block (re-entrant; see the module doc)."""
    global _depth
    with _lock:
        ours = _depth > 0 or gc.get_freeze_count() == 0
        if ours:
            if _depth == 0:
                gc.freeze()
            _depth += 1
    try:
        yield
    finally:
        if ours:
            with _lock:
                _depth -= 1
                if _depth == 0:
                    gc.unfreeze()
