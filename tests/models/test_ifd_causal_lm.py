"""IFD answer losses: batched = one at a time, MLX = PyTorch, and both = a plain transformers reference."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import engine.models.causal_lm_mlx  # noqa: F401 - loads OpenBLAS before anything imports mlx
from engine.models.causal_lm import PairEncoder, load_scorer, plan_batches, truncate
from tests.conftest import DATA
from tests.models.test_ifd_tiny import build_tiny_llama

TOL = 1e-4  # float32 sums in a different order: batched vs single, MLX vs PyTorch


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_llama(tmp_path_factory.mktemp("tiny"))


@pytest.fixture(scope="module")
def pairs() -> tuple[list[str], list[str]]:
    """Real pairs: 12 alpaca (short answers) and 12 GSM8K (longer reasoning)."""
    alpaca = json.loads((DATA / "alpaca_en_demo.json").read_text())[:12]
    gsm = [json.loads(x) for x in (DATA / "gsm8k_train.jsonl").read_text().splitlines()[:12]]
    prompts = [r["instruction"] + ("\n\n" + r["input"] if r["input"] else "") for r in alpaca] + [
        r["question"] for r in gsm
    ]
    answers = [r["output"] for r in alpaca] + [r["answer"] for r in gsm]
    return prompts, answers


def test_plan_batches_covers_every_row_once_within_budget() -> None:
    lengths = np.random.default_rng(0).integers(1, 300, 500)
    batches = plan_batches(lengths, 1024)
    flat = np.concatenate(batches)
    assert sorted(flat.tolist()) == list(range(500))
    assert all(b.size == 1 or b.size * lengths[b].max() <= 1024 for b in batches)
    padded = sum(b.size * (-(-lengths[b].max() // 32) * 32) for b in batches)
    assert padded <= lengths.sum() + 32 * lengths.size  # one width per batch: under 32 pad tokens a row
    assert all(b.size == 1 for b in plan_batches(lengths, 1024, max_rows=1))


def test_truncate_keeps_prompt_end_and_answer_start() -> None:
    p, a = np.arange(100), np.arange(1000, 1100)
    tp, ta, cut = truncate(p, a, 120)
    assert cut and tp.tolist() == list(range(40, 100)) and ta.tolist() == list(range(1000, 1060))
    assert truncate(p, a, 200)[2] is False


@pytest.mark.parametrize("backend", ["mlx", "torch"])
def test_batched_equals_one_at_a_time(tiny: Path, pairs: tuple[list[str], list[str]], backend: str) -> None:
    enc = PairEncoder(tiny).encode(*pairs)
    many = load_scorer(tiny, backend=backend, batch_tokens=2048, max_length=512)
    got = many.score_pairs(enc.prompts_ids, enc.answers_ids, enc.uncond_ids)
    one = load_scorer(tiny, backend=backend, batch_tokens=1, max_length=512)  # one sequence per batch
    for i in range(len(enc.answers_ids)):
        single = one.score_pairs(enc.prompts_ids[i : i + 1], enc.answers_ids[i : i + 1], enc.uncond_ids)
        assert abs(single.loss_cond[0] - got.loss_cond[i]) < TOL
        assert abs(single.loss_uncond[0] - got.loss_uncond[i]) < TOL
    assert np.all(got.n_answer_tokens > 0) and np.all(np.isfinite(got.loss_cond))
    assert np.ptp(got.loss_cond) > 0.1  # the tiny model's losses differ between rows


def test_mlx_and_torch_agree(tiny: Path, pairs: tuple[list[str], list[str]]) -> None:
    enc = PairEncoder(tiny).encode(*pairs)
    a = load_scorer(tiny, backend="mlx", max_length=512).score_pairs(enc.prompts_ids, enc.answers_ids, enc.uncond_ids)
    b = load_scorer(tiny, backend="torch", max_length=512).score_pairs(enc.prompts_ids, enc.answers_ids, enc.uncond_ids)
    np.testing.assert_allclose(a.loss_cond, b.loss_cond, atol=TOL)
    np.testing.assert_allclose(a.loss_uncond, b.loss_uncond, atol=TOL)
    assert (a.n_answer_tokens == b.n_answer_tokens).all()


def test_matches_per_example_transformers_reference(tiny: Path, pairs: tuple[list[str], list[str]]) -> None:
    """The Cherry_LLM reference computation: full forward, labels -100 before the answer, HF's mean CE loss."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny)
    model = AutoModelForCausalLM.from_pretrained(tiny, dtype=torch.float32).eval()
    prompts, answers = pairs
    ours = load_scorer(tiny, backend="mlx", max_length=2048)  # no truncation: the reference has none
    enc = PairEncoder(tiny).encode(prompts, answers)
    got = ours.score_pairs(enc.prompts_ids, enc.answers_ids, enc.uncond_ids)
    for i in range(0, len(answers), 5):
        prefix = tok.apply_chat_template(
            [{"role": "user", "content": prompts[i]}], add_generation_prompt=True, tokenize=False
        )
        for text, want in ((prefix, got.loss_cond[i]), ("<|im_start|>assistant\n", got.loss_uncond[i])):
            p = tok(text, add_special_tokens=False)["input_ids"]
            a = tok(answers[i], add_special_tokens=False)["input_ids"]
            ids = torch.tensor([p + a])
            labels = ids.clone()
            labels[0, : len(p)] = -100
            with torch.inference_mode():
                loss = model(input_ids=ids, labels=labels).loss.item()
            assert abs(loss - want) < TOL, (i, text[:20])


def test_truncated_pairs_are_flagged_and_scored_on_the_kept_answer(tiny: Path) -> None:
    enc = PairEncoder(tiny, "plain").encode(["Say it."], ["word " * 200])
    res = load_scorer(tiny, backend="mlx", max_length=64).score_pairs(enc.prompts_ids, enc.answers_ids, enc.uncond_ids)
    assert res.truncated.tolist() == [True]
    assert res.n_answer_tokens[0] == 64 - enc.prompts_ids[0].size


def test_chat_prompt_is_everything_before_the_answer(tiny: Path) -> None:
    turns = [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "hello"},
        {"role": "user", "content": "2+2?"},
    ]
    encoder = PairEncoder(tiny)
    enc = encoder.encode([turns], ["4"])
    text = encoder.tokenizer.decode(enc.prompts_ids[0].tolist(), skip_special_tokens=False)
    assert (
        text
        == "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\nhello<|im_end|>\n<|im_start|>user\n2+2?<|im_end|>\n<|im_start|>assistant\n"
    )
    assert encoder.tokenizer.decode(enc.uncond_ids.tolist(), skip_special_tokens=False) == "<|im_start|>assistant\n"
