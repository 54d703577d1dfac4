"""The composite stage: weights renormalised over the dimensions present, column mapping, 1-10 ranges."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest

from engine import api
from engine import config as cfgmod
from engine.errors import ConfigError
from engine.stages.composite import CompositeConfig, transform
from engine.store.dataset import open_dataset
from tests.conftest import DATA


def _frame() -> pl.LazyFrame:
    return pl.LazyFrame(
        {
            "factuality": [1.0, 10.0, None, 5.5],
            "diversity": [0.0, 1.0, 0.5, None],
        }
    )


def test_missing_dimension_is_skipped_and_weights_renormalised() -> None:
    cfg = CompositeConfig(ranges={"factuality": (1, 10)})  # reasoning is absent from the frame
    out = transform(_frame(), cfg).collect()
    fact = (np.array([1.0, 10.0, np.nan, 5.5]) - 1) / 9
    div = np.array([0.0, 1.0, 0.5, np.nan])
    expected = [
        (0.4 * fact[0] + 0.3 * div[0]) / 0.7,
        (0.4 * fact[1] + 0.3 * div[1]) / 0.7,
        div[2],  # only diversity has a value
        fact[3],  # only factuality
    ]
    assert out["quality_composite"].to_list() == pytest.approx(expected)
    assert out["quality_dims"].to_list() == [2, 2, 1, 1]


def test_no_dimension_gives_null() -> None:
    out = transform(pl.LazyFrame({"x": [1.0]}), CompositeConfig()).collect()
    assert out["quality_composite"].to_list() == [None]
    assert out["quality_dims"].to_list() == [0]


def test_set_strings_and_tables_give_the_same_config() -> None:
    from_cli = cfgmod.from_mapping(
        CompositeConfig,
        {"weights": "clarity=1,diversity=3", "columns": "diversity=heur_diversity,clarity=heur_clarity"},
        where="composite",
    )
    from_toml = CompositeConfig(
        weights={"diversity": 3, "clarity": 1}, columns={"clarity": "heur_clarity", "diversity": "heur_diversity"}
    )
    assert from_cli == from_toml
    assert cfgmod.fingerprint(from_cli) == cfgmod.fingerprint(from_toml)


def test_bad_configs_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="weights must be >= 0"):
        CompositeConfig(weights={"a": -1})
    with pytest.raises(ConfigError, match="columns names 'reasonng', which has no weight"):
        CompositeConfig(columns={"reasonng": "judge_reasoning"})
    with pytest.raises(ConfigError, match=r"ranges.factuality: high must be above low"):
        CompositeConfig(ranges={"factuality": (10, 1)})
    with pytest.raises(ConfigError, match="expected NAME=VALUE"):
        cfgmod.from_mapping(CompositeConfig, {"weights": "factuality"}, where="composite")


def test_composite_of_heuristic_dimensions_on_real_rows(tmp_path: Path) -> None:
    api.ingest([DATA / "alpaca_en_demo.json", DATA / "c4_demo.jsonl"], tmp_path / "ds")
    api.score("heuristic", tmp_path / "ds")
    settings = {
        "weights": {"clarity": 1.0, "diversity": 3.0},
        "columns": {"clarity": "heur_clarity", "diversity": "heur_diversity"},
    }
    api.score("composite", tmp_path / "ds", settings=settings)
    df = open_dataset(tmp_path / "ds").scan().collect()
    expected = (df["heur_clarity"] + 3 * df["heur_diversity"]) / 4
    assert np.allclose(df["quality_composite"], expected)
    assert df["quality_composite"].is_between(0, 1).all() and (df["quality_dims"] == 2).all()
