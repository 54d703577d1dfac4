"""The training half of `distill experiment` against references: HF full-sequence losses, per-example greedy
decoding, LoRA's identity at step 0, and seed determinism."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from engine.models import finetune as ft
from engine.models.causal_lm import PairEncoder
from tests.conftest import DATA
from tests.models.test_ifd_tiny import build_tiny_llama

torch = pytest.importorskip("torch")


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_llama(tmp_path_factory.mktemp("ft-model"))


@pytest.fixture(scope="module")
def pairs(model_dir: Path) -> ft.TokenPairs:
    rows = json.loads((DATA / "alpaca_en_demo.json").read_text())[:48]
    enc = PairEncoder(model_dir).encode([r["instruction"] for r in rows], [r["output"] for r in rows])
    return ft.TokenPairs(enc.prompts_ids, enc.answers_ids)


FP32 = {"dtype": "fp32", "max_length": 256}


def test_eval_loss_matches_a_per_example_full_logits_loop(model_dir: Path, pairs: ft.TokenPairs) -> None:
    spec = ft.TrainSpec(method="full", **FP32)
    model = ft.build_model(model_dir, spec, 0)
    got = ft.evaluate_loss(model, pairs, spec, pad=0)
    total, count = 0.0, 0
    for p, a in zip(pairs.prompts, pairs.answers, strict=True):
        p, a, _ = ft.truncate(p, a, 256)
        ids = torch.from_numpy(np.concatenate([p, a]).astype(np.int64))[None]
        with torch.no_grad():
            logp = torch.log_softmax(model(input_ids=ids).logits[0].double(), -1)
        pos = torch.arange(p.size - 1, p.size + a.size - 1)
        total += float(-logp[pos, ids[0, pos + 1]].sum())
        count += a.size
    assert got["tokens"] == count
    assert got["loss"] == pytest.approx(total / count, rel=1e-5)


def test_lora_starts_as_the_base_model_and_trains_only_adapters(model_dir: Path, pairs: ft.TokenPairs) -> None:
    spec = ft.TrainSpec(method="lora", lora_rank=4, lora_targets=("q_proj", "v_proj"), **FP32)
    model = ft.build_model(model_dir, spec, 0)
    base = ft.build_model(model_dir, ft.TrainSpec(method="full", **FP32), 0)
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert len(trainable) == 2 * 2 * 2 and all("lora_" in n for n in trainable)  # 2 layers x q,v x A,B
    ids = torch.from_numpy(np.concatenate([pairs.prompts[0], pairs.answers[0]]).astype(np.int64))[None]
    with torch.no_grad():
        assert torch.allclose(model(input_ids=ids).logits, base(input_ids=ids).logits, atol=1e-6)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    ft.train(
        model,
        pairs,
        ft.TrainSpec(**{**ft.spec_dict(spec), "steps": 3, "lora_targets": ("q_proj", "v_proj")}),
        0,
        Path(pytest.importorskip("tempfile").mkdtemp()),
        key="k",
        eos=2,
        pad=0,
    )
    changed = {n for n, p in model.named_parameters() if not torch.equal(p, before[n])}
    assert changed and changed <= set(trainable)
    last = ft.TrainSpec(method="lora", lora_layers=1, **FP32)
    assert ft.apply_lora(ft.build_model(model_dir, ft.TrainSpec(method="full", **FP32), 0), last) == 7


def test_training_is_deterministic_given_the_seed(model_dir: Path, pairs: ft.TokenPairs, tmp_path: Path) -> None:
    spec = ft.TrainSpec(method="full", init="proxy", steps=12, batch_size=4, lr=3e-3, checkpoint_every=100, **FP32)
    curves = []
    for i, seed in enumerate((5, 5, 6)):
        m = ft.build_model(model_dir, spec, seed)
        curves.append(
            [c["loss"] for c in ft.train(m, pairs, spec, seed, tmp_path / str(i), key="k", eos=2, pad=0).curve]
        )
    assert curves[0] == curves[1] and curves[0] != curves[2]


def test_step_rows_cover_each_epoch_once_and_token_budget_sets_steps(pairs: ft.TokenPairs) -> None:
    rows = np.concatenate([ft.step_rows(10, 4, 3, s) for s in range(5)])  # 20 rows = 2 epochs of 10
    assert sorted(rows[:10]) == list(range(10)) and sorted(rows[10:]) == list(range(10))
    assert not np.array_equal(ft.step_rows(10, 4, 3, 0), ft.step_rows(10, 4, 4, 0))
    seqs, starts = ft.training_sequences(pairs, 256, eos=2)
    lengths = np.array([s.size for s in seqs])
    spec = ft.TrainSpec(tokens=5000, steps=0, batch_size=4, **FP32)
    steps = ft.plan_steps(starts, lengths, spec, 0)
    seen = [int((lengths - starts)[ft.step_rows(len(seqs), 4, 0, s)].sum()) for s in range(steps)]
    assert sum(seen) >= 5000 > sum(seen[:-1])


def test_batched_greedy_matches_per_example_generate(model_dir: Path, pairs: ft.TokenPairs) -> None:
    spec = ft.TrainSpec(method="full", **FP32)
    model = ft.build_model(model_dir, spec, 0)
    prompts = pairs.prompts[:5]
    got = ft.greedy(model, prompts, spec, max_new_tokens=8, eos=2, pad=0)
    for p, g in zip(prompts, got, strict=True):
        ids = torch.from_numpy(p.astype(np.int64))[None]
        with torch.no_grad():
            ref = model.generate(input_ids=ids, max_new_tokens=8, do_sample=False, pad_token_id=0, eos_token_id=2)
        ref = ref[0, p.size :].numpy()
        stop = np.flatnonzero(ref == 2)
        np.testing.assert_array_equal(g, ref[: stop[0]] if stop.size else ref)


def test_token_pairs_round_trip(pairs: ft.TokenPairs, tmp_path: Path) -> None:
    pairs.save(tmp_path / "p.npz")
    back = ft.TokenPairs.load(tmp_path / "p.npz")
    assert len(back) == len(pairs)
    assert all(np.array_equal(a, b) for a, b in zip(back.answers, pairs.answers, strict=True))
    assert all(np.array_equal(a, b) for a, b in zip(back.prompts, pairs.prompts, strict=True))


def test_gradient_checkpointing_changes_memory_not_results(
    model_dir: Path, pairs: ft.TokenPairs, tmp_path: Path
) -> None:
    curves = []
    for on in (True, False):
        spec = ft.TrainSpec(method="lora", steps=4, batch_size=4, lora_rank=4, grad_checkpointing=on, **FP32)
        m = ft.build_model(model_dir, spec, 0)
        assert m.get_decoder().gradient_checkpointing is on
        run = ft.train(m, pairs, spec, 0, tmp_path / str(on), key="k", eos=2, pad=0)
        curves.append([c["loss"] for c in run.curve])
    assert curves[0] == curves[1]
