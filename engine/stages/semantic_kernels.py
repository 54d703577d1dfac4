"""Numba kernels for semantic dedup: spherical k-means steps and linking within clusters; arrays in, arrays out."""

from __future__ import annotations

import numba as nb
import numpy as np

from engine.stages.dedup_kernels import find_root
from engine.stages.numba_registries import quick_load


@nb.njit(cache=True)
def centroid_sums(emb, labels, k):
    """Per-cluster (sum of member rows as float64, member count)."""
    sums = np.zeros((k, emb.shape[1]), dtype=np.float64)
    counts = np.zeros(k, dtype=np.int64)
    for i in range(emb.shape[0]):
        c = labels[i]
        counts[c] += 1
        for d in range(emb.shape[1]):
            sums[c, d] += emb[i, d]
    return sums, counts


@nb.njit(parallel=True, fastmath=True, cache=True)
def link_within_clusters(emb, members, starts, threshold):
    """Components of the graph joining every pair in one cluster whose dot product is >= threshold.

    `members` lists row indices cluster after cluster, ascending within each; `starts` has one entry
    per cluster plus a final end. Rows are L2-normalised, so the dot product is the cosine. A pair
    already in one component is not compared again. Clusters are disjoint, so each one's union-find
    touches only its own rows and they run in parallel. Returns parent: the smallest row index of
    each row's component.
    """
    n = emb.shape[0]
    dim = emb.shape[1]
    parent = np.arange(n, dtype=np.int64)
    thr = np.float32(threshold)
    for c in nb.prange(starts.shape[0] - 1):
        lo, hi = starts[c], starts[c + 1]
        for a in range(lo + 1, hi):
            u = members[a]
            for b in range(lo, a):
                v = members[b]
                ru = find_root(parent, u)
                rv = find_root(parent, v)
                if ru == rv:
                    continue
                dot = np.float32(0.0)
                for d in range(dim):
                    dot += emb[u, d] * emb[v, d]
                if dot >= thr:
                    if ru < rv:
                        parent[rv] = ru
                    else:
                        parent[ru] = rv
    for i in range(n):
        parent[i] = find_root(parent, i)
    return parent


quick_load(globals())  # cached kernels load without numba's registries (engine.stages.numba_registries)
