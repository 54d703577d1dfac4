"""A scored dataset of every real sample file (sft, chat, dpo, rlvr, text), shared by the selection tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine import api
from engine.io.ingest import SourceSpec, ingest
from tests.conftest import DATA

SOURCES = [
    (DATA / "alpaca_en_demo.json", "general"),
    (DATA / "glaive_toolcall_en_demo.json", "tool_use"),
    (DATA / "dpo_en_demo.json", "general"),
    (DATA / "c4_demo.jsonl", "general"),
]


def build(out: Path, *, gsm8k_rows: int = 1500, partition_rows: int = 700) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    gsm = out.parent / f"gsm8k_{gsm8k_rows}.jsonl"
    gsm.write_text("".join((DATA / "gsm8k_train.jsonl").read_text().splitlines(keepends=True)[:gsm8k_rows]))
    specs = [*SOURCES, (gsm, "math")]
    # one ingest with a domain per source, as the pipeline runner does
    ingest([SourceSpec(p, "auto", {}, d, None, "auto") for p, d in specs], out, partition_rows=partition_rows)
    for stage in ("length", "exact_dedup", "heuristic", "domain"):
        api.score(stage, out)
    return out


@pytest.fixture(scope="session")
def scored(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build(tmp_path_factory.mktemp("select") / "ds")
