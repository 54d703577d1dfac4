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
left = "scipy.linalg.cython_blas" in sys.modules and sys.modules["scipy.linalg.cython_blas"] is None

@nb.njit
def dot(a, b):
    return np.dot(a, b)

@nb.njit
def conv(a, b):
    return np.convolve(a, b)

a, b = np.arange(5.0), np.linspace(1.0, 2.0, 5)
print(json.dumps({
    "ok": got == [xxhash.xxh64_intdigest(t.encode()) for t in texts],
    "linalg_before": before, "have_blas": blocked, "none_left": left,
    "dot": float(dot(a, b)) == float(a @ b), "conv": np.allclose(conv(a, b), np.convolve(a, b)),
}))
"""
    )
    assert out["ok"]
    assert out["linalg_before"] is False  # the kernel ran and scipy.linalg never loaded
    assert out["have_blas"] is False
    assert out["none_left"] is False  # the block is lifted: scipy.linalg imports normally afterwards
    assert out["dot"] and out["conv"]  # np.dot imports scipy itself when compiled; convolve takes numba's loop
