"""LSH banding against datasketch's own parameter search."""

from __future__ import annotations

import numpy as np
import pytest
from datasketch.lsh import _optimal_param

from engine.errors import ConfigError
from engine.stages.lsh_bands import gauss_legendre, optimal_bands
from engine.stages.minhash import MinhashConfig, banding


@pytest.mark.parametrize("num_perm", [64, 128, 256, 600])
def test_optimal_bands_match_datasketch_search(num_perm: int) -> None:
    for threshold in (0.5, 0.7, 0.8, 0.9, 0.95):
        for weights in ((0.5, 0.5), (0.2, 0.8), (0.9, 0.1), (0.02, 0.98)):
            assert optimal_bands(threshold, num_perm, *weights) == _optimal_param(threshold, num_perm, *weights)


@pytest.mark.parametrize("k", [1, 2, 24, 65, 129, 256])
def test_gauss_legendre_matches_numpy(k: int) -> None:
    nodes, weights = gauss_legendre(k)
    want_nodes, want_weights = np.polynomial.legendre.leggauss(k)
    assert np.allclose(nodes, want_nodes, rtol=0, atol=1e-14) and np.allclose(weights, want_weights, rtol=0, atol=1e-13)


def test_banding_takes_set_bands_or_searches() -> None:
    assert banding(MinhashConfig()) == (17, 7)  # the default weights lean towards recall
    assert banding(MinhashConfig(bands=9, rows=13)) == (9, 13)
    with pytest.raises(ConfigError, match="bands x rows = 130 exceeds the 128"):
        banding(MinhashConfig(bands=10, rows=13))
    with pytest.raises(ConfigError, match="minhash: set both bands and rows"):
        MinhashConfig(bands=4)
