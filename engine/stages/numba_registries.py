"""Loading our cached numba kernels without numba's registries, and numba's set-up off the critical path.

Why: numba loads all of its typing and lowering registries (~0.14 s of CPU, measured on 2 cores)
before it even looks in its on-disk cache, although a cached kernel is machine code that needs none
of them: only the NRT (the allocator the code calls into) and the symbols set up by numba's target
context and by the kernel's own reload hooks (parfors' thread pool). `quick_load` gives our kernels
a cache that loads a hit with just those, so the first kernel of a process starts ~0.1 s sooner. A
miss (a new kernel or numba version) loads the registries and compiles as numba always does.

When the registries do load, `numba.np.arraymath` would import scipy.linalg (array-API shims,
numpy.f2py, OpenBLAS starting its threads: ~0.2 s) only to choose how `np.correlate`/`np.convolve`
take inner products; no kernel here uses those, so that import runs while numba's BLAS check reports
no BLAS and takes numba's own loop. `np.dot` and numba's linalg functions are unaffected: they check
for scipy themselves when compiled.

Unpickling a cached kernel rebuilds the environment of every function compiled into it, importing
the module each belongs to; `_rebuild_env` gives numba's own implementations (`np.empty`'s, `min`'s)
their environment without importing `numba.np.arrayobj` and the like, which nopython code never reads.

The NRT's own functions (atomic reference counts and the like) are LLVM IR that numba compiles in every
process (~0.02 s); `_nrt_functions` keeps their machine code on disk beside our kernels' caches, the
way numba caches a kernel, and loads it from there.

`start_loading()` does the part every kernel needs (numba's extension entry points, the target
context, the NRT, the modules loading imports, numba's thread pool) on a side thread while the caller
reads its input; `preload(kernels)` then loads the machine code of the kernels a stage declares
(`Stage.kernels`) on one more side thread, in order: the runners call it for the stage they run, and
`api.dedup` for every stage of its plan at once, so near_dedup's kernels load while minhash works.
"""

from __future__ import annotations

import atexit
import os
import pickle
import queue
import sys
import threading
from pathlib import Path
from typing import Any

import llvmlite
import numba
import numba.core.environment as environment
import xxhash
from numba.core.caching import FunctionCache
from numba.core.registry import CPUDispatcher
from numba.core.runtime import nrtdynmod

_lock = threading.Lock()
_loader: threading.Thread | None = None


def _no_blas() -> None:
    msg = "numba's BLAS check skipped (see engine.stages.numba_registries)"
    raise ImportError(msg)


def _prepare(target_context: Any) -> None:
    """What a cached kernel needs beyond its machine code: the NRT's functions and, for kernels that
    hash strings, the hash secret numba's hashing module publishes as symbols when imported."""
    import numba.cpython.hashing  # noqa: F401
    from numba.core.runtime import nrt

    nrt.rtsys.initialize(target_context)  # calls nrtdynmod.compile_nrt_functions: `_nrt_functions` below


NRT_CACHE_DIR: Path | None = None
"""Where the NRT's cache file goes; None: where numba caches this module's kernels (see `_nrt_cache_dir`)."""


def _nrt_cache_dir() -> Path:
    """The directory numba would cache a kernel of this module in: `NUMBA_CACHE_DIR` when set, else
    `__pycache__` beside the source, else a per-user cache directory when the install is read-only."""
    return Path(FunctionCache(_nrt_cache_dir)._cache_path)


def _nrt_cache_file(codegen: Any) -> Path:
    """The NRT's cache file for this Python, numba, llvmlite and CPU (triple, name, features)."""
    key = repr((sys.version_info[:2], numba.__version__, llvmlite.__version__, codegen.magic_tuple()))
    return (NRT_CACHE_DIR or _nrt_cache_dir()) / f"numba-nrt-{xxhash.xxh64_hexdigest(key.encode())}.pkl"


def _nrt_functions(target_context: Any) -> Any:
    """numba's `compile_nrt_functions`, loading the library's object code from the cache when it is there,
    else compiling it and caching it (as numba caches a kernel: object code plus the bitcode that later
    compilations link against). A missing or unreadable cache file, or one that cannot be written, falls
    back to numba's compilation; like numba's own cache files, a file that unpickles but holds broken
    machine code is trusted. `NUMBA_DEBUG_NRT` (the NRT compiled with its debug prints) is never cached."""
    if numba.config.DEBUG_NRT:
        return _compile_nrt_functions(target_context)
    codegen = target_context.codegen()
    path = None
    try:
        path = _nrt_cache_file(codegen)
        return codegen.unserialize_library(pickle.loads(path.read_bytes()))
    except Exception:  # no cache yet, or one this process cannot read or locate: compile as numba does
        pass
    ir_mod, library = nrtdynmod.create_nrt_module(target_context)
    library.enable_object_caching()
    library.add_ir_module(ir_mod)
    library.finalize()
    if path is None:  # no cache directory to be had
        return library
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        tmp.write_bytes(pickle.dumps(library.serialize_using_object_code()))
        tmp.replace(path)  # atomic: a process loading it sees the whole file or none
    except Exception:  # the cache is only a shortcut: a process that cannot write it has compiled anyway
        if tmp is not None:
            tmp.unlink(missing_ok=True)
    return library


_compile_nrt_functions = nrtdynmod.compile_nrt_functions
nrtdynmod.compile_nrt_functions = _nrt_functions


def load_registries() -> None:
    """Every registry, as numba loads them before compiling (without scipy.linalg: see above)."""
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


class _HitWithoutRegistries(FunctionCache):
    """numba's function cache, except that a hit is loaded without numba's registries (see above)."""

    def load_overload(self, sig: Any, target_context: Any) -> Any:
        _prepare(target_context)
        with self._guard_against_spurious_io_errors():
            cres = self._load_overload(sig, target_context)
            if cres is None:  # a miss: numba compiles next, which needs every registry
                load_registries()
            return cres
        load_registries()  # an I/O error numba chose to ignore: it compiles next
        return None


_numba_rebuild_env = environment._rebuild_env


def _rebuild_env(modname: str, consts: list[Any], env_name: str) -> Any:
    """numba's `_rebuild_env`, except for one of numba's own implementation modules not yet imported.

    A cached kernel pickles the environment of every function compiled into it, and unpickling one
    imports the module whose globals it holds: `np.empty`'s implementation alone makes loading our
    kernels import `numba.np.arrayobj` (~0.06 s of CPU, and the 100K new objects set off a full
    garbage collection). Nopython code reads only an environment's constants, never its globals
    (those are for object mode), so such an environment gets its constants and a stand-in globals dict
    naming the module, and the module is not imported.
    """
    env = environment.lookup_environment(env_name)
    if env is not None:
        return env
    if modname in sys.modules or not modname.startswith("numba."):
        return _numba_rebuild_env(modname, consts, env_name)
    env = environment.Environment({"__name__": modname})
    env.consts[:] = consts
    env.env_name = env_name
    environment.Environment._memo[env_name] = env
    return env


# unpickling looks the function up by name, so a cache entry written by numba's loads through this one
environment._rebuild_env = _rebuild_env


def quick_load(namespace: dict[str, Any]) -> None:
    """Give every cached kernel in a module's `namespace` (its `globals()`) the quick-loading cache."""
    for obj in list(namespace.values()):
        if isinstance(obj, CPUDispatcher) and isinstance(obj._cache, FunctionCache):
            obj._cache = _HitWithoutRegistries(obj.py_func)


# Modules that loading our cached kernels imports (unpickling their environments and types refers to
# them): imported on the side thread instead, ~0.06 s of the first kernel call. Listed from a run's
# new `sys.modules`; one missing from here is merely imported when first needed.
_LOADING_IMPORTS = (
    "numba.cpython.charseq",
    "numba.cpython.slicing",
    "numba.cpython.unicode",
    "numba.misc.mergesort",
    "numba.misc.quicksort",
)


def _set_up() -> None:
    import importlib

    from numba.core import entrypoints
    from numba.core.compiler_lock import global_compiler_lock
    from numba.core.registry import cpu_target
    from numba.np.ufunc.parallel import _launch_threads

    with global_compiler_lock:
        # numba's first call of any kernel runs the `numba_extensions` entry points, reading every installed
        # distribution's metadata (~0.03 s); done here under the lock, a kernel compiled or loaded meanwhile
        # waits for the extensions as it would have
        entrypoints.init_all()
        _prepare(cpu_target.target_context)
        for name in _LOADING_IMPORTS:
            importlib.import_module(name)
        _launch_threads()  # what a parallel kernel's reload hook does first


def start_loading() -> threading.Thread:
    """Set up numba's target context and NRT on a side thread, once per process; returns that thread."""
    global _loader
    with _lock:
        if _loader is None:
            _loader = threading.Thread(target=_set_up, name="numba-set-up", daemon=True)
            _loader.start()
        return _loader


def _cached_signatures(kernel: CPUDispatcher) -> list[Any]:
    """The signatures `kernel`'s cache holds machine code for, for this CPU and this source (the keys a
    load would look up), in the order they were cached."""
    cache = kernel._cache
    if not isinstance(cache, _HitWithoutRegistries):
        return []
    codegen = kernel.targetctx.codegen()
    return [key[0] for key in cache._cache_file._load_index() if cache._index_key(key[0], codegen) == key]


_queued: set[int] = set()
_queue: queue.SimpleQueue[CPUDispatcher | None] = queue.SimpleQueue()
_preloader: threading.Thread | None = None
_stopping = threading.Event()


def _load_kernels() -> None:
    start_loading().join()
    while True:
        kernel = _queue.get()
        if kernel is None or _stopping.is_set():
            return
        for sig in _cached_signatures(kernel):
            try:
                kernel.compile(sig)  # a hit, loaded without the registries (under numba's compiler lock)
            except Exception:  # only a head start: a kernel that fails here fails, or loads, when called
                continue


def preload(kernels: tuple[Any, ...]) -> None:
    """Load the cached machine code of `kernels` on a side thread, in order, after the set-up, while the
    caller reads its input: each loads in ~5-20 ms, which a stage would otherwise spend at each kernel's
    first call with its other threads waiting on numba's compiler lock. Every signature in a kernel's
    cache for this CPU is loaded (one or two per kernel here); a kernel is queued once per process."""
    global _preloader
    start_loading()
    with _lock:
        for kernel in kernels:
            if id(kernel) not in _queued:
                _queued.add(id(kernel))
                _queue.put(kernel)
        if _preloader is None:
            _preloader = threading.Thread(target=_load_kernels, name="numba-preload", daemon=True)
            _preloader.start()
            atexit.register(_stop_preloading)


def _stop_preloading() -> None:
    """At exit, let the side threads finish the load in hand and take no more: a daemon thread still
    inside numba when the interpreter shuts down aborts it (a job whose stages were all up to date
    exits while kernels it never called are still queued)."""
    _stopping.set()
    _queue.put(None)
    for thread in (_preloader, _loader):
        if thread is not None:
            thread.join()
