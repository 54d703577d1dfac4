"""MinHash signatures of the normalised dedup text, computed by numba kernels over Arrow buffers.

Adds `mh_sig`, a fixed-size uint32 array of `num_perm` values (datasketch 2.x `affine32` scheme,
bit-identical; see `engine.stages.dedup_kernels`), `mh_band`, the signature's LSH band hashes (one
uint64 per band; bands x rows from the threshold, see `engine.stages.lsh_bands`), and `mh_shingles`
(UInt32), the number of shingles of the row's dedup text: 0 for an empty text, 1 for one shorter than
`ngram` (its signature is coarse). The threshold and banding options are near_dedup's: give both
stages the same (`distill dedup` does), or near_dedup hashes `mh_sig` itself.
Shingles are word n-grams (`unit = "word"`, default 5) or code-point n-grams (`unit = "char"`). The
kernel reads the raw dedup text in place and normalises each row as it reads it (`dedup_text.KeyRows`).
`near_dedup` reads the band hashes; keeping them in the partitions means its global step reads only
narrow columns, never text (hashing the bands here, while the signatures are in memory, spares it
reading all of `mh_sig`: 0.1 s per 100K rows). The narrow `mh_shingles` beside them also lets a scan
that needs none of them count the file's rows without reading `mh_sig` (Polars reads one column of
every file it joins).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

import numpy as np
import polars as pl

from engine.errors import ConfigError
from engine.stages.base import Stage
from engine.stages.dedup_kernels import minhash_into, minhash_keys, permutations, shingle_sets
from engine.stages.dedup_text import TextKeyConfig, key_rows, raw_text
from engine.stages.lsh_bands import optimal_bands
from engine.stages.text_kernels import non_ascii, rows_using
from engine.stages.views import VIEW_READS


@dataclass(frozen=True, slots=True, kw_only=True)
class MinhashConfig(TextKeyConfig):
    stage_name: ClassVar[str] = "minhash"  # which stage's options an error names
    num_perm: int = 128
    ngram: int = 5
    unit: Literal["word", "char"] = "word"
    seed: int = 1
    shingle_seed: int = 0
    threshold: float = 0.8
    fp_weight: float = 0.02
    fn_weight: float = 0.98
    bands: int = 0  # 0: chosen from the threshold and weights
    rows: int = 0

    def __post_init__(self) -> None:
        TextKeyConfig.__post_init__(self)
        who = self.stage_name
        if not 0.0 < self.threshold < 1.0:
            msg = f"{who}: threshold must be in (0, 1), got {self.threshold}"
            raise ConfigError(msg)
        if self.fp_weight < 0 or self.fn_weight < 0 or self.fp_weight + self.fn_weight <= 0:
            msg = f"{who}: fp_weight and fn_weight must be >= 0 and not both 0, got {self.fp_weight}, {self.fn_weight}"
            raise ConfigError(msg)
        if (self.bands > 0) != (self.rows > 0) or self.bands < 0 or self.rows < 0:
            msg = f"{who}: set both bands and rows (> 0) or neither, got bands={self.bands} rows={self.rows}"
            raise ConfigError(msg)
        if not 1 <= self.num_perm <= 4096:
            msg = f"{who}: num_perm must be in 1..4096, got {self.num_perm}"
            raise ConfigError(msg)
        if not 1 <= self.ngram <= 64:
            msg = f"{who}: ngram must be in 1..64, got {self.ngram}"
            raise ConfigError(msg)


def banding(cfg: MinhashConfig) -> tuple[int, int]:
    """(bands, rows): as set, else chosen from the threshold and weights (`lsh_bands.optimal_bands`)."""
    if cfg.bands:
        if cfg.bands * cfg.rows > cfg.num_perm:
            msg = f"{cfg.stage_name}: bands x rows = {cfg.bands * cfg.rows} exceeds the {cfg.num_perm} signature values"
            raise ConfigError(msg)
        return cfg.bands, cfg.rows
    return optimal_bands(cfg.threshold, cfg.num_perm, cfg.fp_weight, cfg.fn_weight)


def sketch(text: pl.Series, cfg: MinhashConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The (rows x num_perm) uint32 signature matrix of raw dedup text (`raw_text`; the kernel normalises
    it as it reads), its (rows x bands) uint64 band hashes, and each row's shingle count."""
    a, b = permutations(cfg.num_perm, cfg.seed)
    bands, rows = banding(cfg)
    keys = key_rows(text, cfg)
    return minhash_keys(keys.args, cfg.ngram, cfg.unit == "char", np.uint64(cfg.shingle_seed), a, b, bands, rows)


def signatures(text: pl.Series, cfg: MinhashConfig) -> np.ndarray:
    """The (rows x num_perm) uint32 signature matrix of raw dedup text."""
    return sketch(text, cfg)[0]


def exact_sets(text: pl.Series, cfg: MinhashConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each row's sorted distinct shingle hashes under the same shingling as the signatures:
    (flat uint32, starts, counts), row r is flat[starts[r]:][:counts[r]] (`dedup_kernels.shingle_sets`)."""
    keys = key_rows(text, cfg)  # holds the memory keys.args points into
    return shingle_sets(keys.args, cfg.ngram, cfg.unit == "char", np.uint64(cfg.shingle_seed))


def transform(lf: pl.LazyFrame, cfg: MinhashConfig) -> pl.LazyFrame:
    bands, _ = banding(cfg)
    dtype = pl.Struct(
        {
            "mh_sig": pl.Array(pl.UInt32, cfg.num_perm),
            "mh_band": pl.Array(pl.UInt64, bands),
            "mh_shingles": pl.UInt32,
        }
    )

    def columns(s: pl.Series) -> pl.Series:
        sigs, band, shingles = sketch(s, cfg)
        cols = {"mh_sig": sigs, "mh_band": band, "mh_shingles": shingles}
        return pl.DataFrame(cols, schema=dtype.to_schema()).to_struct(s.name)

    mh = raw_text(cfg.fields).map_batches(columns, return_dtype=dtype, is_elementwise=True)
    return lf.with_columns(_mh=mh).unnest("_mh")


STAGE = Stage(
    name="minhash",
    prefix="mh",
    version=4,
    config=MinhashConfig,
    transform=transform,
    reads=VIEW_READS,
    writes={"mh_sig": pl.Array(pl.UInt32, 128), "mh_band": pl.Array(pl.UInt64, 17), "mh_shingles": pl.UInt32},
    kernels=(non_ascii, rows_using, minhash_into),
    doc=__doc__ or "",
)
