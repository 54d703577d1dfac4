"""KenLM scoring on every core: forked children that hold the loaded model and score lists sent over pipes.

Why: `kenlm.Model.score` holds the GIL for the whole call, so threads cannot share the rows and a
Python loop scores on one core. A forked child inherits the loaded model copy-on-write (no reload, no
pickling of the model); the parent sends each child its share of the strings (a pickle of str, ~1 ms for
a 10K-row share), scores its own share meanwhile, and reads back float64 scores. The children are forked
once per model and process count, not per call: a fork of a process with several hundred MB resident
takes ~20 ms. They are the very `Model.score` calls a loop would make, so the scores are bit-identical.

Linux only (fork with threads around is unsafe on macOS): elsewhere, and for `processes=1`, everything
is scored in this process. A child runs only kenlm, pickle and numpy, never Polars or numba, whose
threads do not exist after a fork. It exits when its pipe closes (the parent closed it or died).
"""

from __future__ import annotations

import atexit
import os
import pickle
import signal
import sys
import threading
from multiprocessing.connection import Connection, Pipe
from typing import Any

import numpy as np

MIN_SHARE_ROWS = 2048
"""Fewer rows than this per process are scored in this process: a share costs a pickle and two pipe trips."""


def log10_scores(model: Any, texts: list[str]) -> np.ndarray:
    """log10 p(<s> text </s>) per normalised text: one `Model.score` call per row, in this process."""
    return np.fromiter(map(model.score, texts), dtype=np.float64, count=len(texts))


def _serve(model: Any, conn: Connection) -> None:
    """A child's loop: a pickled list of strings in, its float64 scores out, until the pipe closes."""
    while True:
        try:
            message = conn.recv_bytes()
        except EOFError:
            return
        conn.send_bytes(log10_scores(model, pickle.loads(message)).tobytes())


class ScoreWorkers:
    """`processes - 1` forked scorers for one loaded model, plus this process; `score` splits the rows by cost."""

    def __init__(self, model: Any, processes: int) -> None:
        self.model = model
        self.pids: list[int] = []
        self.conns: list[Connection] = []
        self.lock = threading.Lock()  # one batch at a time on the pipes
        self.closed = False
        for _ in range(max(0, processes - 1) if sys.platform == "linux" else 0):
            self._fork()

    def _fork(self) -> None:
        mine, theirs = Pipe()
        pid = os.fork()
        if pid == 0:  # the child: close the parent's ends (or siblings never see EOF), serve, exit
            code = 1
            try:
                mine.close()
                for c in [*self.conns, *(c for w in _WORKERS.values() for c in w.conns)]:
                    c.close()
                _serve(self.model, theirs)
                code = 0
            finally:
                os._exit(code)  # no atexit handlers, no flushing of the parent's buffers
        theirs.close()
        self.pids.append(pid)
        self.conns.append(mine)

    def score(self, texts: list[str], cost: np.ndarray | None = None) -> np.ndarray:
        """log10 p(<s> text </s>) per text; shares of about equal `cost` (default: one per row)."""
        n = len(texts)
        with self.lock:
            k = min(len(self.conns), n // MIN_SHARE_ROWS - 1)
            if k <= 0:
                return log10_scores(self.model, texts)
            weight = np.cumsum(cost if cost is not None else np.ones(n), dtype=np.float64)
            cuts = [0, *np.searchsorted(weight, np.linspace(0, weight[-1], k + 2)[1:-1]).tolist(), n]
            out = np.empty(n, dtype=np.float64)
            try:
                for i in range(k):  # sent before scoring here: log10_scores never lets another thread run
                    self.conns[i].send_bytes(pickle.dumps(texts[cuts[i + 1] : cuts[i + 2]], protocol=5))
                out[: cuts[1]] = log10_scores(self.model, texts[: cuts[1]])
                for i in range(k):
                    out[cuts[i + 1] : cuts[i + 2]] = np.frombuffer(self.conns[i].recv_bytes(), dtype=np.float64)
            except (EOFError, OSError) as exc:
                self.close()
                msg = f"kenlm: a scoring process ended unexpectedly ({exc!r}); rerun to resume"
                raise RuntimeError(msg) from exc
            except BaseException:  # failed or interrupted mid-batch: a pipe may hold a stale answer
                self.close()
                raise
            return out

    def close(self) -> None:
        """Close the pipes and stop the children (they hold nothing worth finishing)."""
        for c in self.conns:
            c.close()
        for pid in self.pids:
            try:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
            except (ProcessLookupError, ChildProcessError):
                pass
        self.conns, self.pids, self.closed = [], [], True


_WORKERS: dict[tuple[int, int], ScoreWorkers] = {}
_WORKERS_LOCK = threading.Lock()


def workers(model: Any, processes: int) -> ScoreWorkers:
    """The scorers for this model object and process count: forked on first use, reused after.

    Keyed by the model's id; the entry holds the model, so the id cannot be reused while it lives.
    Workers closed after a failed or interrupted batch are replaced.
    """
    key = (id(model), processes)
    with _WORKERS_LOCK:
        found = _WORKERS.get(key)
        if found is None or found.closed:
            found = _WORKERS[key] = ScoreWorkers(model, processes)
        return found


@atexit.register
def close_all() -> None:
    with _WORKERS_LOCK:
        for w in _WORKERS.values():
            w.close()
        _WORKERS.clear()
