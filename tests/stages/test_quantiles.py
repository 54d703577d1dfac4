"""Exact quantiles from narrow passes equal Polars' linear quantile to the last bit, however rows are split."""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import numpy as np
import polars as pl
from hypothesis import example, given, settings
from hypothesis import strategies as st

from engine.stages.quantiles import MAX_VALUES, exact_quantiles, prefix_counts, solve, values_in

floats = st.one_of(
    st.floats(allow_nan=False, width=64),  # every magnitude, both signs, infinities, subnormals
    st.floats(min_value=1.0, max_value=1e5, allow_nan=False),  # perplexities
    st.integers(-3, 3).map(float),  # heavy ties
    st.none(),
)


class Passes:
    """The passes over separate partitions, recording what reaches the driver."""

    def __init__(self, parts: list[pl.LazyFrame]) -> None:
        self.parts, self.count_passes, self.values = parts, 0, 0

    def counts(self, bits: int, within: Sequence[int] | None) -> pl.DataFrame:
        self.count_passes += 1
        return pl.concat([prefix_counts(p, "v", bits, within) for p in self.parts])

    def values_of(self, bits: int, prefixes: Sequence[int]) -> pl.DataFrame:
        out = pl.concat([values_in(p, "v", bits, prefixes) for p in self.parts])
        self.values += out.height
        return out


def _nan_equal(xs: list[float | None]) -> list[object]:
    """NaN as a token that equals itself: Polars interpolates -inf and 0 to NaN, and so must we."""
    return ["nan" if x is not None and math.isnan(x) else x for x in xs]


@settings(max_examples=300, deadline=None)
@given(
    values=st.lists(floats, min_size=0, max_size=200),
    qs=st.lists(st.floats(min_value=0.0, max_value=1.0), min_size=1, max_size=4),
    cuts=st.lists(st.integers(0, 200), max_size=4),
    max_values=st.sampled_from([0, 1, 5, MAX_VALUES]),
)
@example(values=[math.inf, math.inf], qs=[0.5], cuts=[], max_values=0)  # Polars: inf, not inf + 0.5 * NaN
@example(values=[0.0, -math.inf], qs=[0.5], cuts=[], max_values=0)  # Polars: NaN
def test_equals_polars_quantile_for_any_split(
    values: list[float | None], qs: list[float], cuts: list[int], max_values: int
) -> None:
    s = pl.Series("v", values, dtype=pl.Float64)
    want = _nan_equal([s.quantile(q, interpolation="linear") for q in qs])
    lf = pl.LazyFrame({"v": s})
    assert _nan_equal(exact_quantiles(lf, "v", qs, max_values=max_values)) == want  # one machine: every pass
    bounds = sorted({0, len(values), *(min(c, len(values)) for c in cuts)})
    passes = Passes([lf.slice(a, b - a) for a, b in itertools.pairwise(bounds)] or [lf])
    assert _nan_equal(solve(qs, passes.counts, passes.values_of, max_values=max_values)) == want
    assert passes.values <= max(max_values, 0) or passes.count_passes == 4  # 64-bit keys need no values


def test_the_driver_holds_counts_and_few_values_not_the_column() -> None:
    rng = np.random.default_rng(7)
    ppl = np.exp(rng.normal(6.0, 1.0, 300_000))  # perplexity-like: log-normal
    ppl[::1000] = 400.0  # and a tie
    lf = pl.LazyFrame({"v": ppl})
    want = [pl.Series(ppl).quantile(q, interpolation="linear") for q in (0.3, 0.6)]
    passes = Passes([lf.slice(i * 50_000, 50_000) for i in range(6)])
    assert solve([0.3, 0.6], passes.counts, passes.values_of, max_values=1000) == want
    assert passes.count_passes == 2 and 0 < passes.values <= 1000  # 16- then 32-bit prefixes, then ~no values
    one = Passes([lf])
    assert solve([0.3, 0.6], one.counts, one.values_of) == want
    assert one.count_passes == 1 and one.values < 300_000 / 20  # default: ~4% of the rows, in one counting pass
