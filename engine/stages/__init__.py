"""The registered stages, in one explicit tuple: no decorators, no entry points."""

from __future__ import annotations

from engine.errors import ConfigError, did_you_mean
from engine.stages import (
    composite,
    domain,
    embed,
    exact_dedup,
    gate,
    heuristic,
    ifd,
    kenlm,
    kenlm_bucket,
    length,
    minhash,
    near_dedup,
    semantic_dedup,
)
from engine.stages.base import Stage

STAGES: tuple[Stage, ...] = (
    length.STAGE,
    heuristic.STAGE,
    composite.STAGE,
    gate.STAGE,
    exact_dedup.STAGE,
    minhash.STAGE,
    near_dedup.STAGE,
    embed.STAGE,
    semantic_dedup.STAGE,
    domain.STAGE,
    kenlm.STAGE,
    kenlm_bucket.STAGE,
    ifd.STAGE,
)


def get_stage(name: str) -> Stage:
    """The registered stage called `name`."""
    for stage in STAGES:
        if stage.name == name:
            return stage
    names = [s.name for s in STAGES]
    msg = f"unknown stage {name!r}{did_you_mean(name, names)} (known: {', '.join(names)})"
    raise ConfigError(msg)
