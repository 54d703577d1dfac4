"""numba's implementation registries, loaded without importing scipy.linalg.

Why: the first numba kernel a process calls loads numba's registries (~0.33 s of CPU, measured on 2
cores). Most of that is one registry, `numba.np.arraymath`, importing scipy.linalg (array-API shims,
numpy.f2py, and OpenBLAS starting its threads) only to choose how `np.correlate`/`np.convolve` take
inner products. No kernel here uses those. Importing that registry while `scipy.linalg.cython_blas`
cannot be imported makes it take its own loop instead, and brings the first load down to ~0.14 s.
`np.dot` and numba's linalg functions are unaffected: they import scipy themselves when compiled.

Call `load_registries()` before a process's first kernel call (ingest's id-kernel loader and the stage
runners do); it is cheap after the first time. A kernel called without it still works, loading scipy.
"""

from __future__ import annotations

import sys
import threading

_BLAS = "scipy.linalg.cython_blas"
_lock = threading.Lock()
_loaded = False


def load_registries() -> None:
    """Import numba's array-math registry with scipy's BLAS blocked, once per process."""
    global _loaded
    if _loaded:
        return
    with _lock:
        if _loaded:
            return
        if "numba.np.arraymath" not in sys.modules and _BLAS not in sys.modules:
            # None in sys.modules fails that import at once, before scipy.linalg loads. For this import only:
            # a thread importing scipy.linalg meanwhile would fail too, so nothing else runs under the block.
            sys.modules[_BLAS] = None  # type: ignore[assignment]
            try:
                import numba.np.arraymath  # noqa: F401
            finally:
                if _BLAS in sys.modules and sys.modules[_BLAS] is None:
                    del sys.modules[_BLAS]
        _loaded = True


_refresher: threading.Thread | None = None


def _refresh_targets() -> None:
    from numba.core.compiler_lock import global_compiler_lock
    from numba.core.registry import cpu_target

    with global_compiler_lock:  # a kernel called meanwhile waits here, then finds the registries installed
        cpu_target.typing_context.refresh()
        cpu_target.target_context.refresh()


def start_loading() -> None:
    """`load_registries()`, then install them in numba's CPU target on a side thread, once per process.

    Why: the first kernel call installs every registry in numba's typing and target contexts (~0.08 s
    of CPU, mostly Python) before it can load its cached code. Doing that on a side thread while the
    caller reads its Parquet input (Polars releases the GIL) takes it off the critical path. The block
    on scipy's BLAS stays on the calling thread: it must not overlap anything else's imports.
    """
    global _refresher
    load_registries()
    with _lock:
        if _refresher is None:
            _refresher = threading.Thread(target=_refresh_targets, name="numba-registries", daemon=True)
            _refresher.start()
