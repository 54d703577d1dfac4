"""`distill models prepare` and `distill ifd`, through their typer apps."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

import engine.models.causal_lm_mlx  # noqa: F401 - loads OpenBLAS before anything imports mlx
from engine import api
from engine.cli import ifd as ifd_cli
from engine.cli import models as models_cli
from engine.errors import ConfigError
from tests.conftest import DATA
from tests.models.test_ifd_tiny import build_tiny_llama

runner = CliRunner()


def test_models_prepare_smollm2_is_idempotent(tmp_path: Path) -> None:
    out = tmp_path / "smol"
    first = runner.invoke(models_cli.app, ["models", "prepare", "smollm2", "--out", str(out)])
    assert first.exit_code == 0, first.output
    assert first.output.strip() == f"smollm2: ready in {out}"
    stamp = (out / "model.safetensors").stat().st_mtime_ns
    again = runner.invoke(models_cli.app, ["models", "prepare", "smollm2", "--out", str(out)])
    assert again.exit_code == 0 and (out / "model.safetensors").stat().st_mtime_ns == stamp


def test_models_prepare_unknown_name_is_a_config_error() -> None:
    result = runner.invoke(models_cli.app, ["models", "prepare", "smolm2"])
    assert isinstance(result.exception, ConfigError)
    assert str(result.exception) == "models prepare: unknown model 'smolm2'; did you mean 'smollm2'? (known: smollm2)"


def test_models_help_has_an_example() -> None:
    result = runner.invoke(models_cli.app, ["models", "prepare", "--help"])
    assert result.exit_code == 0 and "distill models prepare smollm2" in result.output


def test_ifd_command_scores_a_dataset(tmp_path: Path) -> None:
    tiny = build_tiny_llama(tmp_path / "tiny")
    src = tmp_path / "a.json"
    src.write_text(json.dumps(json.loads((DATA / "alpaca_en_demo.json").read_text())[:6]))
    api.ingest([src], tmp_path / "ds")
    args = ["--model", str(tiny), "--max-length", "256", "--quiet"]
    result = runner.invoke(ifd_cli.app, [str(tmp_path / "ds"), *args])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("ifd: 1 partition(s) written, 0 up to date, 6 rows in ")
    bad = runner.invoke(ifd_cli.app, [str(tmp_path / "ds"), *args, "--shard", "1/1"])
    assert isinstance(bad.exception, ConfigError)
    assert str(bad.exception) == "--shard '1/1': expected I/N with 0 <= I < N, e.g. --shard 0/4"
    assert "distill ifd out/sample" in runner.invoke(ifd_cli.app, ["--help"]).output
