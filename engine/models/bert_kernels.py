"""Numba kernels for the numpy BERT encoder and static embeddings: arrays in, arrays out, in place where named `_`.

The dense products stay in numpy (OpenBLAS, every core); these kernels fuse the element-wise steps
around them, which in plain numpy cost more than the products themselves. Only attention runs in
parallel here: the other kernels are cheap, and numba's workers and OpenBLAS's threads spin against
each other when they alternate quickly on a 2-core machine.
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np

# erf(z) ~ z * P(z^2) / Q(z^2) on [-4, 4] (Eigen's float rational approximation; |error| < 1e-6, below
# float32 resolution for GELU). math.erf does not vectorise; this does.
_ERF_P = (
    -2.72614225801306e-10,
    2.77068142495902e-08,
    -2.10102402082508e-06,
    -5.69250639462346e-05,
    -7.34990630326855e-04,
    -2.95459980854025e-03,
    -1.60960333262415e-02,
)
_ERF_Q = (
    -1.45660718464996e-05,
    -2.13374055278905e-04,
    -1.68282697438203e-03,
    -7.37332916720468e-03,
    -1.42647390514189e-02,
)


@nb.njit(fastmath=True, cache=True)
def bias_gelu_(x, bias):
    """x = gelu(x + bias), the exact (erf) GELU of BERT, over a (rows, cols) float32 matrix."""
    p0, p1, p2, p3, p4, p5, p6 = [np.float32(c) for c in _ERF_P]
    q0, q1, q2, q3, q4 = [np.float32(c) for c in _ERF_Q]
    half = np.float32(0.5)
    one = np.float32(1.0)
    lim = np.float32(4.0)
    inv_sqrt2 = np.float32(1.0 / math.sqrt(2.0))
    n, m = x.shape
    for i in range(n):
        for j in range(m):
            v = x[i, j] + bias[j]
            z = min(max(v * inv_sqrt2, -lim), lim)
            z2 = z * z
            p = ((((((p0 * z2 + p1) * z2 + p2) * z2 + p3) * z2 + p4) * z2 + p5) * z2 + p6) * z
            q = (((q0 * z2 + q1) * z2 + q2) * z2 + q3) * z2 + q4
            x[i, j] = half * v * (one + p / q)


@nb.njit(parallel=True, fastmath=True, cache=True)
def attention(qkv, lens, heads):
    """Multi-head self-attention of right-padded rows: softmax(q k^T) v per (row, head), keys past lens masked.

    `qkv` is (batch, T, 3, heads, head_dim) with the query already scaled by 1/sqrt(head_dim); returns
    the context (batch, T, heads * head_dim), zero at padded positions. Fused and parallel over
    (row, head): numpy's stacked matmul makes one threaded BLAS call per small matrix, which costs
    more in thread hand-offs than the arithmetic.
    """
    b, t, _, _, hd = qkv.shape
    out = np.zeros((b, t, heads * hd), dtype=np.float32)
    for g in nb.prange(b * heads):
        i = g // heads
        h = g % heads
        n = lens[i]
        k_t = np.empty((hd, n), dtype=np.float32)
        v = np.empty((n, hd), dtype=np.float32)
        p = np.empty(n, dtype=np.float32)
        acc = np.empty(hd, dtype=np.float32)
        for s in range(n):
            for d in range(hd):
                k_t[d, s] = qkv[i, s, 1, h, d]
                v[s, d] = qkv[i, s, 2, h, d]
        for r in range(n):
            p[:] = 0.0
            for d in range(hd):
                qd = qkv[i, r, 0, h, d]
                for s in range(n):
                    p[s] += qd * k_t[d, s]
            top = p.max()
            total = np.float32(0.0)
            for s in range(n):
                e = np.float32(math.exp(p[s] - top))
                p[s] = e
                total += e
            acc[:] = 0.0
            for s in range(n):
                w = p[s]
                for d in range(hd):
                    acc[d] += w * v[s, d]
            inv = np.float32(1.0) / total
            for d in range(hd):
                out[i, r, h * hd + d] = acc[d] * inv
    return out


@nb.njit(fastmath=True, cache=True)
def add_layer_norm_(x, residual, bias, gamma, beta, eps):
    """x = LayerNorm(x + bias + residual) row by row, in place."""
    n, m = x.shape
    for i in range(n):
        mean = np.float32(0.0)
        for j in range(m):
            v = x[i, j] + bias[j] + residual[i, j]
            x[i, j] = v
            mean += v
        mean /= m
        var = np.float32(0.0)
        for j in range(m):
            d = x[i, j] - mean
            var += d * d
        inv = np.float32(1.0) / np.sqrt(var / m + eps)
        for j in range(m):
            x[i, j] = (x[i, j] - mean) * inv * gamma[j] + beta[j]


@nb.njit(fastmath=True, cache=True)
def masked_mean_(hidden, lens, out):
    """out[b] = mean of hidden[b, :lens[b]] (hidden is (batch, T, dim)), then L2-normalised."""
    b_len, _, dim = hidden.shape
    for b in range(b_len):
        n = lens[b]
        acc = np.zeros(dim, dtype=np.float32)
        for t in range(n):
            for d in range(dim):
                acc[d] += hidden[b, t, d]
        norm = np.float32(0.0)
        for d in range(dim):
            norm += acc[d] * acc[d]
        norm = np.sqrt(norm)
        scale = np.float32(1.0) / norm if norm > 0 else np.float32(0.0)
        for d in range(dim):
            out[b, d] = acc[d] * scale


@nb.njit(parallel=True, fastmath=True, cache=True)
def mean_of_tokens(table, ids, offsets):
    """Row r's embedding: the mean of table[ids[offsets[r]:offsets[r+1]]], L2-normalised.

    The sum runs over the row's tokens in order, so a row's vector does not depend on the other rows
    of its batch. A row with no tokens gets the zero vector.
    """
    n = offsets.shape[0] - 1
    dim = table.shape[1]
    out = np.zeros((n, dim), dtype=np.float32)
    for r in nb.prange(n):
        lo, hi = offsets[r], offsets[r + 1]
        if hi == lo:
            continue
        acc = np.zeros(dim, dtype=np.float32)
        for k in range(lo, hi):
            tok = ids[k]
            for d in range(dim):
                acc[d] += table[tok, d]
        norm = np.float32(0.0)
        for d in range(dim):
            norm += acc[d] * acc[d]
        if norm > 0:
            scale = np.float32(1.0) / np.sqrt(norm)
            for d in range(dim):
                out[r, d] = acc[d] * scale
    return out
