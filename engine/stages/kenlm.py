"""KenLM perplexity of each row's text under an n-gram model; scores, never drops. Adds kenlm_ppl.

`kenlm_ppl` (Float64): 10 ** (-log10 p(<s> text </s>) / (tokens + 1)), what `kenlm.Model.perplexity`
gives for the normalised text; null when the text is null. Lower is closer to the model's corpus
(CCNet: Wenzek et al. 2020, "CCNet: Extracting High Quality Monolingual Datasets from Web Crawl Data").
The `kenlm_bucket` stage then cuts the global percentiles into head/middle/tail.

Text: the row's main text (`field = "response"`: the response view of `engine.stages.views`, i.e. the
text of a text row), or `"prompt"`, or any canonical string column ("instruction", "text", ...).
The whole text is one sequence: newlines are spaces, so one `Model.score` call per row.

Normalisation (`normalize`, the same function trains the model): CCNet's text_normalizer with
`accent=True, case=True, numbers=True, punct=1` — lower case, accents stripped (NFD, combining marks
dropped), every digit -> 0, Unicode quotes/dashes/ellipses and full-width punctuation -> ASCII,
control characters dropped — then, because we have no SentencePiece model, tokens are runs of word
characters or single punctuation marks, joined by single spaces.

Model: `model = ""` is the bundled reference model, 5-gram modified Kneser-Ney trained from
data/sample/wiki_demo.txt on first use and cached in `~/.cache/distill/`; or a path to an ARPA/KenLM
binary file. `model_hash` records the file's xxh64 (filled in when empty), so the config fingerprint,
and so every partition's, changes when the model does; a given hash that no longer matches is an error.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa

from engine.errors import ConfigError
from engine.models import kenlm_lm, kenlm_workers
from engine.stages.base import Stage
from engine.stages.hash_kernels import string_buffers
from engine.stages.kenlm_kernels import TABLE_SIZE, CharTable, char_table, normalize_fast
from engine.stages.views import VIEW_READS, prompt_text, response_text

NORMALIZER_VERSION = 1  # bump when `normalize` changes its output: the reference model is retrained
_PUNCT = {
    "，": ",",
    "。": ". ",
    "、": ",",
    "”": '"',
    "“": '"',
    "∶": ":",
    "：": ":",
    "？": "?",
    "《": '"',
    "》": '"',
    "）": ")",
    "！": "!",
    "（": "(",
    "；": ";",
    "」": '"',
    "「": '"',
    "『": '"',
    "』": '"',
    "〈": "<",
    "〉": ">",
    "【": "[",
    "】": "]",
    "％": "%",
    "►": "-",
    "–": "-",
    "—": "-",
    "―": "-",
    "‐": "-",
    "‑": "-",
    "’": "'",
    "‘": "'",
    "‚": "'",
    "´": "'",
    "`": "'",
    "»": '"',
    "«": '"',
    "„": '"',
    "…": "...",
}
_PUNCT_KEYS = list(_PUNCT)
_PUNCT_VALUES = list(_PUNCT.values())
TOKEN = r"\w+|[^\w\s]"
"""A token: a run of word characters or one punctuation mark (after normalisation)."""
FIELDS_VIEWS = ("response", "prompt")
STRING_FIELDS = (
    "instruction",
    "input",
    "prompt",
    "chosen",
    "rejected",
    "completion",
    "problem",
    "solution",
    "answer",
    "text",
)


def normalize_chars(text: pl.Expr) -> pl.Expr:
    """The character steps of `normalize`: case, accents, controls, punctuation, digits."""
    t = text.str.to_lowercase().str.normalize("NFD").str.replace_all(r"\p{Mn}+", "").str.replace_all(r"\p{Cc}", " ")
    return t.str.replace_many(_PUNCT_KEYS, _PUNCT_VALUES).str.replace_all(r"\d", "0")


def normalize(text: pl.Expr) -> pl.Expr:
    """CCNet-style normalisation and tokenisation of a string column (see the module docstring)."""
    return normalize_chars(text).str.extract_all(TOKEN).list.join(" ")


@lru_cache(maxsize=1)
def _char_table() -> CharTable:
    """What `normalize_chars` makes of each code point below `TABLE_SIZE`, for the numba fast path."""
    # surrogates never occur in UTF-8 text; "" keeps them out of the way
    codes = [chr(cp) if not 0xD800 <= cp < 0xE000 else "" for cp in range(TABLE_SIZE)]
    chars = pl.Series("c", codes, dtype=pl.String).to_frame()
    r = chars.select(
        out=normalize_chars(pl.col("c")),
        word=normalize_chars(pl.col("c")).str.contains(r"^\w+$"),
        space=normalize_chars(pl.col("c")).str.contains(r"^\s+$"),
        punct=normalize_chars(pl.col("c")).str.contains(r"^[^\w\s]+$"),
    )
    return char_table(r["out"].to_list(), r["word"].to_numpy(), r["space"].to_numpy(), r["punct"].to_numpy())


def _normalize_counted(texts: pl.Series) -> tuple[pl.Series, np.ndarray]:
    """`normalize` over a Series (nulls as "") and each row's token count.

    Rows the kernel's table covers take one numba pass; the rest (emoji, CJK, ...) the Polars expression.
    """
    texts = texts.fill_null("").rechunk()  # one Arrow buffer for the kernel
    offsets, data, tokens, fallback = normalize_fast(*string_buffers(texts.to_arrow()), _char_table())
    arr = pa.LargeStringArray.from_buffers(len(offsets) - 1, pa.py_buffer(offsets), pa.py_buffer(data))
    out = pl.Series(texts.name, arr, dtype=pl.String)
    rows = np.flatnonzero(fallback)
    if len(rows):
        other = texts.gather(rows).to_frame("t").select(normalize(pl.col("t")))["t"]
        out = out.scatter(rows, other)
        tokens[rows] = (other.str.count_matches(" ", literal=True) + (other != "").cast(pl.UInt32)).to_numpy()
    return out, tokens


def normalize_series(texts: pl.Series) -> pl.Series:
    """`normalize` over a Series, nulls as "" (the fast path of the kernel where it applies)."""
    return _normalize_counted(texts)[0]


def normalize_texts(texts: list[str]) -> list[str]:
    """`normalize_series` over a list of strings: what training uses, so it sees the tokens scoring sees."""
    return normalize_series(pl.Series("t", texts, dtype=pl.String)).to_list()


def perplexity(texts: pl.Series, model: Any, processes: int = 1) -> pl.Series:
    """10 ** (-log10 p / (tokens + 1)) of each text, normalised first: `kenlm.Model.perplexity`, batched.

    `processes` > 1 scores on that many processes (`engine.models.kenlm_workers`), shares balanced by tokens.
    """
    norm, tokens = _normalize_counted(texts)
    logp = kenlm_workers.workers(model, processes).score(norm.to_list(), cost=tokens + 1)
    ppl = pl.Series(texts.name, np.power(10.0, -logp / (tokens + 1)), dtype=pl.Float64)
    return ppl if not texts.has_nulls() else pl.select(pl.when(texts.is_not_null()).then(ppl)).to_series()


@dataclass(frozen=True, slots=True, kw_only=True)
class KenlmConfig:
    model: str = ""  # an ARPA or KenLM binary file; "" = the bundled wiki reference model
    model_hash: str = ""  # xxh64 of the model file; filled in when empty
    field: str = "response"

    def __post_init__(self) -> None:
        if self.field not in (*FIELDS_VIEWS, *STRING_FIELDS):
            msg = f"kenlm: field must be one of {', '.join((*FIELDS_VIEWS, *STRING_FIELDS))}, got {self.field!r}"
            raise ConfigError(msg)
        actual = kenlm_lm.reference_hash(NORMALIZER_VERSION) if not self.model else kenlm_lm.file_hash(self.model)
        if self.model_hash and self.model_hash != actual:
            msg = (
                f"kenlm: model {self.model or 'reference'!r} has hash {actual}, not the configured model_hash "
                f"{self.model_hash}; the model changed: drop model_hash (or set it to {actual}) to rescore"
            )
            raise ConfigError(msg)
        object.__setattr__(self, "model_hash", actual)

    def model_path(self) -> str:
        if self.model:
            return self.model
        return str(kenlm_lm.reference_model(normalize_texts, NORMALIZER_VERSION))


def row_text(field: str) -> pl.Expr:
    """The text a row is scored on: a per-kind view or a canonical column."""
    if field == "response":
        return response_text()
    if field == "prompt":
        return prompt_text()
    return pl.col(field)


def transform(lf: pl.LazyFrame, cfg: KenlmConfig) -> pl.LazyFrame:
    # loaded here, not in the batch function, so a bad model is a ConfigError before Polars runs
    model = kenlm_lm.load(cfg.model_path(), cfg.model_hash)
    # One call per partition, on as many processes as Polars has threads (on Ray: the task's CPUs), since
    # Model.score holds the GIL; the call already uses every core, so Polars need not split the column.
    processes = pl.thread_pool_size()
    kenlm_workers.workers(model, processes)  # forked here, before Polars' threads are busy
    ppl = row_text(cfg.field).map_batches(lambda s: perplexity(s, model, processes), return_dtype=pl.Float64)
    return lf.with_columns(kenlm_ppl=ppl)


STAGE = Stage(
    name="kenlm",
    prefix="kenlm",
    version=1,
    config=KenlmConfig,
    transform=transform,
    reads=(*VIEW_READS, "rejected"),
    writes={"kenlm_ppl": pl.Float64},
    doc=__doc__ or "",
)
