"""Every registered stage keeps the contract: append only, declared dtypes, partition-independent."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

from engine import api
from engine import config as cfgmod
from engine.stages import STAGES, get_stage
from engine.stages.base import Stage
from tests.conftest import DATA
from tests.models.test_ifd_tiny import build_tiny_llama

SOURCES = [
    DATA / "alpaca_en_demo.json",
    DATA / "glaive_toolcall_en_demo.json",
    DATA / "dpo_en_demo.json",
    DATA / "c4_demo.jsonl",
    DATA / "alpaca_seed_tasks.jsonl",
]


@pytest.fixture(scope="module")
def ingested(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("contract")
    api.ingest(SOURCES, root / "one", partition_rows=100_000)
    api.ingest(SOURCES, root / "three", partition_rows=700)
    return root


@pytest.fixture(scope="module")
def heavy_settings(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, object]]:
    """Stages whose default model is too slow for this test get a tiny one through the same code path."""
    tiny = build_tiny_llama(tmp_path_factory.mktemp("tiny-llama"))
    return {"ifd": {"model": str(tiny), "max_length": 128}}


@pytest.fixture
def datasets(ingested: Path, tmp_path: Path) -> tuple[Path, Path]:
    """Fresh copies, so each stage sees only the canonical columns and its own requirements."""
    for name in ("one", "three"):
        shutil.copytree(ingested / name, tmp_path / name)
    return tmp_path / "one", tmp_path / "three"


@pytest.mark.parametrize("stage", STAGES, ids=lambda s: s.name)
def test_stage_appends_declared_columns_and_ignores_partitioning(
    stage: Stage, datasets: tuple[Path, Path], heavy_settings: dict[str, dict[str, object]]
) -> None:
    one, three = datasets
    assert len(list(three.glob("part-*.parquet"))) == 3
    before = pl.read_parquet(sorted(one.glob("part-*.parquet")))
    for d in (one, three):
        for name in (*stage.requires, stage.name):
            api.score(name, d, settings=heavy_settings.get(name))
    from engine.store.dataset import open_dataset

    a = open_dataset(one).scan().collect()
    b = open_dataset(three).scan().collect()
    assert a["id"].to_list() == before["id"].to_list()
    required = [c for name in stage.requires for c in get_stage(name).writes]
    assert a.columns == before.columns + required + list(stage.writes)
    for name, dtype in stage.writes.items():
        assert a.schema[name] == dtype, name
    assert a.equals(b)
    assert all(c.startswith(tuple(p + "_" for p in stage.prefixes)) for c in stage.writes)


@pytest.mark.parametrize("stage", STAGES, ids=lambda s: s.name)
def test_config_fingerprint_is_stable_across_processes(stage: Stage) -> None:
    here = cfgmod.fingerprint(stage.default_config(), stage.version)
    code = (
        f"from engine.stages import get_stage; from engine import config; s = get_stage({stage.name!r}); "
        "print(config.fingerprint(s.default_config(), s.version))"
    )
    there = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONHASHSEED": "123", "PATH": ""},
        cwd=Path(__file__).resolve().parents[2],
    )
    assert there.stdout.strip() == here
    assert json.loads(json.dumps(cfgmod.to_mapping(stage.default_config())))  # plain values only
