"""A tiny Llama with random weights and a tokenizer trained here, saved in HF layout (the IFD tests' model)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import DATA

CHATML = (
    "{% for m in messages %}{{ '<|im_start|>' + m['role'] + '\\n' + m['content'] + '<|im_end|>\\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]


def build_tiny_llama(out: Path, *, seed: int = 0) -> Path:
    """Random-weight LlamaForCausalLM (2 layers, 64 wide, GQA) + byte-level BPE trained on real alpaca text."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM

    rows = json.loads((DATA / "alpaca_en_demo.json").read_text())[:300]
    texts = [r["instruction"] + "\n" + r["output"] for r in rows]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=512, special_tokens=SPECIALS, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tok.train_from_iterator(texts, trainer)
    out.mkdir(parents=True, exist_ok=True)
    tok.save(str(out / "tokenizer.json"))
    tok_cfg = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": "<|im_start|>",
        "eos_token": "<|im_end|>",
        "pad_token": "<|endoftext|>",
        "chat_template": CHATML,
    }
    (out / "tokenizer_config.json").write_text(json.dumps(tok_cfg))
    torch.manual_seed(seed)
    cfg = LlamaConfig(
        vocab_size=tok.get_vocab_size(),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=2048,
        rope_theta=10000.0,
        tie_word_embeddings=True,
        initializer_range=0.3,  # peaked next-token distributions, so loss differences are visible
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=0,
    )
    LlamaForCausalLM(cfg).save_pretrained(out)
    return out


@pytest.fixture(scope="session")
def tiny_llama(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_llama(tmp_path_factory.mktemp("tiny-llama"))


def test_tiny_llama_is_hf_layout_and_loads_with_mlx_lm(tiny_llama: Path) -> None:
    from mlx_lm.utils import load_model

    assert {"config.json", "model.safetensors", "tokenizer.json"} <= {p.name for p in tiny_llama.iterdir()}
    model, config = load_model(tiny_llama)
    assert config["num_hidden_layers"] == 2 and len(model.model.layers) == 2
