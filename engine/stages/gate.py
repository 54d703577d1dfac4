"""Rule gate: declarative pass/fail rules from the pipeline file; flags, never drops.

Adds gate_pass (Boolean) and gate_reasons (List[String]: the names of the rules the row fails, in rule
order; empty when it passes). Rules, in the order they are applied (a rule is off until configured,
except `citation` and `code_fence`):
- `min_chars:<field>` / `max_chars:<field>` / `min_words:<field>` / `max_words:<field>`: length bounds
  per field, e.g. `min_words = { response = 5 }`. A field is `prompt` or `response` (the per-kind
  views of `engine.stages.views`) or a canonical column; a null field has length 0. Words are
  whitespace-separated tokens.
- `action_verb`: the prompt must contain one of `action_verbs` as a whole word (any case); rows
  without a prompt (text) pass.
- `citation` (`no_citations`, on): the response has no bracketed citation marker ([1], [2, 3],
  [citation needed], [source]) and no invented-reference pattern (a "References:" / "Sources:" line,
  "et al., 2019", a `doi:10.` link).
- `json:<field>`: each of `json_fields` must parse as JSON (null or empty fails).
- `code_fence` (`balanced_fences`, on): the response has an even number of ``` fences.
- `safety`: prompt or response contains a word or phrase of `safety_words` or of the file
  `safety_words_file` (one per line, `#` comments; a path relative to the working directory; its xxh64
  is part of the config, so editing the file reruns the gate) as a whole word, any case.
- `judge`: `judge_column` >= `min_judge`. Rows without a value (the column absent, or null) fail
  unless `judge_missing = "pass"`: unscored rows are not trusted by default.

`funnel(lf, rules)` gives the retention funnel of a gated LazyFrame and `length_bias(lf)` the
dpo length-bias summary; both are lazy and pure, the caller collects.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import polars as pl
import xxhash

from engine.errors import ConfigError, did_you_mean
from engine.schema import dataset_polars_schema
from engine.stages.base import Stage
from engine.stages.views import VIEW_READS, prompt_text, response_text

LENGTH_RULES = ("min_chars", "max_chars", "min_words", "max_words")
VIEWS = ("prompt", "response")
CITATION = (
    r"(?i)(?:^|[^\w\s=(\[,{:]|[^=(\[,{:\s]\s)\[\s*\d+(?:\s*[,;\-–]\s*\d+)*\s*\]"
    r"|\[\s*(?:citation needed|citation|source|sources|ref|reference)\s*\d*\s*\]"
    r"|(?m:^\s*(?:references|sources|bibliography|works cited)\s*:?\s*$)|\bet al\.?,?\s*\(?(?:19|20)\d\d|\bdoi:\s*10\."
)
"""A bracketed citation marker ("growth.[1]", "a year [2, 3]", "[citation needed]"; not code such as
`x[1]` or `= [1, 2]`, nor anything inside code fences or inline code), or the shape of a reference list an
LLM invents."""
CODE_SPANS = r"(?s)```.*?(?:```|$)|`[^`\n]*`"
FENCE = "```"


def _table(name: str, value: Any) -> dict[str, int]:
    """`{field = n}` from TOML, or `field=n,field2=m` from `--set`."""
    if isinstance(value, str):
        pairs = [p.partition("=") for p in value.split(",") if p.strip()]
        if any(not sep for _, sep, _ in pairs):
            msg = f"gate: {name}: expected FIELD=N pairs separated by commas, got {value!r}"
            raise ConfigError(msg)
        value = {k.strip(): v.strip() for k, _, v in pairs}
    if not isinstance(value, Mapping):
        msg = f"gate: {name}: expected a table of field -> number, got {value!r}"
        raise ConfigError(msg)
    out: dict[str, int] = {}
    for key, n in value.items():
        try:
            out[str(key)] = int(n)
        except (TypeError, ValueError) as exc:
            msg = f"gate: {name}.{key}: expected a whole number, got {n!r}"
            raise ConfigError(msg) from exc
        if out[str(key)] < 0:
            msg = f"gate: {name}.{key}: must be >= 0, got {n!r}"
            raise ConfigError(msg)
    return dict(sorted(out.items()))


def _check_field(name: str, fld: str) -> None:
    known = [*VIEWS, *(c for c, t in dataset_polars_schema().items() if t == pl.String)]
    if fld not in known:
        msg = f"gate: {name}: unknown field {fld!r}{did_you_mean(fld, known)} (prompt, response or a text column)"
        raise ConfigError(msg)


def read_word_list(path: str) -> tuple[tuple[str, ...], str]:
    """Words of a word-list file (one per line, `#` comments) and the xxh64 of its bytes."""
    p = Path(path)
    if not p.is_file():
        msg = f"gate: safety_words_file: {path!r} is not a file (relative paths start at the working directory)"
        raise ConfigError(msg)
    raw = p.read_bytes()
    words = (line.split("#", 1)[0].strip() for line in raw.decode("utf-8", errors="replace").splitlines())
    return tuple(sorted({w for w in words if w})), xxhash.xxh64_hexdigest(raw)


@dataclass(frozen=True, slots=True, kw_only=True)
class GateConfig:
    """The rules; see the module docstring for each."""

    min_chars: dict[str, int] = field(default_factory=dict)
    max_chars: dict[str, int] = field(default_factory=dict)
    min_words: dict[str, int] = field(default_factory=dict)
    max_words: dict[str, int] = field(default_factory=dict)
    action_verbs: tuple[str, ...] = ()
    no_citations: bool = True
    json_fields: tuple[str, ...] = ()
    balanced_fences: bool = True
    safety_words: tuple[str, ...] = ()
    safety_words_file: str = ""
    judge_column: str = ""
    min_judge: float = 0.0
    judge_missing: Literal["fail", "pass"] = "fail"
    safety_words_file_xxh64: str = field(default="", init=False)
    """Set from the file, so the config fingerprint changes when the word list does."""
    safety_file_words: tuple[str, ...] = field(default=(), init=False, repr=False)

    def __post_init__(self) -> None:
        for name in LENGTH_RULES:
            table = _table(name, getattr(self, name))
            for fld in table:
                _check_field(name, fld)
            object.__setattr__(self, name, table)
        for fld in self.json_fields:
            _check_field("json_fields", fld)
        if any(not w.strip() for w in (*self.action_verbs, *self.safety_words)):
            msg = "gate: action_verbs and safety_words must be non-empty words"
            raise ConfigError(msg)
        if self.safety_words_file:
            words, digest = read_word_list(self.safety_words_file)
            object.__setattr__(self, "safety_file_words", words)
            object.__setattr__(self, "safety_words_file_xxh64", digest)
        if self.judge_missing not in ("fail", "pass"):
            msg = f"gate: judge_missing: expected 'fail' or 'pass', got {self.judge_missing!r}"
            raise ConfigError(msg)

    @property
    def safety(self) -> tuple[str, ...]:
        return tuple(sorted({*self.safety_words, *self.safety_file_words}))


def _text(fld: str) -> pl.Expr:
    if fld == "prompt":
        return prompt_text()
    if fld == "response":
        return response_text()
    return pl.col(fld)


def _words_regex(words: Sequence[str]) -> str:
    """Any of `words` (phrases allowed) as a whole word, any case."""
    alts = "|".join(re.escape(w.strip()) for w in sorted(words, key=len, reverse=True))
    return rf"(?i)(?:^|\W)(?:{alts})(?:\W|$)"


def _valid_json(s: pl.Series) -> pl.Series:
    # Polars has no per-row JSON validity check; the named fields are few and short (tools, arguments)
    def ok(v: str | None) -> bool:
        if not v:
            return False
        try:
            json.loads(v)
        except ValueError:
            return False
        return True

    return pl.Series(s.name, [ok(v) for v in s.to_list()], dtype=pl.Boolean)


def rules(cfg: GateConfig, present: Sequence[str] = ()) -> list[tuple[str, pl.Expr]]:
    """(rule name, fails expression) for every active rule, in order. `present`: the dataset's columns."""
    out: list[tuple[str, pl.Expr]] = []
    for name in LENGTH_RULES:
        for fld, n in getattr(cfg, name).items():
            text = _text(fld).fill_null("")
            size = text.str.len_chars() if name.endswith("chars") else text.str.count_matches(r"\S+")
            out.append((f"{name}:{fld}", size < n if name.startswith("min") else size > n))
    prompt, response = prompt_text(), response_text().fill_null("")
    if cfg.action_verbs:
        out.append(("action_verb", prompt.is_not_null() & ~prompt.str.contains(_words_regex(cfg.action_verbs))))
    if cfg.no_citations:
        out.append(("citation", response.str.replace_all(CODE_SPANS, " ").str.contains(CITATION)))
    for fld in cfg.json_fields:
        out.append((f"json:{fld}", ~_text(fld).map_batches(_valid_json, return_dtype=pl.Boolean, is_elementwise=True)))
    if cfg.balanced_fences:
        out.append(("code_fence", response.str.count_matches(FENCE, literal=True) % 2 == 1))
    if cfg.safety:
        pattern = _words_regex(cfg.safety)
        out.append(("safety", prompt.fill_null("").str.contains(pattern) | response.str.contains(pattern)))
    if cfg.judge_column:
        missing = pl.lit(cfg.judge_missing == "fail")
        if cfg.judge_column in present:
            score = pl.col(cfg.judge_column).cast(pl.Float64)
            out.append(
                ("judge", pl.when(score.is_null() | score.is_nan()).then(missing).otherwise(score < cfg.min_judge))
            )
        else:
            out.append(("judge", missing))
    return out


def rule_names(cfg: GateConfig, present: Sequence[str] = ()) -> list[str]:
    return [name for name, _ in rules(cfg, present)]


def transform(lf: pl.LazyFrame, cfg: GateConfig) -> pl.LazyFrame:
    active = rules(cfg, lf.collect_schema().names())
    failed = [pl.when(fails.fill_null(True)).then(pl.lit(name)) for name, fails in active]
    reasons = pl.concat_list(failed).list.drop_nulls() if failed else pl.lit([], pl.List(pl.String))
    return lf.with_columns(gate_reasons=reasons).with_columns(gate_pass=pl.col("gate_reasons").list.len() == 0)


def funnel(lf: pl.LazyFrame, names: Sequence[str]) -> pl.LazyFrame:
    """The retention funnel of a gated frame: one row per rule, in order.

    Columns: rule, failed (rows failing this rule, whatever the others say), remaining (rows passing this
    rule and every earlier one), dropped (rows this rule removes from the previous remaining). The first
    row is `rows in`; the last `remaining` equals the rows with gate_pass.
    """
    reasons = pl.col("gate_reasons")
    aggs = [pl.len().cast(pl.Int64).alias("in")]
    for i, name in enumerate(names):
        aggs.append(reasons.list.contains(name).sum().cast(pl.Int64).alias(f"f{i}"))
        upto = pl.lit(list(names[: i + 1]), pl.List(pl.String))
        aggs.append((reasons.list.set_intersection(upto).list.len() == 0).sum().cast(pl.Int64).alias(f"r{i}"))
    wide = lf.select(aggs)
    steps = [wide.select(rule=pl.lit("rows in"), failed=pl.lit(0, pl.Int64), remaining=pl.col("in"))]
    steps += [
        wide.select(rule=pl.lit(name), failed=pl.col(f"f{i}"), remaining=pl.col(f"r{i}"))
        for i, name in enumerate(names)
    ]
    out = pl.concat(steps).with_row_index("step")
    return out.with_columns(dropped=(pl.col("remaining").shift(1) - pl.col("remaining")).fill_null(0)).drop("step")


def length_bias(lf: pl.LazyFrame) -> pl.LazyFrame:
    """dpo rows: pairs, chosen longer than rejected (count, share) and the median chars ratio chosen/rejected."""
    dpo = lf.filter(pl.col("kind") == "dpo")
    chosen, rejected = pl.col("chosen").str.len_chars(), pl.col("rejected").str.len_chars()
    return dpo.select(
        pairs=pl.len().cast(pl.Int64),
        chosen_longer=(chosen > rejected).sum().cast(pl.Int64),
        share_chosen_longer=(chosen > rejected).mean(),
        median_len_ratio=pl.when(rejected > 0).then(chosen / rejected).median(),
    )


STAGE = Stage(
    name="gate",
    prefix="gate",
    version=1,
    config=GateConfig,
    transform=transform,
    reads=VIEW_READS,
    writes={"gate_pass": pl.Boolean, "gate_reasons": pl.List(pl.String)},
    doc=__doc__ or "",
)
