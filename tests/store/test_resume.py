"""A stage run killed with SIGKILL mid-way resumes to byte-identical output."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from engine import api
from tests.conftest import DATA

KILL_AFTER = """
import os, signal, sys
from engine import api
def on_progress(p):
    if p.task == "length" and p.done == int(sys.argv[2]):
        os.kill(os.getpid(), signal.SIGKILL)
api.score("length", sys.argv[1], on_progress=on_progress)
"""


def _stage_bytes(root: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((root / "stages" / "length").glob("part-*.parquet"))}


def test_sigkill_mid_stage_then_rerun_is_byte_identical(tmp_path: Path) -> None:
    api.ingest([DATA / "gsm8k_train.jsonl"], tmp_path / "clean", partition_rows=500)
    shutil.copytree(tmp_path / "clean", tmp_path / "killed")
    api.score("length", tmp_path / "clean")

    proc = subprocess.run(
        [sys.executable, "-c", KILL_AFTER, str(tmp_path / "killed"), "6"],
        cwd=Path(__file__).resolve().parents[2],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == -9, proc.stderr
    half = _stage_bytes(tmp_path / "killed")
    assert len(half) == 6  # six partitions landed, the other nine never started
    assert not list((tmp_path / "killed").rglob(".*tmp-*"))

    report = api.score("length", tmp_path / "killed")
    assert (report.skipped, report.written) == (6, 9)
    assert _stage_bytes(tmp_path / "killed") == _stage_bytes(tmp_path / "clean")
    assert len(_stage_bytes(tmp_path / "clean")) == 15
    assert api.verify(tmp_path / "killed").ok


def test_leftover_temp_file_from_a_kill_mid_write_is_ignored(tmp_path: Path) -> None:
    api.ingest([DATA / "c4_demo.jsonl"], tmp_path / "ds", partition_rows=100)
    stage_dir = tmp_path / "ds" / "stages" / "length"
    stage_dir.mkdir(parents=True)
    (stage_dir / ".part-00001.parquet.tmp-999").write_bytes(b"PAR1 half a file")
    report = api.score("length", tmp_path / "ds")
    assert report.written == 3
    assert api.verify(tmp_path / "ds").ok
