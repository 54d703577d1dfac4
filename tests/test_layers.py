"""Imports point down the layers of STYLE.md, never up, and never sideways inside layer 4."""

from __future__ import annotations

import ast
from pathlib import Path

ENGINE = Path(__file__).resolve().parents[1] / "engine"
LAYER = {
    "errors": 0,
    "schema": 0,
    "config": 0,
    "progress": 0,
    "models": 1,
    "stages": 2,
    "store": 3,
    "io": 4,
    "select": 4,
    "export": 4,
    "report": 4,
    "generate": 4,
    "experiment": 4,
    "api": 5,
    "review": 5,  # the Streamlit app reads the dataset like the API does
    "cli": 6,
}


def _room(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "engine" else None


def test_no_upward_or_sideways_imports() -> None:
    bad = []
    for path in ENGINE.rglob("*.py"):
        rel = path.relative_to(ENGINE.parent).with_suffix("")
        here = rel.parts[1] if len(rel.parts) > 1 else None
        if here not in LAYER:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else ([node.module] if isinstance(node, ast.ImportFrom) and node.module else [])
            )
            for name in names:
                room = _room(name)
                if room is None or room == here or room not in LAYER:
                    continue
                if LAYER[room] > LAYER[here] or (LAYER[room] == LAYER[here] == 4):
                    bad.append(f"{path.relative_to(ENGINE.parent)} imports {name}")
    assert not bad, bad


def test_cli_does_not_import_polars_or_duckdb() -> None:
    for path in (ENGINE / "cli").glob("*.py"):
        text = path.read_text()
        assert "import polars" not in text and "import duckdb" not in text, path


def test_api_examples_run() -> None:
    import doctest

    import engine.api
    import engine.io.ingest

    for module in (engine.api, engine.io.ingest):
        result = doctest.testmod(module)
        assert result.attempted > 0 and result.failed == 0, module.__name__
