"""The MLX backend: mlx-lm models from a local HF-layout dir, fast on Metal, CUDA and (with OpenBLAS) the CPU.

Why the BLAS dance: the mlx-cpu wheel for Linux links the reference BLAS (float32 matmul ~5 GFLOP/s on
this machine's kind). Loading an OpenBLAS with RTLD_GLOBAL *before* `mlx.core` is imported puts its
`cblas_sgemm` first in the global symbol scope, so libmlx binds to it (~120 GFLOP/s measured, same as
`LD_PRELOAD`), with no environment variable for the user to know about. Debian/Ubuntu ship it as
`libopenblas0-pthread`; `DISTILL_BLAS=/path/libopenblas.so` picks another. On a CPU without it the
backend refuses to run with the fix in the message rather than run 25x slower.

On the CPU quantised layers are dequantised to float32 (4-bit matmul there is ~10x slower); on an
accelerator the 4-bit weights stay.
"""

from __future__ import annotations

import ctypes
import glob
import os
import sys
from pathlib import Path

import numpy as np

from engine.errors import ConfigError
from engine.models.causal_lm import BatchedScorer

_BLAS_GLOBS = (
    "/usr/lib/*-linux-gnu/openblas-pthread/libopenblas.so.0",
    "/usr/lib/*-linux-gnu/libopenblas.so.0",
    "/usr/lib64/libopenblas.so.0",
)


def _openblas_candidates() -> list[str]:
    env = os.environ.get("DISTILL_BLAS")
    found = [p for pattern in _BLAS_GLOBS for p in sorted(glob.glob(pattern))]
    return ([env] if env else []) + found


def _mapped(fragment: str) -> bool:
    try:
        return fragment in Path("/proc/self/maps").read_text()
    except OSError:
        return False


def preload_blas() -> str | None:
    """Load OpenBLAS globally before mlx is imported (Linux only); the path loaded, or None."""
    if not sys.platform.startswith("linux"):
        return None
    if _mapped("libopenblas"):
        return "already loaded"
    if "mlx.core" in sys.modules:
        return None  # too late: libmlx has bound its BLAS symbols; see `require_fast_blas`
    for path in _openblas_candidates():
        try:
            ctypes.CDLL(path, mode=ctypes.RTLD_GLOBAL)
        except OSError:
            continue
        return path
    return None


BLAS = preload_blas()

import mlx.core as mx  # noqa: E402 - must follow preload_blas


def mlx_accelerated() -> bool:
    """MLX runs on a GPU here (Metal or CUDA)."""
    return mx.default_device().type == mx.DeviceType.gpu


def fast_blas() -> bool:
    """MLX's CPU matmuls run on OpenBLAS in this process."""
    return sys.platform.startswith("linux") and _mapped("libopenblas")


def require_fast_blas() -> None:
    """On a Linux CPU, fail with the fix when MLX would use its bundled reference BLAS."""
    if mlx_accelerated() or not sys.platform.startswith("linux") or _mapped("libopenblas"):
        return
    msg = (
        "ifd: backend 'mlx' on this CPU would use the mlx-cpu wheel's reference BLAS (~25x slower); "
        "install OpenBLAS (`apt-get install libopenblas0-pthread`, or set DISTILL_BLAS=/path/libopenblas.so) "
        "before engine.models.causal_lm_mlx is first imported, or use --backend torch"
    )
    raise ConfigError(msg)


LSE_ROWS = 1024
"""Answer positions per block of CPU logits (1024 x 49,152 float32 = 200 MB for SmolLM2)."""


class MlxScorer(BatchedScorer):
    """Answer losses with an mlx-lm model; see `engine.models.causal_lm` for the batching scheme."""

    backend = "mlx"

    def __init__(self, model_dir: Path, *, batch_tokens: int = 4096, max_length: int = 1024) -> None:
        from mlx_lm.utils import dequantize_model, load_model

        require_fast_blas()
        model, config = load_model(Path(model_dir))
        if not mlx_accelerated():
            model = dequantize_model(model)
            model.set_dtype(mx.float32)
        model.eval()
        self.model = model
        self.body = model.model
        self.head = model.model.embed_tokens.as_linear if config.get("tie_word_embeddings") else model.lm_head
        self.batch_tokens = batch_tokens
        self.max_length = max_length
        self.pad_id = int(config.get("pad_token_id") or 0)

    def forward(self, tokens: np.ndarray, positions: np.ndarray, targets: np.ndarray) -> np.ndarray:
        """NLL of `targets` at the flat `positions` of a right-padded batch; logits only at those positions.

        On a CPU the log-sum-exp over the vocabulary runs in numpy, in blocks of `LSE_ROWS` positions: MLX's
        CPU exp is scalar (~110M/s here, numpy ~670M/s with the copy), and the blocks bound the logits'
        memory. On an accelerator it stays in MLX.
        """
        h = self.body(mx.array(tokens))
        h = h.reshape(-1, h.shape[-1])[mx.array(positions.astype(np.int32))]
        if mlx_accelerated():
            logits = self.head(h).astype(mx.float32)
            tgt = mx.array(targets.astype(np.int32))
            nll = mx.logsumexp(logits, axis=-1) - mx.take_along_axis(logits, tgt[:, None], axis=-1)[:, 0]
            mx.eval(nll)
            return np.array(nll)
        mx.eval(h)
        out = np.empty(positions.size, dtype=np.float32)
        for lo in range(0, positions.size, LSE_ROWS):
            hi = min(lo + LSE_ROWS, positions.size)
            block = self.head(h[lo:hi]).astype(mx.float32)
            mx.eval(block)
            logits = np.array(block, copy=False)
            top = logits.max(axis=1)
            lse = np.log(np.exp(logits - top[:, None]).sum(axis=1)) + top
            out[lo:hi] = lse - logits[np.arange(hi - lo), targets[lo:hi]]
        return out

    def logits(self, tokens: np.ndarray) -> np.ndarray:
        """Full float32 logits of a batch (for checks and the bench's raw forward pass)."""
        out = self.model(mx.array(tokens)).astype(mx.float32)
        mx.eval(out)
        return np.array(out)

    @property
    def max_rows(self) -> int | None:
        return None if mlx_accelerated() else 1  # an accelerator packs batches by the token budget


__all__ = ["BLAS", "MlxScorer", "fast_blas", "mlx_accelerated", "mx", "preload_blas", "require_fast_blas"]
