"""`distill gate`: the funnel report through the typer app, on real data."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from engine import api
from engine.cli.gate import app
from tests.conftest import DATA


def test_gate_report_prints_the_funnel_and_length_bias(tmp_path: Path) -> None:
    api.ingest([DATA / "alpaca_en_demo.json", DATA / "dpo_en_demo.json"], tmp_path / "ds")
    args = [
        str(tmp_path / "ds"),
        "--set",
        "min_words=response=20",
        "--set",
        "safety_words=kill,weapon",
        "--report",
        "-q",
    ]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    report = api.gate(tmp_path / "ds", settings={"min_words": {"response": 20}, "safety_words": ("kill", "weapon")})
    assert (
        lines[0]
        == f"gate: {report.passed:,} of {report.rows:,} rows pass, {report.rows - report.passed:,} flagged"
        + lines[0][lines[0].rindex(" (") :]
    )
    assert lines[1].split() == ["rule", "failed", "remaining", "dropped", "kept"]
    rules = [line.split()[0] for line in lines[2:-1]]
    assert rules == ["rows", "min_words:response", "citation", "code_fence", "safety"]
    assert lines[2].split()[3] == f"{report.rows:,}"
    assert lines[-1].startswith("length bias: chosen longer than rejected in ") and "of 300 pairs" in lines[-1]


def test_gate_without_report_prints_one_line(tmp_path: Path) -> None:
    api.ingest([DATA / "alpaca_en_demo.json"], tmp_path / "ds")
    result = CliRunner().invoke(app, [str(tmp_path / "ds"), "-q"])
    assert result.exit_code == 0, result.output
    assert len(result.output.splitlines()) == 1 and " of 999 rows pass" in result.output


def test_gate_help_has_an_example() -> None:
    result = CliRunner().invoke(app, ["--help"])
    assert result.exit_code == 0 and "distill gate out/sample" in result.output
