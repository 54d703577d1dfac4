"""The PyTorch CPU backend: transformers models from a local HF-layout dir, float32, same batching as MLX.

Why it exists: where MLX has neither an accelerator nor OpenBLAS (a Linux CPU without
libopenblas0-pthread), `--backend auto` falls back to it; it is also the second, independent path the
tests compare MLX against. On this 2-core machine with OpenBLAS, MLX batched ran 2.7x faster (bench/ifd.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from engine.models.causal_lm import BatchedScorer


@contextmanager
def no_progress_bars() -> Iterator[None]:
    """transformers 5 draws a "Loading weights" bar on stderr in every `from_pretrained`; distill reports
    its own progress (and `--quiet` means quiet), so loading draws none. The setting is restored after."""
    from transformers.utils import logging as hf_logging

    was = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was:
            hf_logging.enable_progress_bar()


class TorchScorer(BatchedScorer):
    """Answer losses with a transformers causal LM; see `engine.models.causal_lm` for the batching scheme."""

    backend = "torch"

    def __init__(self, model_dir: Path, *, batch_tokens: int = 4096, max_length: int = 1024, threads: int = 1) -> None:
        import torch
        from transformers import AutoModelForCausalLM

        torch.set_num_threads(threads)
        self.torch = torch
        with no_progress_bars():
            self.model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
        self.body = self.model.get_decoder()
        self.head = self.model.get_output_embeddings()
        self.batch_tokens = batch_tokens
        self.max_length = max_length
        self.pad_id = int(self.model.config.pad_token_id or 0)

    def forward(self, tokens: np.ndarray, positions: np.ndarray, targets: np.ndarray) -> np.ndarray:
        """NLL of `targets` at the flat `positions` of a right-padded batch; logits only at those positions."""
        torch = self.torch
        with torch.inference_mode():
            h = self.body(input_ids=torch.from_numpy(tokens.astype(np.int64)), use_cache=False).last_hidden_state
            h = h.reshape(-1, h.shape[-1])[torch.from_numpy(positions.astype(np.int64))]
            logits = self.head(h).float()
            tgt = torch.from_numpy(targets.astype(np.int64))
            nll = torch.logsumexp(logits, dim=-1) - logits.gather(1, tgt[:, None])[:, 0]
        return nll.numpy()

    def logits(self, tokens: np.ndarray) -> np.ndarray:
        """Full float32 logits of a batch (for checks and the bench's raw forward pass)."""
        with self.torch.inference_mode():
            return self.model(input_ids=self.torch.from_numpy(tokens.astype(np.int64))).logits.float().numpy()
