"""LSH banding: how many bands of how many signature values, chosen from the threshold.

Chosen the way datasketch's MinHashLSH chooses: the (bands, rows) pair that minimises
fp_weight * P(false positive) + fn_weight * P(false negative), both integrated over the S-curve
1 - (1 - s^r)^b. `minhash` hashes each band as it writes the signatures, `near_dedup` groups them.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np


def _legendre(x: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """P_k(x) and P_k'(x) by the three-term recurrence."""
    p0, p1 = np.ones_like(x), x
    for n in range(2, k + 1):
        p0, p1 = p1, ((2 * n - 1) * x * p1 - (n - 1) * p0) / n
    return p1, k * (x * p1 - p0) / (x * x - 1)


def gauss_legendre(k: int) -> tuple[np.ndarray, np.ndarray]:
    """Nodes (ascending) and weights of k-point Gauss-Legendre on [-1, 1]: Newton on P_k from the usual
    cosine guesses.

    Why not `np.polynomial.legendre.leggauss`: it solves an eigenproblem through LAPACK, whose first call
    starts OpenBLAS's threads, and they spin on the cores the Parquet read and numba's set-up need
    (+0.03 s to the minhash stage's read, +0.1 s of CPU). Agrees with it to 1e-14.
    """
    x = np.cos(np.pi * (np.arange(1, k + 1) - 0.25) / (k + 0.5))
    for _ in range(100):
        p, dp = _legendre(x, k)
        step = p / dp
        x = x - step
        if np.max(np.abs(step)) < 1e-15:
            break
    _, dp = _legendre(x, k)
    return x[::-1], (2 / ((1 - x * x) * dp * dp))[::-1]


def _integral(f, lo: float, hi: float, degree: int) -> np.ndarray:
    """Gauss-Legendre over [lo, hi] of f evaluated on a grid (vectorised over parameter pairs).

    The integrands are polynomials in s of degree <= num_perm, which one panel of degree // 2 + 1 nodes
    integrates exactly (~0.004 s for num_perm 128, where 64 panels of 24 nodes took ~0.04 s); beyond 256
    nodes, 64 panels of 24 nodes (not exact, but far closer than the choice between neighbouring pairs).
    """
    k = degree // 2 + 1
    nodes, weights = gauss_legendre(k if k <= 256 else 24)
    panels = 1 if k <= 256 else 64
    edges = np.linspace(lo, hi, panels + 1)
    half = (edges[1:] - edges[:-1]) / 2
    mid = (edges[1:] + edges[:-1]) / 2
    s = (mid[:, None] + half[:, None] * nodes[None, :]).ravel()
    w = (half[:, None] * weights[None, :]).ravel()
    return (f(s) * w).sum(axis=1)  # not `@`: BLAS would start its threads (see gauss_legendre)


@lru_cache(maxsize=64)
def optimal_bands(threshold: float, num_perm: int, fp_weight: float = 0.5, fn_weight: float = 0.5) -> tuple[int, int]:
    """(bands, rows) minimising the weighted false positive and false negative probabilities."""
    pairs = np.array([(b, r) for b in range(1, num_perm + 1) for r in range(1, num_perm // b + 1)], dtype=np.float64)
    b, r = pairs[:, 0:1], pairs[:, 1:2]

    def p_candidate(s: np.ndarray) -> np.ndarray:
        return 1.0 - (1.0 - s[None, :] ** r) ** b

    fp = _integral(p_candidate, 0.0, threshold, num_perm)
    fn = _integral(lambda s: 1.0 - p_candidate(s), threshold, 1.0, num_perm)
    best = int(np.argmin(fp * fp_weight + fn * fn_weight))
    return int(pairs[best, 0]), int(pairs[best, 1])
