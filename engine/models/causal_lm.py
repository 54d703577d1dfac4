"""Causal-LM answer losses for IFD, batched: the backend-independent half (tokens, packing, losses).

A backend only runs `forward(tokens, positions, targets) -> nll`: the body of the model over a right-padded
(B, L) batch, then the output projection at the flat `positions` alone, and the float32 cross-entropy of
`targets` there. Everything else lives here, so MLX and PyTorch give the same numbers by construction:

- every pair becomes two sequences, `prompt + answer` and `uncond_prefix + answer`, and the loss is the mean
  negative log-likelihood of the answer tokens only (the Cherry_LLM reference code's masked labels);
- sequences are sorted by length and packed greedily so that rows x padded length <= `batch_tokens`;
  right padding needs no attention mask under a causal mask, so a row's loss does not depend on its
  batch mates (batched = one at a time, up to float rounding);
- only the answer positions go through the output projection (for SmolLM2-135M it is 21% of a token's
  FLOPs, and the prompt's share of them is wasted), and one batch of logits is alive at a time.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np
import xxhash

from engine.errors import ConfigError

MARKER = "distill-model.json"
"""Written by `prepare`: the source, the converter version and the content hash of a prepared dir."""
Backend = Literal["auto", "mlx", "torch"]
Template = Literal["auto", "chat", "plain"]
Forward = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]


@dataclass(frozen=True, slots=True)
class PairScores:
    """Per pair: mean answer NLL with and without the prompt (nats), answer tokens scored, truncated or not."""

    loss_cond: np.ndarray
    loss_uncond: np.ndarray
    n_answer_tokens: np.ndarray
    truncated: np.ndarray


class CausalLMScorer(Protocol):
    backend: str

    def score_pairs(
        self, prompts_ids: Sequence[np.ndarray], answers_ids: Sequence[np.ndarray], uncond_ids: np.ndarray
    ) -> PairScores: ...


class BatchedScorer:
    """What the backends share: `score_pairs` over their own `forward`, batched by `score_with`.

    A backend sets `batch_tokens`, `max_length`, `pad_id` and implements `forward`; `max_rows` is 1 on a
    CPU, so each sequence runs alone and scores are bit-identical whatever the partitioning (`plan_batches`).
    """

    backend: str
    batch_tokens: int
    max_length: int
    pad_id: int

    @property
    def max_rows(self) -> int | None:
        return 1

    def forward(self, tokens: np.ndarray, positions: np.ndarray, targets: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def score_pairs(
        self, prompts_ids: Sequence[np.ndarray], answers_ids: Sequence[np.ndarray], uncond_ids: np.ndarray
    ) -> PairScores:
        return score_with(
            self.forward,
            prompts_ids,
            answers_ids,
            uncond_ids,
            batch_tokens=self.batch_tokens,
            max_length=self.max_length,
            pad_id=self.pad_id,
            max_rows=self.max_rows,
        )


# ---------------------------------------------------------------- model dirs


_HASHES: dict[tuple[str, int, int], str] = {}


def model_hash(path: str | Path) -> str:
    """xxh3-64 of every file's bytes in a model dir (memoised by name, size, mtime): the model's identity."""
    h = xxhash.xxh3_64()
    for f in sorted(p for p in Path(path).iterdir() if p.is_file() and p.name != MARKER):
        st = f.stat()
        key = (str(f), st.st_size, st.st_mtime_ns)
        if key not in _HASHES:
            fh = xxhash.xxh3_64()
            with f.open("rb") as fp:
                while chunk := fp.read(1 << 24):
                    fh.update(chunk)
            _HASHES[key] = fh.hexdigest()
        h.update(f"{f.name}\x1f{_HASHES[key]}\x1e".encode())
    return h.hexdigest()


def resolve_model(model: str) -> Path:
    """A model name (`smollm2`) or a local HF-layout dir -> its path; a ConfigError with the fix otherwise."""
    from engine.models import smollm2

    if model == smollm2.NAME:
        path = smollm2.default_dir()
        if not (path / MARKER).exists():
            msg = f"ifd: model {model!r} is not prepared in {path}; run `distill models prepare smollm2` (no download)"
            raise ConfigError(msg)
        return path
    path = Path(model).expanduser()
    if not (path / "config.json").exists() or not (path / "tokenizer.json").exists():
        msg = (
            f"ifd: model {model!r}: expected a dir in Hugging Face layout (config.json, tokenizer.json, "
            f"*.safetensors), or the name 'smollm2' after `distill models prepare smollm2`"
        )
        raise ConfigError(msg)
    return path


# ---------------------------------------------------------------- tokens


@dataclass(frozen=True, slots=True)
class EncodedPairs:
    prompts_ids: list[np.ndarray]
    answers_ids: list[np.ndarray]
    uncond_ids: np.ndarray


class PairEncoder:
    """Tokenise whole columns: prompts through the chat template (or plain text), answers on their own.

    `chat`: the conversation before the answer, rendered with the model's chat template and its generation
    prompt (`<|im_start|>assistant\\n`); the unconditional prefix is that generation prompt alone.
    `plain`: the start token, the prompt, a blank line; the unconditional prefix is the start token alone.
    Answers are tokenised without special tokens, so both passes score the very same answer tokens.
    """

    def __init__(self, model_dir: Path, template: Template = "auto") -> None:
        from tokenizers import Tokenizer

        self.tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        cfg_path = model_dir / "tokenizer_config.json"
        tok_cfg: dict[str, Any] = json.loads(cfg_path.read_text()) if cfg_path.exists() else {}
        chat = tok_cfg.get("chat_template")
        if template == "chat" and not chat:
            msg = f"ifd: template 'chat': {cfg_path} has no chat_template; use --template plain"
            raise ConfigError(msg)
        self.template: str = "chat" if (template == "auto" and chat) or template == "chat" else "plain"
        self._jinja = None
        if self.template == "chat":
            from jinja2.ext import loopcontrols
            from jinja2.sandbox import ImmutableSandboxedEnvironment

            # the environment transformers renders chat templates in, so prompts match the model's training
            env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols])
            env.globals["raise_exception"] = _raise_template_error
            self._jinja = env.from_string(chat)
        start = _token_text(tok_cfg.get("bos_token")) or _token_text(tok_cfg.get("eos_token"))
        self._start = start or ""
        self._specials = {k: _token_text(tok_cfg.get(k)) for k in ("bos_token", "eos_token")}

    def _render(self, messages: list[dict[str, str]], generation: bool) -> str:
        assert self._jinja is not None
        return self._jinja.render(messages=messages, add_generation_prompt=generation, **self._specials)

    def _ids(self, texts: list[str]) -> list[np.ndarray]:
        enc = self.tokenizer.encode_batch_fast(texts, add_special_tokens=False)
        return [np.asarray(e.ids, dtype=np.int32) for e in enc]

    def uncond_text(self) -> str:
        if self.template == "plain":
            return self._start
        probe = [{"role": "user", "content": "x"}]
        full, bare = self._render(probe, True), self._render(probe, False)
        return full[len(bare) :] if full.startswith(bare) else ""

    def encode(self, prompts: Sequence[str | list[dict[str, str]] | None], answers: Sequence[str]) -> EncodedPairs:
        """`prompts[i]` is a string (one user turn) or a list of {role, content} turns; None means no prompt."""
        if self.template == "chat":
            texts = [
                self._render([{"role": "user", "content": p}] if isinstance(p, str) else list(p or []), True)
                for p in prompts
            ]
        else:
            texts = [
                self._start + (p if isinstance(p, str) else "\n".join(m["content"] for m in p or [])) + "\n\n"
                for p in prompts
            ]
        uncond = self._ids([self.uncond_text()])[0]
        if uncond.size == 0:
            msg = "ifd: the tokenizer has no start token and the template no generation prompt; use --template chat"
            raise ConfigError(msg)
        return EncodedPairs(self._ids(texts), self._ids(list(answers)), uncond)


def _raise_template_error(message: str) -> None:
    msg = f"ifd: the chat template refused a conversation: {message}"
    raise ConfigError(msg)


def _token_text(tok: Any) -> str | None:
    return tok.get("content") if isinstance(tok, dict) else tok


# ---------------------------------------------------------------- packing and losses


def truncate(prompt: np.ndarray, answer: np.ndarray, max_length: int) -> tuple[np.ndarray, np.ndarray, bool]:
    """Fit `prompt + answer` in `max_length`: keep the prompt's end (at least half the window) and the answer's start."""
    if prompt.size + answer.size <= max_length:
        return prompt, answer, False
    keep_p = min(prompt.size, max(max_length - answer.size, max_length // 2))
    return prompt[prompt.size - keep_p :], answer[: max_length - keep_p], True


PAD_MULTIPLE = 32
"""Sequences are padded to a multiple of this, and only sequences of the same padded width share a batch."""


def padded_width(lengths: np.ndarray) -> np.ndarray:
    return -(-lengths // PAD_MULTIPLE) * PAD_MULTIPLE


def plan_batches(lengths: np.ndarray, batch_tokens: int, max_rows: int | None = None) -> list[np.ndarray]:
    """Indices per batch: sequences of one padded width (longest first, stable), rows x width <= batch_tokens.

    One width per batch keeps padding under `PAD_MULTIPLE` tokens a row. `max_rows=1` (the CPU backends)
    puts every sequence in a batch of its own: BLAS kernels round differently for different numbers of
    rows, so only then is a row's loss the same bits whichever rows share its partition (the engine's
    "same output whatever the partitioning"); on a CPU batching bought under 10% (bench/ifd.py).
    """
    widths = padded_width(lengths)
    order = np.argsort(-widths, kind="stable")
    batches: list[np.ndarray] = []
    start = 0
    while start < order.size:
        width = int(widths[order[start]])
        end = start + int(np.searchsorted(-widths[order[start:]], -width, side="right"))
        rows = max(1, min(batch_tokens // max(width, 1), max_rows or order.size))
        batches += [order[i : min(i + rows, end)] for i in range(start, end, rows)]
        start = end
    return batches


def sequence_nll(
    seqs: Sequence[np.ndarray],
    starts: np.ndarray,
    forward: Forward,
    batch_tokens: int,
    pad_id: int = 0,
    max_rows: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Sum of NLL over tokens `seqs[i][starts[i]:]`, and their count, for every sequence, in packed batches."""
    lengths = np.fromiter((s.size for s in seqs), dtype=np.int64, count=len(seqs))
    sums = np.zeros(len(seqs), dtype=np.float64)
    counts = np.maximum(lengths - starts, 0)
    for idx in plan_batches(np.where(counts > 0, lengths, 0), batch_tokens, max_rows):
        idx = idx[counts[idx] > 0]
        if idx.size == 0:
            continue
        width = int(lengths[idx[0]]) if idx.size == 1 else int(padded_width(lengths[idx]).max())
        tokens = np.full((idx.size, width), pad_id, dtype=np.int32)
        for r, i in enumerate(idx):  # one copy per row: packing, not per-token work
            tokens[r, : lengths[i]] = seqs[i]
        # position p predicts token p + 1: the answer tokens [start, len) are predicted at [start - 1, len - 1)
        row = np.repeat(np.arange(idx.size), counts[idx])
        first = np.repeat(starts[idx] - 1 - np.cumsum(counts[idx]) + counts[idx], counts[idx])
        col = first + np.arange(row.size)
        nll = forward(tokens, row * width + col, tokens[row, col + 1])
        sums[idx] = np.bincount(row, weights=nll.astype(np.float64), minlength=idx.size)
    return sums, counts


def score_with(
    forward: Forward,
    prompts_ids: Sequence[np.ndarray],
    answers_ids: Sequence[np.ndarray],
    uncond_ids: np.ndarray,
    *,
    batch_tokens: int,
    max_length: int,
    pad_id: int = 0,
    max_rows: int | None = None,
) -> PairScores:
    """Both answer losses of every pair through one backend's `forward`, cond and uncond packed together."""
    n = len(answers_ids)
    seqs: list[np.ndarray] = []
    starts = np.zeros(2 * n, dtype=np.int64)
    truncated = np.zeros(n, dtype=bool)
    for i, (p, a) in enumerate(zip(prompts_ids, answers_ids, strict=True)):
        p = p if p.size else uncond_ids  # a row without prompt is scored against the bare prefix
        p, a, truncated[i] = truncate(p, a, max_length)
        u, _, _ = truncate(uncond_ids, a, max_length)
        seqs += [np.concatenate([p, a]), np.concatenate([u, a])]
        starts[2 * i], starts[2 * i + 1] = p.size, u.size
    sums, counts = sequence_nll(seqs, starts, forward, batch_tokens, pad_id, max_rows)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = sums / counts
    mean[counts == 0] = np.nan
    return PairScores(mean[0::2], mean[1::2], counts[0::2].astype(np.int32), truncated)


# ---------------------------------------------------------------- backends


def _torch_available() -> bool:
    try:
        import torch  # noqa: F401
        import transformers  # noqa: F401
    except ImportError:
        return False
    return True


def pick_backend(backend: Backend) -> str:
    """`auto`: MLX on Metal/CUDA, and on a CPU where OpenBLAS could be loaded (measured fastest, bench/ifd.py);
    PyTorch on a CPU without OpenBLAS, where MLX would run on its reference BLAS."""
    if backend != "auto":
        return backend
    from engine.models.causal_lm_mlx import fast_blas, mlx_accelerated

    if sys.platform == "darwin" or mlx_accelerated() or fast_blas():
        return "mlx"
    return "torch" if _torch_available() else "mlx"


_SCORERS: dict[tuple[Any, ...], CausalLMScorer] = {}


def load_scorer(
    model_dir: str | Path,
    *,
    backend: Backend = "auto",
    batch_tokens: int = 4096,
    max_length: int = 1024,
    threads: int | None = None,
) -> CausalLMScorer:
    """A scorer over a local HF-layout dir with the chosen backend (see `pick_backend`); the last one is reused."""
    chosen = pick_backend(backend)
    threads = threads or os.cpu_count() or 1
    key = (str(model_dir), model_hash(model_dir), chosen, batch_tokens, max_length, threads)
    if key not in _SCORERS:
        _SCORERS.clear()  # one model in memory at a time
        _SCORERS[key] = _build(Path(model_dir), chosen, batch_tokens, max_length, threads)
    return _SCORERS[key]


def _build(model_dir: Path, chosen: str, batch_tokens: int, max_length: int, threads: int) -> CausalLMScorer:
    if chosen == "mlx":
        from engine.models.causal_lm_mlx import MlxScorer

        return MlxScorer(Path(model_dir), batch_tokens=batch_tokens, max_length=max_length)
    if chosen == "torch":
        from engine.models.causal_lm_torch import TorchScorer

        return TorchScorer(Path(model_dir), batch_tokens=batch_tokens, max_length=max_length, threads=threads)
    msg = f"ifd: backend {chosen!r}: expected auto|mlx|torch"
    raise ConfigError(msg)
