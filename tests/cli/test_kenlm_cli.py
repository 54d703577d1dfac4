"""`distill kenlm train` through its typer app (mounted as `distill kenlm` by cli/main.py)."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from engine.cli import kenlm as kenlm_cli
from engine.errors import InputError
from engine.models import kenlm_lm
from tests.conftest import DATA

runner = CliRunner()


def test_train_writes_a_model_kenlm_loads(tmp_path: Path) -> None:
    out = tmp_path / "wiki.arpa"
    args = ["train", "--corpus", str(DATA / "wiki_demo.txt"), "--corpus", str(DATA / "wiki_demo.txt"), "--order", "3"]
    result = runner.invoke(kenlm_cli.app, [*args, "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert result.output.startswith(f"{out}: order 3, 60 sentences, ")
    assert "1-grams " in result.output and "3-grams " in result.output
    assert kenlm_lm.load(out).order == 3


def test_help_has_an_example() -> None:
    result = runner.invoke(kenlm_cli.app, ["train", "--help"])
    assert result.exit_code == 0
    assert "distill kenlm train --corpus" in result.output and "--order" in result.output


def test_missing_corpus_is_an_input_error(tmp_path: Path) -> None:
    result = runner.invoke(
        kenlm_cli.app, ["train", "--corpus", str(tmp_path / "no.txt"), "--out", str(tmp_path / "m.arpa")]
    )
    assert isinstance(result.exception, InputError)  # cli/main.py prints it as one `Error:` line, exit 2
    assert (
        str(result.exception)
        == f"{tmp_path / 'no.txt'}: no such corpus file; pass plain text files, one sentence or paragraph per line"
    )
