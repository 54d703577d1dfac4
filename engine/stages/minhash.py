"""MinHash signatures of the normalised dedup text, computed by numba kernels over Arrow buffers.

Adds `mh_sig`, a fixed-size uint32 array of `num_perm` values (datasketch 2.x `affine32` scheme,
bit-identical; see `engine.stages.dedup_kernels`), and `mh_shingles` (UInt32), the number of shingles
of the row's dedup text: 0 for an empty text, 1 for one shorter than `ngram` (its signature is coarse).
Shingles are word n-grams (`unit = "word"`, default 5) or code-point n-grams (`unit = "char"`). The
kernel reads the raw dedup text in place and normalises each row as it reads it (`dedup_text.KeyRows`).
`near_dedup` reads the signatures; keeping them in the partitions means its global step reads only
narrow columns, never text. The narrow `mh_shingles` beside them also lets a scan that needs neither
count the file's rows without reading `mh_sig` (Polars reads one column of every file it joins).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import polars as pl

from engine.errors import ConfigError
from engine.stages.base import Stage
from engine.stages.dedup_kernels import minhash_keys, permutations
from engine.stages.dedup_text import TextKeyConfig, key_rows, raw_text
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


def sketch(text: pl.Series, cfg: MinhashConfig) -> tuple[np.ndarray, np.ndarray]:
    """The (rows x num_perm) uint32 signature matrix of raw dedup text (`raw_text`; the kernel normalises
    it as it reads), and each row's shingle count."""
    a, b = permutations(cfg.num_perm, cfg.seed)
    keys = key_rows(text, cfg)
    return minhash_keys(keys.args, cfg.ngram, cfg.unit == "char", np.uint64(cfg.shingle_seed), a, b)


def signatures(text: pl.Series, cfg: MinhashConfig) -> np.ndarray:
    """The (rows x num_perm) uint32 signature matrix of raw dedup text."""
    return sketch(text, cfg)[0]


def transform(lf: pl.LazyFrame, cfg: MinhashConfig) -> pl.LazyFrame:
    dtype = pl.Struct({"mh_sig": pl.Array(pl.UInt32, cfg.num_perm), "mh_shingles": pl.UInt32})

    def columns(s: pl.Series) -> pl.Series:
        sigs, shingles = sketch(s, cfg)
        return pl.DataFrame({"mh_sig": sigs, "mh_shingles": shingles}, schema=dtype.to_schema()).to_struct(s.name)

    mh = raw_text(cfg.fields).map_batches(columns, return_dtype=dtype, is_elementwise=True)
    return lf.with_columns(_mh=mh).unnest("_mh")


STAGE = Stage(
    name="minhash",
    prefix="mh",
    version=3,
    config=MinhashConfig,
    transform=transform,
    reads=VIEW_READS,
    writes={"mh_sig": pl.Array(pl.UInt32, 128), "mh_shingles": pl.UInt32},
    doc=__doc__ or "",
)
