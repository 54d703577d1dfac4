"""Load the canonical record schemas from `schemas/*.json` and build their Arrow schemas.

Every dataset partition carries the union schema (common columns, then every kind's fields, in the fixed
order of KINDS), so a dataset may mix kinds and every stage may name any canonical column; the `kind`
column says which fields apply to a row.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import polars as pl
import pyarrow as pa

from engine.errors import SchemaError, did_you_mean

SCHEMA_DIR = Path(__file__).resolve().parent.parent / "schemas"
KINDS: tuple[str, ...] = ("sft", "chat", "dpo", "kto", "rlvr", "text")

MESSAGE = pa.struct([("role", pa.string()), ("content", pa.string()), ("tool_calls", pa.string())])
ROLES: tuple[str, ...] = ("system", "user", "assistant", "tool")

_TYPES = {
    "string": pa.string(),
    "int64": pa.int64(),
    "bool": pa.bool_(),
    "messages": pa.list_(MESSAGE),
}


@dataclass(frozen=True, slots=True)
class FieldSpec:
    name: str
    type: pa.DataType
    required: bool
    doc: str


@dataclass(frozen=True, slots=True)
class KindSpec:
    kind: str
    version: int
    doc: str
    fields: tuple[FieldSpec, ...]

    @property
    def required(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.fields if f.required)


@cache
def load_kind(kind: str) -> KindSpec:
    """Read `schemas/<kind>.json` (or `common`)."""
    if kind not in (*KINDS, "common"):
        msg = f"unknown record kind {kind!r}; expected one of {', '.join(KINDS)}{did_you_mean(kind, KINDS)}"
        raise SchemaError(msg)
    path = SCHEMA_DIR / f"{kind}.json"
    try:
        raw = json.loads(path.read_text())
    except OSError as exc:
        msg = f"{path}: cannot read the schema file ({exc.strerror}); reinstall distill from its repository"
        raise SchemaError(msg) from exc
    fields = tuple(FieldSpec(f["name"], _TYPES[f["type"]], bool(f["required"]), f["doc"]) for f in raw["fields"])
    return KindSpec(raw["kind"], int(raw["version"]), raw["doc"], fields)


def kind_schema(kind: str) -> pa.Schema:
    """The Arrow schema of one kind: common columns, then the kind's fields."""
    specs = (*load_kind("common").fields, *load_kind(kind).fields)
    return pa.schema([pa.field(f.name, f.type, nullable=not f.required) for f in specs])


@cache
def dataset_schema() -> pa.Schema:
    """The union schema every partition is written with: common, then each kind's fields once."""
    seen: dict[str, pa.Field] = {}
    for f in load_kind("common").fields:
        seen[f.name] = pa.field(f.name, f.type, nullable=not f.required)
    for kind in KINDS:
        for f in load_kind(kind).fields:
            if f.name in seen:
                if seen[f.name].type != f.type:
                    msg = f"schemas/{kind}.json: field {f.name!r} is {f.type}, but another kind has it as {seen[f.name].type}"
                    raise SchemaError(msg)
                continue
            seen[f.name] = pa.field(f.name, f.type, nullable=True)
    return pa.schema(list(seen.values()))


@cache
def dataset_polars_schema() -> pl.Schema:
    """`dataset_schema()` as a Polars schema, for casting frames and checking partitions.

    From a table of no batches: `Schema.empty_table()` makes pyarrow import pandas (~0.13 s holding the GIL).
    """
    empty = pa.Table.from_batches([], schema=dataset_schema())
    return pl.Schema(pl.from_arrow(empty).schema)  # type: ignore[union-attr]


def schema_version() -> int:
    """One number that changes whenever any kind's schema file changes version."""
    return sum(load_kind(k).version for k in ("common", *KINDS))
