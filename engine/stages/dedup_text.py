"""What dedup compares: one normalised string per row, built from configurable fields.

Defaults per kind: sft instruction + input + response; chat the whole conversation; dpo prompt +
chosen; kto prompt + completion; rlvr problem + solution (or answer); text the text. `fields` names
canonical columns to use instead, for every kind (`messages` stands for the whole conversation).
Normalisation (NFKC, lower case, whitespace collapsed to single spaces, optionally punctuation
removed) runs in Polars before any kernel sees the bytes.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from engine.errors import ConfigError, did_you_mean
from engine.schema import dataset_polars_schema
from engine.stages.views import turns_text

KEY_READS = (
    "kind",
    "instruction",
    "input",
    "response",
    "messages",
    "prompt",
    "chosen",
    "completion",
    "problem",
    "solution",
    "answer",
    "text",
)


@dataclass(frozen=True, slots=True, kw_only=True)
class TextKeyConfig:
    fields: tuple[str, ...] = ()
    nfkc: bool = True
    casefold: bool = True
    collapse_whitespace: bool = True
    strip_punctuation: bool = False

    def __post_init__(self) -> None:
        names = [n for n, dtype in dataset_polars_schema().items() if dtype == pl.String or n == "messages"]
        for f in self.fields:
            if f not in names:
                msg = f"dedup fields: {f!r} is not a text column{did_you_mean(f, names)} (text columns: {', '.join(names)})"
                raise ConfigError(msg)


def _column_text(name: str) -> pl.Expr:
    return turns_text(pl.col("messages")) if name == "messages" else pl.col(name)


def _join(*names: str) -> pl.Expr:
    return pl.concat_str([_column_text(n) for n in names], separator="\n", ignore_nulls=True)


def raw_text(fields: tuple[str, ...] = ()) -> pl.Expr:
    """The row's dedup text before normalisation."""
    if fields:
        return _join(*fields)
    kind = pl.col("kind")
    return (
        pl.when(kind == "sft")
        .then(_join("instruction", "input", "response"))
        .when(kind == "chat")
        .then(_join("messages"))
        .when(kind == "dpo")
        .then(_join("prompt", "chosen"))
        .when(kind == "kto")
        .then(_join("prompt", "completion"))
        .when(kind == "rlvr")
        .then(pl.concat_str([pl.col("problem"), pl.coalesce("solution", "answer")], separator="\n", ignore_nulls=True))
        .otherwise(pl.col("text"))
    )


def key_text(cfg: TextKeyConfig) -> pl.Expr:
    """The normalised dedup text (never null: a row with none of the fields gives the empty string)."""
    text = raw_text(cfg.fields).fill_null("")
    if cfg.nfkc:
        text = text.str.normalize("NFKC")
    if cfg.casefold:
        text = text.str.to_lowercase()
    if cfg.strip_punctuation:
        text = text.str.replace_all(r"[^\w\s]", "")
    if cfg.collapse_whitespace:
        text = text.str.replace_all(r"\s+", " ").str.strip_chars(" ")
    return text
