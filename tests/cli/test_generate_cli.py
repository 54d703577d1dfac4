"""chunk, generate and judge commands on their own typer apps, against a real local HTTP server."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from typer.testing import CliRunner

from engine.cli import chunk, generate, judge

_spec = importlib.util.spec_from_file_location("fake_openai", Path(__file__).parents[1] / "generate" / "fake_openai.py")
assert _spec and _spec.loader
fake_openai = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(fake_openai)


def test_chunk_generate_judge_commands(tmp_path: Path, data: Path) -> None:
    src = tmp_path / "w.txt"
    src.write_text((data / "wiki_demo.txt").read_text()[:8000])
    run = CliRunner()
    r = run.invoke(
        chunk.app, [str(src), "--out", str(tmp_path / "ch"), "--chunk-size", "800", "--overlap", "100", "-q"]
    )
    assert r.exit_code == 0, r.output
    assert r.output.startswith("chunk: ") and "chunks from 1 document(s)" in r.output
    with fake_openai.FakeOpenAI() as server:
        args = [str(tmp_path / "ch"), "--teacher", f"a=m@{server.url}:50", "--teacher", f"b=n@{server.url}:50"]
        args += ["--out", str(tmp_path / "qa"), "--cache", str(tmp_path / "c.sqlite"), "--max-requests", "3", "-q"]
        r = run.invoke(generate.app, args)
        assert r.exit_code == 0, r.output
        assert "3 answered" in r.output and "budget reached" in r.output
        r = run.invoke(generate.app, [*args[:-3], "-q"])
        assert r.exit_code == 0 and "0 pending" in r.output and "3 from cache" in r.output, r.output
        r = run.invoke(
            judge.app, [str(tmp_path / "qa"), "--judge", f"j@{server.url}", "--cache", str(tmp_path / "c.sqlite"), "-q"]
        )
        assert r.exit_code == 0 and "0 failed, 0 pending" in r.output, r.output
    r = run.invoke(generate.app, ["--help"])
    assert r.exit_code == 0 and "--teacher" in r.output and "--max-requests" in r.output
