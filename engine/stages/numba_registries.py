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
