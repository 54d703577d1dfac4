"""Prompt and response length in characters and approximate tokens; flags, never drops.

Adds len_prompt_chars, len_response_chars, len_prompt_tokens, len_response_tokens and len_reason
(`response_too_short`, `response_too_long`, `prompt_too_long`). Prompt and response are the per-kind
views of `engine.stages.views`; tokens are words plus punctuation marks.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from engine.errors import ConfigError
from engine.stages.base import Stage
from engine.stages.views import VIEW_READS, count_tokens, prompt_text, response_text


@dataclass(frozen=True, slots=True, kw_only=True)
class LengthConfig:
    min_response_chars: int = 1
    max_response_chars: int = 32_000
    max_prompt_chars: int = 32_000

    def __post_init__(self) -> None:
        if self.min_response_chars < 0 or self.max_response_chars < self.min_response_chars:
            msg = (
                f"length: need 0 <= min_response_chars <= max_response_chars, "
                f"got {self.min_response_chars} and {self.max_response_chars}"
            )
            raise ConfigError(msg)
        if self.max_prompt_chars < 0:
            msg = f"length: max_prompt_chars must be >= 0, got {self.max_prompt_chars}"
            raise ConfigError(msg)


def transform(lf: pl.LazyFrame, cfg: LengthConfig) -> pl.LazyFrame:
    prompt, response = prompt_text(), response_text()
    lf = lf.with_columns(
        len_prompt_chars=prompt.str.len_chars().cast(pl.UInt32),
        len_response_chars=response.str.len_chars().cast(pl.UInt32),
        len_prompt_tokens=count_tokens(prompt),
        len_response_tokens=count_tokens(response),
    )
    return lf.with_columns(
        len_reason=pl.when(pl.col("len_response_chars").fill_null(0) < cfg.min_response_chars)
        .then(pl.lit("response_too_short"))
        .when(pl.col("len_response_chars") > cfg.max_response_chars)
        .then(pl.lit("response_too_long"))
        .when(pl.col("len_prompt_chars").fill_null(0) > cfg.max_prompt_chars)
        .then(pl.lit("prompt_too_long"))
        .otherwise(pl.lit(None, pl.String))
    )


STAGE = Stage(
    name="length",
    prefix="len",
    version=1,
    config=LengthConfig,
    transform=transform,
    reads=VIEW_READS,
    writes={
        "len_prompt_chars": pl.UInt32,
        "len_response_chars": pl.UInt32,
        "len_prompt_tokens": pl.UInt32,
        "len_response_tokens": pl.UInt32,
        "len_reason": pl.String,
    },
    doc=__doc__ or "",
)
