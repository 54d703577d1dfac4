"""Selection queries: find a `queries/*.sql` file, read its header, bind its `$name` parameters.

Every file starts with the header of STYLE.md §5; its `params:` lines declare each parameter's DuckDB
type and say `(required)` or `(default V)`. Values from the command line arrive as strings and are
converted to the declared type here; DuckDB binds them, nothing is ever formatted into SQL text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb

from engine.errors import ConfigError, InputError, did_you_mean

QUERIES_DIR = Path(__file__).resolve().parents[2] / "queries"
_PARAM = re.compile(r"^\$(\w+)\s+([A-Z]+)\s+(.*)$")
SHARD_KINDS = ("row", "domain", "top")
"""Values of a query header's `shard:` field (see `Query.shard`)."""
_DEFAULT = re.compile(r"\(default ([^)]*)\)")


@dataclass(frozen=True, slots=True)
class Param:
    name: str
    type: str
    doc: str
    required: bool
    default: str | None


@dataclass(frozen=True, slots=True)
class Query:
    name: str
    path: Path
    sql: str
    summary: str
    header: dict[str, str]
    params: dict[str, Param]

    @property
    def shard(self) -> str | None:
        """How the query splits across shards (header `shard:`), None when it does not say.

        `row`: any split of the rows gives the same rows (filters, hashes of id). `domain`: a shard that holds
        whole domains gives that domain's rows. `top`: a top-k by a total order, so the query over the union
        of each shard's own result equals the query over every row.
        """
        value = self.header.get("shard", "").split()
        return value[0] if value else None

    @property
    def scored_columns(self) -> tuple[str, ...] | None:
        """The columns of `scored` the header's `reads:` names, None when the query does not read `scored`."""
        m = re.search(r"\bscored\(([^)]*)\)", self.header.get("reads", ""))
        return tuple(c.strip() for c in m.group(1).split(",") if c.strip()) if m else None

    def bind(self, values: dict[str, str | Any]) -> dict[str, Any]:
        """The declared parameters, typed: given values first, then defaults; unknown or missing ones fail."""
        for key in values:
            if key not in self.params:
                names = list(self.params)
                msg = f"{self.path.name}: unknown parameter {key!r}{did_you_mean(key, names)} (it takes: {', '.join(names) or 'none'})"
                raise ConfigError(msg)
        out: dict[str, Any] = {}
        for p in self.params.values():
            raw = values.get(p.name, p.default)
            if raw is None:
                msg = f"{self.path.name}: parameter ${p.name} ({p.type}, {p.doc}) is required; pass --param {p.name}=VALUE"
                raise ConfigError(msg)
            out[p.name] = _convert(self.path.name, p, raw)
        return out


def _convert(where: str, p: Param, raw: Any) -> Any:
    if not isinstance(raw, str):
        return raw
    try:
        if p.type in ("BIGINT", "INTEGER", "UBIGINT"):
            return int(raw.replace("_", ""))
        if p.type in ("DOUBLE", "FLOAT"):
            return float(raw)
        if p.type == "BOOLEAN":
            if raw.lower() not in ("true", "false", "1", "0", "yes", "no"):
                raise ValueError(raw)
            return raw.lower() in ("true", "1", "yes")
    except ValueError as exc:
        msg = f"{where}: parameter ${p.name}: expected {p.type}, got {raw!r}"
        raise ConfigError(msg) from exc
    return raw


def parse_header(path: Path, sql: str) -> tuple[str, dict[str, str], dict[str, Param]]:
    """The summary line, the `key: value` header fields and the declared parameters of a query file."""
    lines = []
    for line in sql.splitlines():
        if not line.startswith("--"):
            break
        lines.append(line[2:].strip())
    if not lines or ":" not in lines[0]:
        msg = f"{path}: a query file starts with '-- NAME: what it returns.' (see queries/README.md)"
        raise InputError(msg)
    summary = lines[0].split(":", 1)[1].strip()
    header: dict[str, str] = {}
    params: dict[str, Param] = {}
    key = ""
    for line in lines[1:]:
        head, sep, rest = line.partition(":")
        if sep and re.fullmatch(r"[a-z]+", head.strip()):
            key, line = head.strip(), rest.strip()
            header[key] = line
        elif key:
            header[key] += "\n" + line
        if key == "params" and (m := _PARAM.match(line)):
            doc = m.group(3).strip()
            d = _DEFAULT.search(doc)
            params[m.group(1)] = Param(m.group(1), m.group(2), doc, "(required)" in doc, d.group(1) if d else None)
    return summary, header, params


def find_query(name_or_path: str | Path) -> Path:
    """A shipped query by name (`top_n`) or a .sql file by path."""
    path = Path(name_or_path)
    if path.suffix == ".sql" and path.exists():
        return path
    shipped = QUERIES_DIR / f"{path.stem}.sql"
    if path.suffix in ("", ".sql") and shipped.exists():
        return shipped
    names = sorted(p.stem for p in QUERIES_DIR.glob("*.sql"))
    msg = f"--query {str(name_or_path)!r}: no such query file{did_you_mean(path.stem, names)} (shipped: {', '.join(names)})"
    raise InputError(msg)


def load_query(name_or_path: str | Path) -> Query:
    path = find_query(name_or_path)
    sql = path.read_text()
    summary, header, params = parse_header(path, sql)
    try:
        statements = duckdb.extract_statements(sql)
    except duckdb.Error as exc:
        msg = f"{path}: not valid DuckDB SQL ({exc})"
        raise InputError(msg) from exc
    if len(statements) != 1:
        msg = f"{path}: expected one statement, found {len(statements)}"
        raise InputError(msg)
    used = set(statements[0].named_parameters)
    if used != set(params):
        msg = f"{path}: header declares {sorted(params)} but the SQL uses {sorted(used)}"
        raise InputError(msg)
    shard = header.get("shard", "").split()
    if shard and shard[0] not in SHARD_KINDS:
        msg = f"{path}: shard: expected one of {', '.join(SHARD_KINDS)}, got {shard[0]!r}"
        raise InputError(msg)
    return Query(path.stem, path, sql, summary, header, params)


def shipped_queries() -> list[Query]:
    return [load_query(p) for p in sorted(QUERIES_DIR.glob("*.sql"))]
