"""The mix: quotas against an independent water-filling reference, ratios within one row, best rows first."""

from __future__ import annotations

import math
from pathlib import Path

import polars as pl
import pytest

from engine import api
from engine.select.mix import read_mix
from engine.select.run import run_selection
from engine.store.dataset import open_dataset
from tests.select.test_queries import _best_first, _pool


def _largest_remainder(x: dict[str, float], total: int) -> dict[str, int]:
    out = {d: math.floor(v + 1e-9) for d, v in x.items()}
    order = sorted(x, key=lambda d: (-(x[d] - math.floor(x[d] + 1e-9)), d))
    for d in order[: total - sum(out.values())]:
        out[d] += 1
    return out


def reference_quotas(avail: dict[str, int], shares: dict[str, float], n: int, redistribute: bool) -> dict[str, int]:
    """Iterative water-filling: saturate the domains that cannot meet their share, spread the rest, repeat."""
    s = {d: v / sum(shares.values()) for d, v in shares.items() if v > 0}
    targets = _largest_remainder({d: v * n for d, v in s.items()}, n)
    if not redistribute:
        return {d: min(t, avail.get(d, 0)) for d, t in targets.items()}
    remaining, active, quota = min(n, sum(avail.get(d, 0) for d in s)), set(s), {}
    while active:
        level = remaining / sum(s[d] for d in active)
        full = {d for d in active if avail.get(d, 0) <= level * s[d]}
        if not full:
            break
        for d in full:
            quota[d] = avail.get(d, 0)
            remaining -= quota[d]
        active -= full
    if active:
        level = remaining / sum(s[d] for d in active)
        quota |= _largest_remainder({d: level * s[d] for d in active}, remaining)
    return quota


def _mix(path: Path, shares: dict[str, float], n: int, redistribute: bool = True):
    res = run_selection(
        open_dataset(path), ["mix"], {"n": str(n), "redistribute": str(redistribute).lower()}, mix=shares
    )
    rows = pl.from_arrow(res.rows)
    plan = pl.from_arrow(res.plan)
    assert isinstance(rows, pl.DataFrame) and isinstance(plan, pl.DataFrame)
    return rows.with_columns(pl.col("_ord").cast(pl.Int64)), plan


def test_mix_hits_its_ratios_within_one_row_when_data_suffice(scored: Path) -> None:
    shares = {"general": 0.5, "math": 0.3, "tool_use": 0.1, "coding": 0.1}
    rows, plan = _mix(scored, shares, 777)
    pool = _pool(scored)
    got = rows.join(pool.select("_ord", "domain"), on="_ord").group_by("domain").len()
    got_d = dict(got.iter_rows())
    assert sum(got_d.values()) == 777 and rows["_ord"].n_unique() == 777  # never a row twice
    for d, share in shares.items():
        assert abs(got_d[d] - share * 777) < 1, d
    # within a domain, the best-scored rows first
    for d, k in got_d.items():
        best = _best_first(pool.filter(pl.col("domain") == d)).head(k)["_ord"]
        assert set(rows.join(pool.select("_ord", "domain"), on="_ord").filter(pl.col("domain") == d)["_ord"]) == set(
            best
        )
    assert plan["shortfall"].sum() == 0


@pytest.mark.parametrize("redistribute", [True, False])
@pytest.mark.parametrize("n", [400, 3000, 100_000])
def test_default_recipe_quotas_match_the_water_filling_reference(scored: Path, n: int, redistribute: bool) -> None:
    shares = read_mix(None)
    assert shares == {
        "general": 0.43,
        "specialty": 0.14,
        "math": 0.14,
        "coding": 0.11,
        "tool_use": 0.09,
        "calibration": 0.06,
        "uncensored": 0.03,
    }
    rows, plan = _mix(scored, shares, n, redistribute)
    avail = dict(_pool(scored).group_by("domain").len().iter_rows())
    want = reference_quotas(avail, shares, n, redistribute)
    got = dict(zip(plan["domain"], plan["quota"], strict=True))
    assert got == {d: want.get(d, 0) for d in got}
    assert rows.height == sum(want.values())
    assert plan.filter(pl.col("domain") == "specialty")["shortfall"][0] == round(0.14 * n)  # no such rows: all short
    if redistribute:
        assert rows.height == min(n, sum(avail.get(d, 0) for d in shares))


def test_select_records_target_vs_achieved_and_the_shortfall(scored: Path, tmp_path: Path) -> None:
    r = api.select(scored, ["mix"], tmp_path / "mix", params={"n": "500", "redistribute": "false"})
    by = {m["domain"]: m for m in r.mix or []}
    assert by["general"]["target_rows"] == 215 and by["general"]["achieved_rows"] == 215
    assert by["calibration"] == {
        "domain": "calibration",
        "target_share": 0.06,
        "target_rows": 30,
        "available": 0,
        "quota": 0,
        "achieved_rows": 0,
        "shortfall": 30,
    }
    assert r.rows == sum(m["achieved_rows"] for m in r.mix or [])


def test_mix_file_csv_and_bad_tables(tmp_path: Path) -> None:
    (tmp_path / "m.csv").write_text("domain,share\ngeneral,7\nmath,3\n")
    assert read_mix(tmp_path / "m.csv") == {"general": 7.0, "math": 3.0}
    (tmp_path / "bad.csv").write_text("domain,share\ngeneral,lots\n")
    with pytest.raises(Exception, match=r"bad.csv:2: share: expected a number, got 'lots'"):
        read_mix(tmp_path / "bad.csv")
    (tmp_path / "neg.toml").write_text("[mix]\ngeneral = -1\n")
    with pytest.raises(Exception, match="general: expected a share >= 0"):
        read_mix(tmp_path / "neg.toml")
