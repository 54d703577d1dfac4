"""numba's registries loaded without scipy.linalg: kernels, np.dot and scipy itself still work.

Each check runs in a fresh interpreter: the test process has long since loaded numba's registries.
"""

from __future__ import annotations

from tests.conftest import fresh_json


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
