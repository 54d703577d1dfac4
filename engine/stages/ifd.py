"""Instruction-Following Difficulty (Cherry_LLM, Li et al., NAACL 2024) with a causal LM; flags, never drops.

Adds:
- ifd_loss_cond: mean cross-entropy (nats) of the answer tokens after the prompt (chat template by default).
- ifd_loss_uncond: the same answer tokens after the bare generation prompt (no instruction).
- ifd_score: PPL(A|Q) / PPL(A) = exp(ifd_loss_cond - ifd_loss_uncond), as the paper's reference code.
- ifd_answer_tokens: answer tokens scored (after truncation).
- ifd_valid: false where the score is >= 1, undefined, or the pair was truncated; ifd_reason says which:
  `not_helpful` (score >= 1: the instruction does not help the model), `undefined` (no prompt, e.g. text
  rows, or an empty answer), `truncated` (prompt + answer longer than max_length tokens).

Prompt/answer per kind follow `engine.stages.views`; chat rows are scored on their last assistant turn given
every turn before it. The model work (engine.models.causal_lm) runs once per partition inside
`map_batches`, in chunks of `chunk_rows`. The stage is `chunked`: the runner (local or a Ray task) sets
`SCRATCH` to the dataset's `stages/ifd/_chunks`, each chunk's scores are written there atomically under a
key of the config and the chunk's ids, so a run killed mid-partition resumes at the last finished chunk;
the runner deletes them once the stage is complete. Same rows and config give the same scores, so the bytes do not change.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import polars as pl
import xxhash

from engine import config as cfgmod
from engine.errors import ConfigError
from engine.models.causal_lm import PairEncoder, load_scorer, model_hash, resolve_model
from engine.stages.base import SCRATCH, Resources, Stage
from engine.stages.views import VIEW_READS, prompt_turns, response_text

VERSION = 1


@dataclass(frozen=True, slots=True, kw_only=True)
class IfdConfig:
    model: str = "smollm2"
    model_hash: str = ""  # filled from the model dir's bytes, so a changed model rescores
    backend: Literal["auto", "mlx", "torch"] = "auto"
    batch_tokens: int = 4096
    max_length: int = 1024
    template: Literal["auto", "chat", "plain"] = "auto"
    chunk_rows: int = 1000

    def __post_init__(self) -> None:
        for name in ("batch_tokens", "max_length", "chunk_rows"):
            if getattr(self, name) < 1:
                msg = f"ifd: {name} must be >= 1, got {getattr(self, name)}"
                raise ConfigError(msg)
        if self.max_length < 8:
            msg = f"ifd: max_length must be >= 8 tokens, got {self.max_length}"
            raise ConfigError(msg)
        try:
            path = resolve_model(self.model)
        except ConfigError:
            if self.model == "smollm2":
                return  # the default, not prepared yet: `transform` raises with the fix if rows need it
            raise
        actual = model_hash(path)
        if self.model_hash and self.model_hash != actual:
            msg = f"ifd: model {self.model!r} has content hash {actual}, the config says {self.model_hash!r}"
            raise ConfigError(msg)
        object.__setattr__(self, "model_hash", actual)


def _chunk_key(cfg: IfdConfig, ids: pl.Series) -> str:
    """The config (with the model's content hash) and the chunk's ids: a chunk is reused only for the same rows."""
    h = xxhash.xxh64(cfgmod.fingerprint(cfg, VERSION).encode())
    h.update("\x1f".join(ids.cast(pl.String).to_list()).encode())
    return h.hexdigest()


def _score_chunk(turns: list[Any], answers: list[Any], cfg: IfdConfig) -> dict[str, np.ndarray]:
    n = len(answers)
    out = {
        "ifd_loss_cond": np.full(n, np.nan),
        "ifd_loss_uncond": np.full(n, np.nan),
        "ifd_answer_tokens": np.zeros(n, dtype=np.uint32),
        "_truncated": np.zeros(n, dtype=bool),
    }
    todo = [i for i in range(n) if turns[i] and answers[i]]  # index selection, not per-row work
    if not todo:
        return out
    path = resolve_model(cfg.model)
    encoder = _encoder(path, cfg.template)
    enc = encoder.encode([turns[i] for i in todo], [answers[i] for i in todo])
    scorer = load_scorer(path, backend=cfg.backend, batch_tokens=cfg.batch_tokens, max_length=cfg.max_length)
    res = scorer.score_pairs(enc.prompts_ids, enc.answers_ids, enc.uncond_ids)
    idx = np.asarray(todo)
    out["ifd_loss_cond"][idx] = res.loss_cond
    out["ifd_loss_uncond"][idx] = res.loss_uncond
    out["ifd_answer_tokens"][idx] = res.n_answer_tokens
    out["_truncated"][idx] = res.truncated
    return out


_ENCODERS: dict[tuple[Path, str], PairEncoder] = {}


def _encoder(path: Path, template: str) -> PairEncoder:
    if (path, template) not in _ENCODERS:
        _ENCODERS.clear()
        _ENCODERS[path, template] = PairEncoder(path, template)  # type: ignore[arg-type]
    return _ENCODERS[path, template]


_SCORED = pl.Struct(
    {
        "ifd_loss_cond": pl.Float64,
        "ifd_loss_uncond": pl.Float64,
        "ifd_answer_tokens": pl.UInt32,
        "_truncated": pl.Boolean,
    }
)


def _score_rows(rows: pl.Series, cfg: IfdConfig) -> pl.Series:
    """Score a whole partition (a struct of id, turns, answer) chunk by chunk, reusing finished chunks."""
    df = rows.struct.unnest()
    if df.height and cfg.model_hash == "":
        resolve_model(cfg.model)  # raises the "not prepared" error with the fix
    chunk_dir = SCRATCH.get()
    parts: list[pl.DataFrame] = []
    for start in range(0, df.height, cfg.chunk_rows):
        chunk = df.slice(start, cfg.chunk_rows)
        cached = chunk_dir / f"{_chunk_key(cfg, chunk['id'])}.parquet" if chunk_dir else None
        if cached is not None and cached.exists():
            parts.append(pl.read_parquet(cached))
            continue
        scored = pl.DataFrame(
            _score_chunk(chunk["_ifd_turns"].to_list(), chunk["_ifd_answer"].to_list(), cfg), schema=_SCORED.to_schema()
        )
        if cached is not None:
            cached.parent.mkdir(parents=True, exist_ok=True)
            tmp = cached.with_name(f".{cached.name}.tmp-{os.getpid()}")
            scored.write_parquet(tmp)
            os.replace(tmp, cached)
        parts.append(scored)
    scored = pl.concat(parts) if parts else pl.DataFrame(schema=_SCORED.to_schema())
    return scored.with_columns(pl.col(pl.Float64).fill_nan(None)).to_struct("_ifd")


def transform(lf: pl.LazyFrame, cfg: IfdConfig) -> pl.LazyFrame:
    rows = pl.struct("id", "_ifd_turns", "_ifd_answer")
    scored = (
        lf.with_columns(_ifd_turns=prompt_turns(), _ifd_answer=response_text())
        .with_columns(_ifd=rows.map_batches(lambda s: _score_rows(s, cfg), return_dtype=_SCORED))
        .unnest("_ifd")
    )
    score = (pl.col("ifd_loss_cond") - pl.col("ifd_loss_uncond")).exp()
    reason = (
        pl.when(pl.col("ifd_score").is_null())
        .then(pl.lit("undefined"))
        .when(pl.col("_truncated"))
        .then(pl.lit("truncated"))
        .when(pl.col("ifd_score") >= 1)
        .then(pl.lit("not_helpful"))
    )
    return (
        scored.with_columns(ifd_score=score)
        .with_columns(ifd_reason=reason)
        .with_columns(ifd_valid=pl.col("ifd_reason").is_null())
        .drop("_ifd_turns", "_ifd_answer", "_truncated")
    )


def resources(cfg: IfdConfig) -> Resources:
    """A GPU per task where the cluster has GPUs (else CPUs), and room for the model and a batch."""
    del cfg
    return Resources(cpus=1, gpus=1, gpu_optional=True, memory_mb=2048)


STAGE = Stage(
    name="ifd",
    prefix="ifd",
    version=VERSION,
    chunked=True,
    config=IfdConfig,
    transform=transform,
    reads=(*VIEW_READS, "id", "system"),
    writes={
        "ifd_loss_cond": pl.Float64,
        "ifd_loss_uncond": pl.Float64,
        "ifd_score": pl.Float64,
        "ifd_answer_tokens": pl.UInt32,
        "ifd_valid": pl.Boolean,
        "ifd_reason": pl.String,
    },
    resources=resources,
    doc=__doc__ or "",
)
