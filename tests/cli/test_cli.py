"""The CLI: exact error lines and exit codes, help with an example on every command, README coverage."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from engine.cli.main import app
from engine.stages import STAGES
from tests.conftest import DATA

REPO = Path(__file__).resolve().parents[2]
COMMANDS = [
    "ingest",
    "chunk",
    "generate",
    "judge",
    "regenerate",
    "info",
    "verify",
    "run",
    "score",
    "dedup",
    "gate",
    "kenlm",
    "ifd",
    "models",
    "sql",
    "select",
    "export",
    "report",
    "review",
    "experiment",
]


def distill(*args: str, cwd: Path = REPO, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "engine.cli.main", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        env={"COLUMNS": "200", "PATH": "/usr/bin:/bin", "HOME": str(cwd), **(env or {})},
    )


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help_with_an_example_and_a_readme_mention(command: str) -> None:
    out = distill(command, "--help")
    assert out.returncode == 0
    assert "Example:" in out.stdout and f"distill {command}" in out.stdout
    assert f"distill {command}" in (REPO / "README.md").read_text()


def test_registered_commands_are_the_documented_ones() -> None:
    import typer.main

    names = sorted(c.name for c in typer.main.get_command(app).commands.values())  # type: ignore[attr-defined]
    assert names == sorted(COMMANDS)


def test_missing_file_is_one_error_line_and_exit_2(tmp_path: Path) -> None:
    out = distill("ingest", str(tmp_path / "nope.jsonl"), "--out", str(tmp_path / "ds"))
    assert out.returncode == 2
    assert out.stderr == f"Error: {tmp_path / 'nope.jsonl'}: no such file\n"
    assert "Traceback" not in out.stderr


@pytest.mark.parametrize("command", ["run", "score", "dedup", "gate", "ifd"])
def test_stage_commands_take_engine_and_address(command: str, tmp_path: Path) -> None:
    """Every command that runs stages takes --engine local|ray and --address; a wrong pair is one error line."""
    out = distill(command, "--help")
    assert "--engine" in out.stdout and "--address" in out.stdout
    target = (
        [str(REPO / "pipelines" / "default.toml")] if command == "run" else ([] if command != "score" else ["length"])
    )
    target += [] if command == "run" else [str(tmp_path)]
    bad = distill(command, *target, "--engine", "local", "--address", "auto")
    assert bad.returncode == 2 and bad.stderr == "Error: --address 'auto' needs --engine ray\n"
    bad = distill(command, *target, "--engine", "spark")
    assert bad.returncode == 2 and bad.stderr == "Error: --engine 'spark': expected local|ray\n"


def test_unknown_stage_suggests_the_nearest(tmp_path: Path) -> None:
    out = distill("score", "lenght", str(tmp_path))
    assert out.returncode == 2
    known = ", ".join(s.name for s in STAGES)
    assert out.stderr == f"Error: unknown stage 'lenght'; did you mean 'length'? (known: {known})\n"


def test_ingest_names_a_bad_codec(tmp_path: Path) -> None:
    out = distill("ingest", str(DATA / "c4_demo.jsonl"), "--out", str(tmp_path / "ds"), "--codec", "gzip")
    assert out.returncode == 2 and out.stderr == "Error: --codec 'gzip': expected lz4 or zstd\n"
    assert not (tmp_path / "ds").exists()


def test_ingest_info_score_verify_end_to_end(tmp_path: Path) -> None:
    ds = tmp_path / "ds"
    out = distill(
        "ingest",
        str(DATA / "gsm8k_train.jsonl"),
        str(DATA / "alpaca_en_demo.json"),
        "--out",
        str(ds),
        "--partition-rows",
        "2000",
        "--domain",
        "mixed",
        "--codec",
        "zstd",
        "-q",
    )
    assert out.returncode == 0, out.stderr
    assert "kept 8472, rejected 0 of 8472 rows read into 5 partition(s)" in out.stdout
    assert pq.read_metadata(ds / "part-00000.parquet").row_group(0).column(0).compression == "ZSTD"
    assert f"{DATA / 'gsm8k_train.jsonl'}: rlvr -> rlvr: read 7473, kept 7473, rejected 0" in out.stdout
    out = distill("score", "length", str(ds), "--set", "min_response_chars=5", "-q")
    assert out.returncode == 0 and "length: 5 partition(s) written, 0 up to date, 8472 rows" in out.stdout
    out = distill("info", str(ds))
    assert out.returncode == 0
    assert "mixed (rlvr 7473, sft 999); 8472 rows in 5 partition(s); 0 rejected" in out.stdout
    assert "len_response_tokens" in out.stdout and "length v1: complete" in out.stdout
    out = distill("verify", str(ds))
    assert out.returncode == 0 and "FAIL" not in out.stdout and "mean len_response_chars" in out.stdout


def test_a_dataset_on_s3_from_the_command_line(s3: str, tmp_path: Path) -> None:
    """ingest --out s3://..., then score, info and verify name the prefix; the AWS_* environment is all it takes."""
    aws = {k: v for k, v in os.environ.items() if k.startswith("AWS_")}
    ds = f"{s3}/cli-{tmp_path.name}"
    out = distill("ingest", str(DATA / "gsm8k_train.jsonl"), "--out", ds, "--partition-rows", "3000", "-q", env=aws)
    assert out.returncode == 0, out.stderr
    assert f"kept 7473, rejected 0 of 7473 rows read into 3 partition(s) in {ds}" in out.stdout
    out = distill("score", "length", ds, "-q", env=aws)
    assert out.returncode == 0 and "length: 3 partition(s) written, 0 up to date, 7473 rows" in out.stdout
    out = distill("info", ds, env=aws)
    assert out.returncode == 0 and f"{ds}: rlvr (rlvr 7473); 7473 rows in 3 partition(s)" in out.stdout
    assert distill("verify", ds, env=aws).returncode == 0
    out = distill("info", f"{s3}/no-such-dataset", env=aws)
    assert out.returncode == 2
    assert out.stderr.startswith(f"Error: {s3}/no-such-dataset: no such dataset directory; create one with")
    out = distill("info", "hdfs://namenode/ds")
    assert (out.returncode, out.stderr) == (
        2,
        "Error: hdfs://namenode/ds: unsupported storage scheme 'hdfs'; use a local path, s3:// or gs://\n",
    )


def test_verify_exits_1_when_a_check_fails(tmp_path: Path) -> None:
    ds = tmp_path / "ds"
    (tmp_path / "dup.jsonl").write_text('{"text": "same"}\n{"text": "same"}\n{"text": "other"}\n')
    assert distill("ingest", str(tmp_path / "dup.jsonl"), "--out", str(ds), "-q").returncode == 0
    out = distill("verify", str(ds), "--max-dup-rate", "0.1")
    assert out.returncode == 1
    assert "FAIL  duplicate ids: 0.3333 (max 0.1)" in out.stdout
    assert out.stderr == f"Error: {ds}: 1 check(s) failed: duplicate ids\n"


def test_run_default_pipeline_then_resume(tmp_path: Path) -> None:
    out = distill("run", "pipelines/default.toml", "--out", str(tmp_path / "sample"), "-q")
    assert out.returncode == 0, out.stderr
    assert "ingest: kept 2899, rejected 0 of 2899 rows" in out.stdout
    # the main job ends in a selection, a trainer-ready folder and a report beside the dataset
    assert "select: mix_available -> mix_plan -> mix -> split by heur_score: 1500 of " in out.stdout
    sel = json.loads((tmp_path / "sample-selected" / "selection.json").read_text())
    assert sel["rows"] == 1500 and sum(m["achieved_rows"] for m in sel["mix"]) == 1500
    info = json.loads((tmp_path / "sample-llama-factory" / "dataset_info.json").read_text())
    assert all({"file_name", "columns"} <= set(entry) for entry in info.values())
    assert (tmp_path / "sample-report.html").stat().st_size > 1_000_000  # plotly.js inlined: opens offline
    out = distill("run", "pipelines/default.toml", "--out", str(tmp_path / "sample"), "-q")
    assert "(up to date)" in out.stdout and "length: 0 partition(s) written, 3 up to date" in out.stdout


def test_bad_pipeline_key_is_named(tmp_path: Path) -> None:
    bad = tmp_path / "p.toml"
    bad.write_text('[ingest]\nsources = ["x.jsonl"]\n\n[[stage]]\nname = "length"\nmin_respons_chars = 3\n')
    out = distill("run", str(bad))
    assert out.returncode == 2
    assert out.stderr.startswith(f"Error: {bad}: [[stage]] length.min_respons_chars: unknown option") is False
    assert "unknown option 'min_respons_chars'; did you mean 'min_response_chars'" in out.stderr


def test_dedup_prints_clusters_and_example_pairs(tmp_path: Path) -> None:
    assert (
        distill(
            "ingest",
            str(DATA / "alpaca_en_demo.json"),
            str(DATA / "glaive_toolcall_en_demo.json"),
            "--out",
            str(tmp_path / "ds"),
            "-q",
        ).returncode
        == 0
    )
    out = distill("dedup", str(tmp_path / "ds"), "-q")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].startswith("1299 rows in ") and "kept" in lines[0]
    assert any(line.startswith("  exact: ") for line in lines)
    assert any(line.startswith("  near:  ") and "clusters" in line for line in lines)
    assert any("true Jaccard" in line for line in lines)
    bad = distill("dedup", str(tmp_path / "ds"), "--keep", "best")
    assert bad.returncode == 2 and bad.stderr == "Error: keep: expected first | longest | score:COL, got 'best'\n"


def test_shipped_pipelines_load() -> None:
    from engine import api

    for path in sorted((REPO / "pipelines").glob("*.toml")):
        doc = api.load_pipeline(path)
        assert doc["ingest"]["sources"], path
        for src in doc["ingest"]["sources"]:
            assert (path.parent / src["path"]).exists(), (path, src)


def test_review_of_a_missing_dataset_is_one_error_line(tmp_path: Path) -> None:
    out = distill("review", str(tmp_path / "nope"), "--no-open")
    assert out.returncode == 2
    assert out.stderr == (
        f"Error: {tmp_path / 'nope'}: no such dataset directory; create one with `distill ingest SRC --out {tmp_path / 'nope'}`\n"
    )
