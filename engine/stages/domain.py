"""Mix domain per row, for selection by ratio; labels, never drops.

Adds `domain_name` (the domain the mix queries use) and `domain_rule` (what decided it: `rule:tool_use`,
`rule:math`, `rule:coding`, `map:<key>`, `field`, `default`). The `scored` view of `engine.select` shows
`domain_name` as `domain` once this stage has run.

Deciders, tried in `order` (the first that gives a domain wins):
- `rules`: content rules: a tools list or tool calls in a conversation -> tool_use; a `#### N` answer, `\\boxed{}`
  or LaTeX math (`\\frac`, `\\sqrt`, `$$`, `\\(`), or an rlvr row whose answer is a number -> math; a code fence (```) -> coding.
- `map`: `map = ["KEY=DOMAIN", ...]` looked up on `map_field` (`source`, `domain`, or `meta.KEY` for a field
  of the source record kept in `meta`, e.g. `meta.category`). `map_file` names a CSV (`key,domain` header) or a
  TOML `[map]` table; its pairs are read when the config is built, so they are part of the fingerprint, and
  inline `map` pairs override them.
- `field`: the row's own `domain` column (set by `distill ingest --domain`).
Rows no decider labels get `default`.
"""

from __future__ import annotations

import csv
import tomllib
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from engine.errors import ConfigError, did_you_mean
from engine.stages.base import Stage
from engine.stages.views import VIEW_READS, prompt_text, response_text

DECIDERS = ("rules", "map", "field")
MATH_PATTERN = r"(?m)^####\s*\S|\\boxed\{|\\frac\{|\\sqrt\{|\\\(|\\\[|\$\$"
CODE_PATTERN = r"```"
NUMBER = r"^\s*-?[\d,]*\.?\d+(?:/\d+)?\s*$"


@dataclass(frozen=True, slots=True, kw_only=True)
class DomainConfig:
    order: tuple[str, ...] = DECIDERS
    map: tuple[str, ...] = ()
    map_file: str = ""
    map_field: str = "source"
    default: str = "general"

    def __post_init__(self) -> None:
        if self.map_file:
            object.__setattr__(self, "map", (*read_map_file(Path(self.map_file)), *self.map))
        for name in self.order:
            if name not in DECIDERS:
                msg = f"domain.order: unknown decider {name!r}{did_you_mean(name, DECIDERS)} (known: {', '.join(DECIDERS)})"
                raise ConfigError(msg)
        for pair in self.map:
            key, sep, value = pair.partition("=")
            if not sep or not key.strip() or not value.strip():
                msg = f"domain.map: {pair!r}: expected KEY=DOMAIN, e.g. alpaca_en_demo=general"
                raise ConfigError(msg)
        if self.map_field not in ("source", "domain") and not self.map_field.startswith("meta."):
            msg = f"domain.map_field: expected source, domain or meta.KEY, got {self.map_field!r}"
            raise ConfigError(msg)
        if not self.default.strip():
            msg = "domain.default: must not be empty"
            raise ConfigError(msg)

    def mapping(self) -> dict[str, str]:
        return {k.strip(): v.strip() for k, _, v in (p.partition("=") for p in self.map)}


def read_map_file(path: Path) -> tuple[str, ...]:
    """`KEY=DOMAIN` pairs from a CSV with a `key,domain` header or a TOML `[map]` table."""
    if not path.exists():
        msg = f"domain.map_file: {path}: no such file; give a CSV with key,domain columns or a TOML [map] table"
        raise ConfigError(msg)
    if path.suffix == ".toml":
        try:
            table = tomllib.loads(path.read_text()).get("map")
        except tomllib.TOMLDecodeError as exc:
            msg = f"domain.map_file: {path}: not valid TOML ({exc})"
            raise ConfigError(msg) from exc
        if not isinstance(table, dict):
            msg = f"domain.map_file: {path}: expected a [map] table of key = domain"
            raise ConfigError(msg)
        return tuple(f"{k}={v}" for k, v in table.items())
    with path.open(newline="") as fh:
        reader = csv.DictReader(fh)
        if reader.fieldnames is None or not {"key", "domain"} <= set(reader.fieldnames):
            msg = f"domain.map_file: {path}:1: expected a header with key,domain, got {reader.fieldnames}"
            raise ConfigError(msg)
        return tuple(f"{r['key'].strip()}={r['domain'].strip()}" for r in reader)


def _key(cfg: DomainConfig) -> pl.Expr:
    if cfg.map_field.startswith("meta."):
        return pl.col("meta").str.json_path_match(f"$.{cfg.map_field.removeprefix('meta.')}")
    return pl.col(cfg.map_field)


def _tool_use() -> pl.Expr:
    tools = pl.col("tools").str.strip_chars().fill_null("")
    has_tools = ~tools.is_in(["", "[]", "null"])
    calls = pl.col("messages").list.eval(
        pl.element().struct.field("tool_calls").is_not_null() | (pl.element().struct.field("role") == "tool")
    )
    return has_tools | calls.list.any().fill_null(False)


def _rules(text: pl.Expr) -> pl.Expr:
    return (
        pl.when(_tool_use())
        .then(pl.lit("tool_use"))
        .when(text.str.contains(MATH_PATTERN) | ((pl.col("kind") == "rlvr") & pl.col("answer").str.contains(NUMBER)))
        .then(pl.lit("math"))
        .when(text.str.contains(CODE_PATTERN, literal=True))
        .then(pl.lit("coding"))
    )


def transform(lf: pl.LazyFrame, cfg: DomainConfig) -> pl.LazyFrame:
    text = pl.concat_str([prompt_text(), response_text()], separator="\n", ignore_nulls=True).fill_null("")
    mapping = cfg.mapping()
    key = _key(cfg)
    rule = _rules(text)
    field = pl.col("domain").str.strip_chars()
    field = pl.when(field != "").then(field)
    pick = {
        "rules": (rule, pl.lit("rule:") + rule),
        "map": (
            key.replace_strict(mapping, default=None, return_dtype=pl.String) if mapping else pl.lit(None, pl.String),
            pl.lit("map:") + key,
        ),
        "field": (field, pl.lit("field")),
    }
    names = [pick[d][0] for d in cfg.order]
    whys = [pl.when(pick[d][0].is_not_null()).then(pick[d][1]) for d in cfg.order]
    return lf.with_columns(
        domain_name=pl.coalesce([*names, pl.lit(cfg.default)]),
        domain_rule=pl.coalesce([*whys, pl.lit("default")]),
    )


STAGE = Stage(
    name="domain",
    prefix="domain",
    version=1,
    config=DomainConfig,
    transform=transform,
    reads=(*VIEW_READS, "domain", "source", "meta", "tools"),
    writes={"domain_name": pl.String, "domain_rule": pl.String},
    doc=__doc__ or "",
)
