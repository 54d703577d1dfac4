"""KenLM n-gram models: train an ARPA file (our own modified Kneser-Ney estimator), load it, score text.

Why our own estimator instead of KenLM's `lmplz`: `lmplz` is a C++ program that needs Boost headers
(apt) and a CMake build, which the PyPI `kenlm` package does not ship (it builds only the query
module). Counting n-grams with numpy and writing ARPA keeps the install to `pip install kenlm`; the
estimate follows lmplz step for step (`tests/models/test_kenlm_lm.py` checks it against an ARPA file
written by lmplz 0.3.0 on the same corpus), so `kenlm.Model` loads the file like any lmplz output.

The estimate (Chen & Goodman 1998, interpolated modified Kneser-Ney, with lmplz's conventions):
- each input line is one sentence `<s> w1 .. wn </s>`; words are space-separated tokens;
- adjusted counts: the highest order and n-grams that start with `<s>` keep their raw counts, every
  other n-gram counts its distinct left extensions;
- discounts per order from the counts of adjusted counts t1..t4: Y = t1 / (t1 + 2 t2),
  D_k = k - (k + 1) Y t_{k+1} / t_k (D_3 for counts >= 3); out of range or undefined discounts fall
  back to lmplz's `--discount_fallback` values (0.5, 1, 1.5);
- p(w | h) = (a(hw) - D(a(hw))) / sum_w' a(hw') + gamma(h) p(w | h'), with
  gamma(h) = (D_1 N_1(h .) + D_2 N_2(h .) + D_3 N_3+(h .)) / sum_w' a(hw'), the ARPA backoff of h;
- unigrams interpolate with the uniform distribution over the vocabulary (with `<unk>`, without
  `<s>`); `<unk>` gets only that share; `<s>` has probability 1 (log 0), as lmplz writes it.

Counting works on integer ids: an n-gram's key is (id of its (n-1)-gram prefix) * |V| + last word, so
every order is one `np.unique` over the corpus positions, and the suffix of an n-gram is the
(n-1)-gram that starts one position later. Memory is a few int64 arrays per corpus token: fine for
reference corpora of tens of millions of tokens, not for web-scale training (use lmplz there).

Texts must be normalised the same way for training and scoring: callers pass `normalize`, a function
from a list of raw strings to normalised, space-tokenised strings (the kenlm stage's CCNet-style one).
"""

from __future__ import annotations

import dataclasses
import math
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import xxhash

from engine.errors import ConfigError, InputError

Normalize = Callable[[list[str]], list[str]]
MAX_ORDER = 6
"""The PyPI kenlm module is built with KENLM_MAX_ORDER=6."""
FALLBACK_DISCOUNTS = (0.5, 1.0, 1.5)
ESTIMATOR_VERSION = 1  # bump when the ARPA bytes for the same input change
UNK, BOS, EOS = 0, 1, 2
SPECIALS = ("<unk>", "<s>", "</s>")
REFERENCE_CORPUS = Path(__file__).resolve().parents[2] / "data" / "sample" / "wiki_demo.txt"
REFERENCE_ORDER = 5


@dataclass(frozen=True, slots=True)
class TrainReport:
    path: Path
    order: int
    sentences: int
    tokens: int
    ngrams: tuple[int, ...]
    discounts: tuple[tuple[float, float, float], ...]
    fallback_orders: tuple[int, ...]


def _encode(sentences: Sequence[str]) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Word ids of `<s> w.. </s>` per sentence, concatenated; sentence number per position; the vocabulary."""
    words = [s.split() for s in sentences]
    vocab_words = sorted({w for ws in words for w in ws} - set(SPECIALS))
    vocab = [*SPECIALS, *vocab_words]
    index = {w: i for i, w in enumerate(vocab)}
    lengths = np.fromiter((len(ws) + 2 for ws in words), dtype=np.int64, count=len(words))
    flat = [index[w] for ws in words for w in ("<s>", *ws, "</s>")]
    # <s> and </s> inside a sentence stay what they are; a stray "<unk>" token maps to <unk>
    ids = np.asarray(flat, dtype=np.int64)
    sent = np.repeat(np.arange(len(words), dtype=np.int64), lengths)
    return ids, sent, vocab


def _discounts(adjusted: np.ndarray) -> tuple[tuple[float, float, float], bool]:
    """Modified Kneser-Ney discounts (Chen & Goodman eq. 26) from the counts of adjusted counts."""
    t = [int(np.count_nonzero(adjusted == k)) for k in range(1, 5)]
    if t[0] and t[1] and t[2]:
        y = t[0] / (t[0] + 2.0 * t[1])
        d = tuple(k - (k + 1) * y * t[k] / t[k - 1] for k in (1, 2, 3))
        if all(0.0 <= dk <= k for k, dk in zip((1, 2, 3), d, strict=True)):
            return (d[0], d[1], d[2]), False
    return FALLBACK_DISCOUNTS, True


@dataclass(slots=True)
class _Order:
    """The distinct n-grams of one order: a representative corpus position, adjusted count, log10 p, backoff."""

    pos: np.ndarray
    dense: np.ndarray  # dense id of the n-gram starting at each corpus position (-1: no full window)
    adjusted: np.ndarray
    logp: np.ndarray
    backoff: np.ndarray


def estimate(sentences: Sequence[str], order: int) -> tuple[list[str], np.ndarray, list[_Order], TrainReport]:
    """Count and smooth: the vocabulary, the corpus ids and every order's n-grams with probabilities."""
    if not 1 <= order <= MAX_ORDER:
        msg = f"kenlm: order must be in 1..{MAX_ORDER} (the kenlm module's KENLM_MAX_ORDER), got {order}"
        raise ConfigError(msg)
    ids, sent, vocab = _encode(sentences)
    n_vocab = len(vocab)
    n_pos = len(ids)
    if not sentences or n_vocab <= len(SPECIALS):
        msg = "kenlm: the training corpus has no words after normalisation"
        raise InputError(msg)

    dense: list[np.ndarray] = []
    reps: list[np.ndarray] = []
    raw: list[np.ndarray] = []
    for n in range(1, order + 1):
        valid = np.zeros(n_pos, dtype=bool)
        if n_pos >= n:
            valid[: n_pos - n + 1] = sent[: n_pos - n + 1] == sent[n - 1 :]
        if n == 1:
            key = ids.copy()
        else:
            prev = dense[-1]
            key = np.full(n_pos, -1, dtype=np.int64)
            key[valid] = prev[valid] * n_vocab + ids[np.flatnonzero(valid) + n - 1]
        _, first, inverse, counts = np.unique(key[valid], return_index=True, return_inverse=True, return_counts=True)
        d = np.full(n_pos, -1, dtype=np.int64)
        d[valid] = inverse
        dense.append(d)
        reps.append(np.flatnonzero(valid)[first])
        raw.append(counts.astype(np.int64))

    # adjusted counts and discounts per order
    orders: list[_Order] = []
    discounts: list[tuple[float, float, float]] = []
    fallback: list[int] = []
    for n in range(1, order + 1):
        pos = reps[n - 1]
        starts_bos = ids[pos] == BOS
        if n == order:
            adjusted = raw[n - 1].copy()
        else:
            ext = np.bincount(dense[n - 1][reps[n] + 1], minlength=len(pos))
            adjusted = np.where(starts_bos, raw[n - 1], ext)
        stats = adjusted[~starts_bos] if n == 1 else adjusted
        d, fell_back = _discounts(stats)
        discounts.append(d)
        if fell_back:
            fallback.append(n)
        orders.append(_Order(pos, dense[n - 1], adjusted, np.empty(0), np.empty(0)))

    # interpolate order by order; unigrams first (with <unk> and the uniform distribution)
    uni = orders[0]
    word = ids[uni.pos]
    unk_missing = not np.any(word == UNK)
    a1 = uni.adjusted.astype(np.float64)
    is_bos = word == BOS
    a1[is_bos] = 0.0
    d1 = discounts[0]
    denom = a1.sum()
    disc = _discount_of(a1, d1)
    gamma0 = _gamma_sum(a1, d1) / denom
    vocab_size = len(word) - int(is_bos.any()) + int(unk_missing)  # with <unk>, without <s>
    p1 = (a1 - disc) / denom + gamma0 / vocab_size
    p1[is_bos] = 1.0
    p1[word == UNK] = gamma0 / vocab_size
    probs = [p1]
    for n in range(2, order + 1):
        o = orders[n - 1]
        ctx = dense[n - 2][o.pos]
        suffix = dense[n - 2][o.pos + 1]
        a = o.adjusted.astype(np.float64)
        dn = discounts[n - 1]
        n_ctx = len(orders[n - 2].pos)
        denom_c = np.bincount(ctx, weights=a, minlength=n_ctx)
        gamma_c = np.bincount(ctx, weights=_gamma_parts(a, dn), minlength=n_ctx)
        has = denom_c > 0
        gamma_c[has] /= denom_c[has]
        p = (a - _discount_of(a, dn)) / denom_c[ctx] + gamma_c[ctx] * probs[-1][suffix]
        probs.append(p)
        # the backoff of an (n-1)-gram is its gamma as a context; 1 (log 0) when it is none
        prev = orders[n - 2]
        prev.backoff = np.where(has, np.log10(np.where(has, gamma_c, 1.0)), 0.0)
    for o, p in zip(orders, probs, strict=True):
        o.logp = np.minimum(0.0, np.log10(p))
        if o.backoff.size == 0:
            o.backoff = np.zeros(len(o.pos))
    if unk_missing:
        uni.pos = np.concatenate([np.array([-1]), uni.pos])  # -1: <unk>, not in the corpus
        uni.logp = np.concatenate([[math.log10(gamma0 / vocab_size)], uni.logp])
        uni.backoff = np.concatenate([[0.0], uni.backoff])
        uni.adjusted = np.concatenate([[0], uni.adjusted])
    n_sent = len(sentences)
    report = TrainReport(
        Path(),
        order,
        n_sent,
        n_pos - 2 * n_sent,
        tuple(len(o.pos) for o in orders),
        tuple(discounts),
        tuple(fallback),
    )
    return vocab, ids, orders, report


def _discount_of(a: np.ndarray, d: tuple[float, float, float]) -> np.ndarray:
    return np.select([a == 0, a == 1, a == 2], [0.0, d[0], d[1]], d[2])


def _gamma_parts(a: np.ndarray, d: tuple[float, float, float]) -> np.ndarray:
    """Each n-gram's share of its context's numerator D1 N1 + D2 N2 + D3 N3+ (its own discount, if a > 0)."""
    return _discount_of(a, d)


def _gamma_sum(a: np.ndarray, d: tuple[float, float, float]) -> float:
    return float(_gamma_parts(a, d).sum())


def _ngram_text(vocab: pa.Array, ids: np.ndarray, pos: np.ndarray, n: int) -> pa.Array:
    """The space-joined words of the n-grams at corpus positions `pos` (-1 stands for `<unk>`)."""
    cols = [vocab.take(pa.array(np.where(pos >= 0, ids[np.maximum(pos, 0) + k], UNK))) for k in range(n)]
    return pc.binary_join_element_wise(*cols, " ") if n > 1 else cols[0]


def _float_text(x: np.ndarray) -> pa.Array:
    """Shortest round-trip text of float32 values, as lmplz prints them."""
    return pc.cast(pa.array(x.astype(np.float32)), pa.string())


def write_arpa(vocab: list[str], ids: np.ndarray, orders: list[_Order], path: Path) -> None:
    """ARPA text as lmplz writes it: log10 p, n-gram, log10 backoff (none on the highest order); temp then rename."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    words = pa.array(vocab, pa.string())
    top = len(orders)
    with tmp.open("w", encoding="utf-8") as f:
        f.write("\\data\\\n")
        for n, o in enumerate(orders, start=1):
            f.write(f"ngram {n}={len(o.pos)}\n")
        for n, o in enumerate(orders, start=1):
            f.write(f"\n\\{n}-grams:\n")
            cols = [_float_text(o.logp), _ngram_text(words, ids, o.pos, n)]
            if n < top:
                cols.append(_float_text(o.backoff))
            lines = pc.binary_join_element_wise(*cols, "\t")
            f.write("\n".join(lines.to_pylist()))
            f.write("\n")
        f.write("\n\\end\\\n")
    tmp.replace(path)


def read_corpus(paths: Sequence[str | Path]) -> list[str]:
    """Non-blank lines of the corpus files (UTF-8), one training sentence each."""
    lines: list[str] = []
    for p in paths:
        path = Path(p)
        if not path.is_file():
            msg = f"{path}: no such corpus file; pass plain text files, one sentence or paragraph per line"
            raise InputError(msg)
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError as exc:
            msg = f"{path}: not UTF-8 text (byte {exc.start}); re-encode it as UTF-8"
            raise InputError(msg) from exc
        lines.extend(line for line in text.splitlines() if line.strip())
    return lines


def train(
    corpus: Sequence[str | Path], out: str | Path, *, order: int = REFERENCE_ORDER, normalize: Normalize
) -> TrainReport:
    """Train an interpolated modified Kneser-Ney model on the corpus files and write it as ARPA to `out`."""
    sentences = [s for s in normalize(read_corpus(corpus)) if s]
    return train_sentences(sentences, out, order=order)


def train_sentences(sentences: Sequence[str], out: str | Path, *, order: int) -> TrainReport:
    """Train on already normalised, space-tokenised sentences and write ARPA to `out`."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    vocab, ids, orders, report = estimate(sentences, order)
    write_arpa(vocab, ids, orders, out)
    return dataclasses.replace(report, path=out)


def file_hash(path: str | Path) -> str:
    """xxh64 of a model file's bytes: what a config records so that its fingerprint follows the model."""
    p = Path(path).expanduser()
    if not p.is_file():
        msg = f"kenlm: model {str(p)!r} does not exist; train one with `distill kenlm train --corpus FILE --out MODEL`"
        raise ConfigError(msg)
    h = xxhash.xxh64()
    with p.open("rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "distill"


def reference_hash(normalizer_version: int) -> str:
    """Identity of the bundled reference model: its corpus bytes, order and the recipe versions."""
    if not REFERENCE_CORPUS.is_file():
        msg = f"kenlm: the bundled reference corpus {REFERENCE_CORPUS} is missing; set model to a trained ARPA file"
        raise ConfigError(msg)
    blob = REFERENCE_CORPUS.read_bytes() + f"|o{REFERENCE_ORDER}|n{normalizer_version}|e{ESTIMATOR_VERSION}".encode()
    return "ref-" + xxhash.xxh64_hexdigest(blob)


def reference_model(normalize: Normalize, normalizer_version: int) -> Path:
    """The reference model trained from the bundled wiki text: from the cache, or trained (a few seconds) and cached."""
    path = cache_dir() / f"kenlm-wiki-{reference_hash(normalizer_version)}.arpa"
    if not path.is_file():
        train([REFERENCE_CORPUS], path, order=REFERENCE_ORDER, normalize=normalize)
    return path


@contextmanager
def _quiet_stderr() -> Iterator[None]:
    """Silence kenlm's C++ notes on fd 2 ("Loading the LM will be faster if you build a binary file")."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


@lru_cache(maxsize=4)
def _load(path: str, digest: str) -> Any:
    import kenlm

    del digest  # part of the cache key: a rewritten file is loaded again
    config = kenlm.Config()
    config.show_progress = False
    with _quiet_stderr():  # errors still arrive as Python exceptions with the message
        return kenlm.Model(path, config)


def load(path: str | Path, digest: str = "") -> Any:
    """A `kenlm.Model` for an ARPA (or KenLM binary) file, cached per (path, content hash)."""
    p = Path(path).expanduser()
    if not p.is_file():
        msg = f"kenlm: model {str(p)!r} does not exist; train one with `distill kenlm train --corpus FILE --out MODEL`"
        raise ConfigError(msg)
    try:
        return _load(str(p), digest or file_hash(p))
    except (OSError, RuntimeError) as exc:
        msg = f"kenlm: {str(p)!r} is not a model kenlm can load ({exc}); expected an ARPA or KenLM binary file"
        raise ConfigError(msg) from exc
