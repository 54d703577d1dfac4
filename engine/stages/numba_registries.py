"""numba's implementation registries, loaded without importing scipy.linalg, and off the critical path.

Why: the first numba kernel a process calls loads numba's registries (~0.33 s of CPU, measured on 2
cores). Most of that is one registry, `numba.np.arraymath`, importing scipy.linalg (array-API shims,
numpy.f2py, and OpenBLAS starting its threads) only to choose how `np.correlate`/`np.convolve` take
inner products. No kernel here uses those. Importing that registry while numba's BLAS check reports no
BLAS makes it take its own loop instead. `np.dot` and numba's linalg functions are unaffected: they
check for scipy themselves when compiled. The rest (~0.08 s) installs every registry in numba's typing
and target contexts; `start_loading` does all of it on a side thread while the caller reads its input.

Call `load_registries()` (or `start_loading()`) before a process's first kernel call (ingest's id-kernel
loader and the stage runners do); it is cheap after the first time. A kernel called without it still
works, loading scipy.
"""

from __future__ import annotations

import sys
import threading

_lock = threading.Lock()
_loader: threading.Thread | None = None


def _no_blas() -> None:
    msg = "numba's BLAS check skipped (see engine.stages.numba_registries)"
    raise ImportError(msg)


def _load() -> None:
    from numba.core.compiler_lock import global_compiler_lock
    from numba.core.registry import cpu_target

    # Under numba's compiler lock: a kernel compiled or loaded meanwhile waits, so nothing else sees the
    # patched BLAS check, and then finds the registries installed. Imports elsewhere are not touched.
    with global_compiler_lock:
        if "numba.np.arraymath" not in sys.modules:
            import numba.np.linalg as linalg

            real = linalg.ensure_blas
            linalg.ensure_blas = _no_blas
            try:
                import numba.np.arraymath as arraymath
            finally:
                linalg.ensure_blas = real
            arraymath.ensure_blas = real
        cpu_target.typing_context.refresh()
        cpu_target.target_context.refresh()


def start_loading() -> threading.Thread:
    """Load the registries on a side thread, once per process; returns that thread."""
    global _loader
    with _lock:
        if _loader is None:
            _loader = threading.Thread(target=_load, name="numba-registries", daemon=True)
            _loader.start()
        return _loader


def load_registries() -> None:
    """Load the registries now (waiting for the side thread if one is already at it)."""
    start_loading().join()
