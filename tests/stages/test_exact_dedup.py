"""Exact dedup: normalisation variants collapse, the keep policy picks the kept row, nothing is dropped."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest

from engine import api
from engine.errors import ConfigError, SchemaError
from engine.store.dataset import open_dataset
from tests.conftest import DATA


@pytest.fixture
def variants(tmp_path: Path) -> Path:
    """Real alpaca rows, plus case/whitespace/NFKC variants of the first 20 and an extended copy of one."""
    rows = json.loads((DATA / "alpaca_en_demo.json").read_text())[:200]
    extra = []
    for i, r in enumerate(rows[:20]):
        v = dict(r)
        if i % 3 == 0:
            v["output"] = r["output"].upper()
        elif i % 3 == 1:
            v["output"] = "  " + r["output"].replace(" ", " \n\t ") + " "
        else:
            v["output"] = r["output"].replace("1", "\uff11").replace("a", "\uff41")  # fullwidth forms: NFKC folds them
        extra.append(v)
    path = tmp_path / "rows.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows + extra))
    api.ingest([path], tmp_path / "ds", partition_rows=70)
    return tmp_path / "ds"


def test_normalised_variants_point_at_the_kept_row(variants: Path) -> None:
    api.score("exact_dedup", variants)
    df = open_dataset(variants).scan().collect()
    assert df.height == 220  # flags, never drops
    originals, copies = df[:20], df[200:]
    assert originals["exact_hash"].to_list() == copies["exact_hash"].to_list()
    # keep = first: the smaller id of each pair is kept, the other points at it
    for a, b in zip(originals.iter_rows(named=True), copies.iter_rows(named=True), strict=True):
        kept, dup = (a, b) if a["id"] < b["id"] else (b, a)
        assert kept["exact_dup_of"] is None and dup["exact_dup_of"] == kept["id"]
    assert df[20:200]["exact_dup_of"].null_count() == 180
    assert df["exact_hash"].n_unique() == 200


def test_keep_longest_and_score_policies(variants: Path, tmp_path: Path) -> None:
    api.score("exact_dedup", variants, settings={"keep": "longest"})
    df = open_dataset(variants).scan().collect()
    spaced = [i for i in range(20) if i % 3 == 1]  # the whitespace-padded copy is longer before normalising
    for i in spaced:
        assert df["exact_dup_of"][200 + i] is None and df["exact_dup_of"][i] == df["id"][200 + i]
    with pytest.raises(SchemaError, match=r"no column 'len_response_chars'.*run the stage that adds it first"):
        api.score("exact_dedup", variants, settings={"keep": "score:len_response_chars"})
    fresh = tmp_path / "fresh"
    api.ingest(sorted(tmp_path.glob("*.jsonl")), fresh)
    api.score("length", fresh)
    api.score("exact_dedup", fresh, settings={"keep": "score:len_response_chars"})
    df = open_dataset(fresh).scan().collect()
    for i in spaced:
        assert df["exact_dup_of"][i] == df["id"][200 + i]


def test_normalisation_is_configurable(variants: Path) -> None:
    api.score("exact_dedup", variants, settings={"casefold": False})
    df = open_dataset(variants).scan().collect()
    upper = [i for i in range(20) if i % 3 == 0 and df["response"][i] != df["response"][i].upper()]
    assert upper and all(df["exact_hash"][i] != df["exact_hash"][200 + i] for i in upper)


def test_bad_options_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="keep: expected first"):
        api.score("exact_dedup", DATA, settings={"keep": "best"})
    with pytest.raises(ConfigError, match=r"'respnse' is not a text column.*did you mean 'response'"):
        api.score("exact_dedup", DATA, settings={"fields": "instruction,respnse"})


def test_rerun_skips_and_side_table_is_reused(variants: Path) -> None:
    first = api.score("exact_dedup", variants)
    side = variants / "stages" / "exact_dedup" / "_side.parquet"
    stamp = side.stat().st_mtime_ns
    again = api.score("exact_dedup", variants)
    assert (first.written, again.written, again.skipped) == (first.partitions, 0, first.partitions)
    assert side.stat().st_mtime_ns == stamp
    assert pl.read_parquet(side).height == 40  # only members of duplicate groups
