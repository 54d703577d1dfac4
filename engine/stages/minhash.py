"""MinHash signatures of the normalised dedup text, computed by numba kernels over Arrow buffers.

Adds `mh_sig`, a fixed-size uint32 array of `num_perm` values (datasketch 2.x `affine32` scheme,
bit-identical; see `engine.stages.dedup_kernels`). Shingles are word n-grams (`unit = "word"`,
default 5) or code-point n-grams (`unit = "char"`). `near_dedup` reads the signatures; keeping them
in the partitions means its global step reads only narrow columns, never text.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import polars as pl

from engine.errors import ConfigError
from engine.stages.base import Stage
from engine.stages.dedup_kernels import minhash_rows, permutations
from engine.stages.dedup_text import TextKeyConfig, key_text
from engine.stages.hash_kernels import string_buffers
from engine.stages.views import VIEW_READS


@dataclass(frozen=True, slots=True, kw_only=True)
class MinhashConfig(TextKeyConfig):
    num_perm: int = 128
    ngram: int = 5
    unit: Literal["word", "char"] = "word"
    seed: int = 1
    shingle_seed: int = 0

    def __post_init__(self) -> None:
        TextKeyConfig.__post_init__(self)
        if not 1 <= self.num_perm <= 4096:
            msg = f"minhash: num_perm must be in 1..4096, got {self.num_perm}"
            raise ConfigError(msg)
        if not 1 <= self.ngram <= 64:
            msg = f"minhash: ngram must be in 1..64, got {self.ngram}"
            raise ConfigError(msg)


def signatures(text: pl.Series, cfg: MinhashConfig) -> np.ndarray:
    """The (rows x num_perm) uint32 signature matrix of a string Series."""
    offsets, data = string_buffers(text.to_arrow())
    a, b = permutations(cfg.num_perm, cfg.seed)
    return minhash_rows(offsets, data, cfg.ngram, cfg.unit == "char", np.uint64(cfg.shingle_seed), a, b)


def transform(lf: pl.LazyFrame, cfg: MinhashConfig) -> pl.LazyFrame:
    dtype = pl.Array(pl.UInt32, cfg.num_perm)
    return lf.with_columns(
        mh_sig=key_text(cfg).map_batches(
            lambda s: pl.Series(s.name, signatures(s, cfg), dtype=dtype), return_dtype=dtype, is_elementwise=True
        )
    )


STAGE = Stage(
    name="minhash",
    prefix="mh",
    version=1,
    config=MinhashConfig,
    transform=transform,
    reads=VIEW_READS,
    writes={"mh_sig": pl.Array(pl.UInt32, 128)},
    doc=__doc__ or "",
)
