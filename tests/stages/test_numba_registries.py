"""Cached kernels loaded without numba's registries, and the registries without scipy.linalg: kernels,
numba's own compiling, np.dot and scipy itself still work.

Each check runs in a fresh interpreter: the test process has long since loaded numba's registries.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa

from engine import api
from engine.stages.dedup_kernels import shingle_sets
from engine.stages.dedup_text import key_rows
from engine.stages.hash_kernels import xxh64_strings
from engine.stages.minhash import MinhashConfig, sketch
from tests.conftest import DATA, fresh_json

TEXTS = pl.read_ndjson(DATA / "c4_demo.jsonl")["text"].head(300)


def test_cached_kernels_load_without_registries() -> None:
    """A fresh process loads the kernels from numba's cache (warmed here) and gets the same results as
    this one, without loading numba's registries; compiling a new function afterwards loads them."""
    cfg = MinhashConfig()
    sigs, bands, counts = sketch(TEXTS, cfg)
    keys = key_rows(TEXTS, cfg)
    flat, starts, sizes = shingle_sets(keys.args, 5, False, np.uint64(0))
    sets = [flat[a : a + n].tolist() for a, n in zip(starts, sizes, strict=True)]  # flat has room to spare
    ids = xxh64_strings(pa.array(["alpha", "beta"])).tolist()
    out = fresh_json(
        f"""
import json, sys
import numba as nb, numpy as np, polars as pl, pyarrow as pa
from engine.stages.dedup_kernels import shingle_sets
from engine.stages.dedup_text import key_rows
from engine.stages.hash_kernels import xxh64_strings
from engine.stages.minhash import MinhashConfig, sketch
from engine.stages.numba_registries import _set_up
_set_up()  # what start_loading does on its thread; raises here if it fails
texts = pl.read_ndjson({str(DATA / "c4_demo.jsonl")!r})["text"].head(300)
sigs, bands, counts = sketch(texts, MinhashConfig())
keys = key_rows(texts, MinhashConfig())
flat, starts, sizes = shingle_sets(keys.args, 5, False, np.uint64(0))
sets = [flat[a : a + n].tolist() for a, n in zip(starts, sizes)]
ids = xxh64_strings(pa.array(["alpha", "beta"])).tolist()
registries = "numba.np.arraymath" in sys.modules or "numba.np.linalg" in sys.modules
arrayobj = "numba.np.arrayobj" in sys.modules  # np.empty's environment came without its module
from numba.core import entrypoints
extensions = entrypoints._already_initialized  # the set-up ran numba's extension entry points

@nb.njit
def total(a):
    return a.sum()

@nb.njit
def zeros(n):
    out = np.empty(n, np.int64)  # the same implementation, compiled now that numba.np.arrayobj is loaded
    out[:] = 0
    return out

compiled = int(total(np.arange(10))) + int(zeros(3).sum())
print(json.dumps({{"sigs": sigs.tolist(), "bands": bands.tolist(), "counts": counts.tolist(), "sets": sets,
    "ids": ids, "registries": registries, "arrayobj": arrayobj, "extensions": extensions, "compiled": compiled, "after": "numba.np.arraymath" in sys.modules,
    "again": sketch(texts, MinhashConfig())[0].tolist() == sigs.tolist()}}))
"""
    )
    assert out["registries"] is False  # every kernel above came from the cache without them
    assert out["arrayobj"] is False and out["extensions"] is True
    assert out["sigs"] == sigs.tolist() and out["bands"] == bands.tolist() and out["counts"] == counts.tolist()
    assert out["sets"] == sets and out["ids"] == ids
    assert out["compiled"] == 45 and out["after"] is True  # numba compiles as ever, registries and all
    assert out["again"]


def test_nrt_functions_load_from_their_cache_and_a_bad_cache_is_rebuilt(tmp_path: Path) -> None:
    """The NRT's machine code is compiled once, cached, then loaded: kernels and newly compiled functions
    (which link against the NRT library) work either way; a damaged cache file is compiled over, and a
    directory that cannot be written only costs the shortcut."""
    cache = tmp_path / "cache"

    def code(where: Path) -> str:
        return f"""
import json
from pathlib import Path
import numba as nb, numpy as np, polars as pl
from numba.core.runtime import nrtdynmod
from engine.stages import numba_registries as nr
from engine.stages.minhash import MinhashConfig, sketch
nr.NRT_CACHE_DIR = Path({str(where)!r})
compiled = []
real = nrtdynmod.create_nrt_module
nrtdynmod.create_nrt_module = lambda ctx: compiled.append(1) or real(ctx)
nr._set_up()
texts = pl.read_ndjson({str(DATA / "c4_demo.jsonl")!r})["text"].head(300)
sigs = sketch(texts, MinhashConfig())[0]

@nb.njit
def filled(n):
    out = np.empty(n, np.int64)  # allocates through the NRT
    out[:] = 7
    return out

print(json.dumps({{"compiled": len(compiled), "sigs": sigs.tolist(), "new": int(filled(4).sum()),
    "files": sorted(p.name for p in Path({str(where)!r}).iterdir()) if Path({str(where)!r}).is_dir() else None}}))
"""

    want = sketch(TEXTS, MinhashConfig())[0].tolist()
    first = fresh_json(code(cache))
    assert first["compiled"] == 1 and len(first["files"]) == 1 and first["files"][0].startswith("numba-nrt-")
    second = fresh_json(code(cache))
    assert second["compiled"] == 0 and second["files"] == first["files"]  # loaded, not compiled
    (cache / first["files"][0]).write_bytes(b"not a pickle")
    third = fresh_json(code(cache))
    assert third["compiled"] == 1 and third["files"] == first["files"]
    assert fresh_json(code(cache))["compiled"] == 0  # the damaged file was replaced by a good one
    (tmp_path / "a-file").write_text("")
    unwritable = fresh_json(code(tmp_path / "a-file" / "cache"))  # mkdir fails, even as root
    assert unwritable["compiled"] == 1 and unwritable["files"] is None
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file", "cache"]  # nothing else written
    for out in (first, second, third, unwritable):
        assert out["sigs"] == want and out["new"] == 28


def test_nrt_cache_goes_where_numba_caches_kernels(tmp_path: Path) -> None:
    """Beside this module's kernel caches by default; under `NUMBA_CACHE_DIR` when it is set."""
    code = """
import json
from engine.stages import numba_registries as nr
from engine.stages.dedup_kernels import minhash_into
print(json.dumps({"nrt": str(nr._nrt_cache_dir()), "kernels": minhash_into._cache._cache_path}))
"""
    default = fresh_json(code)
    assert default["nrt"] == default["kernels"] and default["nrt"].endswith("engine/stages/__pycache__")
    moved = fresh_json(f"import os; os.environ['NUMBA_CACHE_DIR'] = {str(tmp_path)!r}\n" + code)
    assert moved["nrt"] == moved["kernels"] and moved["nrt"].startswith(str(tmp_path))


def test_kernels_run_without_importing_scipy_linalg() -> None:
    out = fresh_json(
        """
import json, sys
import numba as nb, numpy as np, pyarrow as pa, xxhash
from engine.stages.numba_registries import load_registries
from engine.stages.hash_kernels import xxh64_strings
load_registries()
texts = ["", "alpha", "a longer text that crosses the 32-byte stripe of xxh64"]
got = xxh64_strings(pa.array(texts)).tolist()
before = "scipy.linalg" in sys.modules
import numba.np.arraymath as am
blocked = am._HAVE_BLAS
import numba.np.linalg as linalg
restored = linalg.ensure_blas.__module__ == "numba.np.linalg" and am.ensure_blas is linalg.ensure_blas

@nb.njit
def dot(a, b):
    return np.dot(a, b)

@nb.njit
def conv(a, b):
    return np.convolve(a, b)

a, b = np.arange(5.0), np.linspace(1.0, 2.0, 5)
print(json.dumps({
    "ok": got == [xxhash.xxh64_intdigest(t.encode()) for t in texts],
    "linalg_before": before, "have_blas": blocked, "restored": restored,
    "dot": float(dot(a, b)) == float(a @ b), "conv": np.allclose(conv(a, b), np.convolve(a, b)),
}))
"""
    )
    assert out["ok"]
    assert out["linalg_before"] is False  # the kernel ran and scipy.linalg never loaded
    assert out["have_blas"] is False
    assert out["restored"]  # the BLAS check is numba's own again
    assert out["dot"] and out["conv"]  # np.dot imports scipy itself when compiled; convolve takes numba's loop


def test_side_thread_load_leaves_other_imports_alone() -> None:
    """While the side thread loads the registries, the caller may import scipy.linalg and call kernels."""
    out = fresh_json(
        """
import json
import pyarrow as pa, xxhash
from engine.stages.numba_registries import start_loading
from engine.stages.hash_kernels import xxh64_strings
loader = start_loading()
import scipy.linalg
inverse = scipy.linalg.inv([[2.0, 0.0], [0.0, 4.0]]).tolist()
got = xxh64_strings(pa.array(["alpha", "beta"])).tolist()
loader.join()
print(json.dumps({"inverse": inverse, "ok": got == [xxhash.xxh64_intdigest(t.encode()) for t in ("alpha", "beta")]}))
"""
    )
    assert out["inverse"] == [[0.5, 0.0], [0.0, 0.25]]
    assert out["ok"]


def test_preload_loads_kernels_on_a_side_thread_before_their_first_call() -> None:
    sketch(TEXTS, MinhashConfig())  # the cache holds minhash_into's machine code
    out = fresh_json(
        f"""
import json, sys, threading, time
import polars as pl
from engine.stages.dedup_kernels import minhash_into
from engine.stages.minhash import MinhashConfig, sketch
from engine.stages.numba_registries import preload
preload((minhash_into,))
preload((minhash_into,))  # queued once
deadline = time.monotonic() + 120
while not minhash_into.overloads and time.monotonic() < deadline:
    time.sleep(0.01)
loaded = len(minhash_into.overloads)
texts = pl.read_ndjson({str(DATA / "c4_demo.jsonl")!r})["text"].head(300)
sigs = sketch(texts, MinhashConfig())[0]
print(json.dumps({{"loaded": loaded, "after": len(minhash_into.overloads), "sigs": sigs.tolist(),
    "threads": [t.name for t in threading.enumerate()], "registries": "numba.np.arraymath" in sys.modules}}))
"""
    )
    assert out["loaded"] >= 1 and out["after"] == out["loaded"]  # the call found its machine code loaded
    assert out["threads"].count("numba-preload") == 1 and out["registries"] is False
    assert out["sigs"] == sketch(TEXTS, MinhashConfig())[0].tolist()


def test_dedup_stages_declare_every_kernel_they_call(tmp_path: Path) -> None:
    """Once the kernels minhash and near_dedup declare are preloaded, the dedup job loads no other: a
    kernel a stage calls but does not declare would load on a caller's thread at its first call."""
    texts = TEXTS.head(50).to_list()
    rows = [{"text": t} for t in texts] + [{"text": t + " and one more"} for t in texts]  # 50 near pairs
    (tmp_path / "rows.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    api.ingest([tmp_path / "rows.jsonl"], tmp_path / "warm")
    api.dedup(tmp_path / "warm", exact=False, near=True)  # the cache holds every kernel the job calls
    api.ingest([tmp_path / "rows.jsonl"], tmp_path / "ds")
    out = fresh_json(
        f"""
import json, threading, time
import numba.core.dispatcher as dispatcher
from engine import api
from engine.stages import get_stage
from engine.stages.numba_registries import preload
kernels = get_stage("minhash").kernels + get_stage("near_dedup").kernels
preload(kernels)
deadline = time.monotonic() + 120
while not all(k.overloads for k in kernels) and time.monotonic() < deadline:
    time.sleep(0.01)
loads = []
real = dispatcher.Dispatcher.compile

def compile(self, sig):
    hits = sum(self._cache_hits.values())
    try:
        return real(self, sig)
    finally:  # a call that found the machine code loaded meanwhile loaded nothing
        if sum(self._cache_hits.values()) > hits:
            loads.append((threading.current_thread().name, self.py_func.__name__))

dispatcher.Dispatcher.compile = compile
report = api.dedup({str(tmp_path / "ds")!r}, exact=False, near=True)
print(json.dumps({{"loads": loads, "near": report.summary.near_dups}}))
"""
    )
    assert out["near"] >= 40  # every step ran: buckets, exact verification, components
    assert [load for load in out["loads"] if load[0] != "numba-preload"] == [], out["loads"]


def test_exit_waits_for_the_load_in_hand_and_drops_the_rest() -> None:
    """A job that calls none of the kernels it queued (its stages were up to date) exits cleanly: at exit
    the preload thread finishes the load in hand, takes no more, and is joined before shutdown."""
    out = fresh_json(
        """
import json
from engine.stages import get_stage
from engine.stages import numba_registries as nr
kernels = get_stage("minhash").kernels + get_stage("near_dedup").kernels
nr.preload(kernels)
nr._stop_preloading()  # what the atexit hook runs
print(json.dumps({"alive": nr._preloader.is_alive(), "loaded": sum(bool(k.overloads) for k in kernels),
                  "queued": len(kernels)}))
"""
    )
    assert out["alive"] is False and out["loaded"] < out["queued"]  # stopped early, not after every load
