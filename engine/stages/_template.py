"""<One line: what the stage measures; flags, never drops.> Adds <prefix>_<what>, <prefix>_reason.

Copy to `engine/stages/<name>.py`, fill in, and add STAGE to the tuple in `engine/stages/__init__.py`.
Reason codes: <code> (when ...). Paper or peer followed: <reference>.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from engine.errors import ConfigError
from engine.stages.base import Stage
from engine.stages.views import response_text


@dataclass(frozen=True, slots=True, kw_only=True)
class TemplateConfig:
    threshold: float = 0.5

    def __post_init__(self) -> None:
        if not 0 <= self.threshold <= 1:
            msg = f"template: threshold must be in [0, 1], got {self.threshold}"
            raise ConfigError(msg)


def transform(lf: pl.LazyFrame, cfg: TemplateConfig) -> pl.LazyFrame:
    score = response_text().str.len_chars().cast(pl.Float64)
    return lf.with_columns(tmpl_score=score).with_columns(
        tmpl_reason=pl.when(pl.col("tmpl_score") < cfg.threshold).then(pl.lit("below_threshold"))
    )


STAGE = Stage(
    name="template",
    prefix="tmpl",
    version=1,
    config=TemplateConfig,
    transform=transform,
    reads=("kind", "response"),
    writes={"tmpl_score": pl.Float64, "tmpl_reason": pl.String},
)
