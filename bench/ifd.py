"""IFD on SmolLM2-135M-Instruct: our batched scorer beside per-example loops, side by side in one run.

    python bench/ifd.py [--rows 8] [--repeat 3] [--batch-tokens 4096]

Pairs: the first `--rows` GSM8K train and `--rows` alpaca rows of ../shared/data, chat template, two passes
per pair (with and without the instruction). Methods, each timed from token ids (ours) or text (loops):
- ours auto / ours mlx / ours torch: `load_scorer(...).score_pairs` (sorted, packed by token budget,
  output projection at answer positions only); auto is what `distill ifd` picks on this machine;
- mlx per-example: one pair at a time through the mlx-lm model, full logits, masked float32 CE;
- transformers per-example: the Cherry_LLM reference scheme (tokenise, `model(ids, labels=masked)` per
  pass, `.loss`), float32, PyTorch CPU;
- raw mlx forward: `model(tokens)` (body + full output projection) over the very batches `ours mlx` forms,
  no loss: the yardstick for "the MLX backend >= 0.85 of the raw forward pass".
Reported: pairs/s and answer tokens/s (medians of `--repeat`), ratios to the transformers loop, and the
largest IFD difference to it. Needs `distill models prepare smollm2` (done here if missing).
"""

# ruff: noqa: E402 - imports follow the sys.path fix below
from __future__ import annotations

import sys
from pathlib import Path

# a script's own dir comes first on sys.path, and bench/select.py would shadow the stdlib's `select`
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import argparse
import json
import statistics
import time
from collections.abc import Callable

import numpy as np

import engine.models.causal_lm_mlx as mlx_backend  # first: loads OpenBLAS before mlx
from engine.models import smollm2
from engine.models.causal_lm import PairEncoder, load_scorer, padded_width, pick_backend, plan_batches

mx = mlx_backend.mx
DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def load_pairs(rows: int) -> tuple[list[str], list[str]]:
    gsm = [json.loads(x) for x in (DATA / "gsm8k_train.jsonl").read_text().splitlines()[:rows]]
    alpaca = json.loads((DATA / "alpaca_en_demo.json").read_text())[:rows]
    prompts = [r["question"] for r in gsm] + [
        r["instruction"] + ("\n\n" + r["input"]) * bool(r["input"]) for r in alpaca
    ]
    return prompts, [r["answer"] for r in gsm] + [r["output"] for r in alpaca]


def mlx_per_example(model_dir: Path, prompts: list[str], answers: list[str]) -> Callable[[], np.ndarray]:
    scorer = load_scorer(model_dir, backend="mlx")
    encoder = PairEncoder(model_dir)

    def run() -> np.ndarray:
        out = []
        for p, a in zip(prompts, answers, strict=True):
            enc = encoder.encode([p], [a])
            losses = []
            for prefix in (enc.prompts_ids[0], enc.uncond_ids):
                ids = np.concatenate([prefix, enc.answers_ids[0]])[None, :]
                logits = scorer.model(mx.array(ids)).astype(mx.float32)[0, prefix.size - 1 : -1]
                tgt = mx.array(ids[0, prefix.size :])
                nll = mx.logsumexp(logits, axis=-1) - mx.take_along_axis(logits, tgt[:, None], axis=-1)[:, 0]
                losses.append(float(nll.mean().item()))
            out.append(np.exp(losses[0] - losses[1]))
        return np.asarray(out)

    return run


def transformers_per_example(model_dir: Path, prompts: list[str], answers: list[str]) -> Callable[[], np.ndarray]:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    header = "<|im_start|>assistant\n"

    def loss(prefix: str, answer: str) -> float:
        p = tok(prefix, add_special_tokens=False)["input_ids"]
        ids = torch.tensor([p + tok(answer, add_special_tokens=False)["input_ids"]])
        labels = ids.clone()
        labels[0, : len(p)] = -100
        with torch.no_grad():
            return float(model(input_ids=ids, labels=labels).loss)

    def run() -> np.ndarray:
        out = []
        for p, a in zip(prompts, answers, strict=True):
            prefix = tok.apply_chat_template(
                [{"role": "user", "content": p}], add_generation_prompt=True, tokenize=False
            )
            out.append(np.exp(loss(prefix, a) - loss(header, a)))
        return np.asarray(out)

    return run


def ours(model_dir: Path, backend: str, prompts: list[str], answers: list[str], batch_tokens: int):  # type: ignore[no-untyped-def]
    scorer = load_scorer(model_dir, backend=backend, batch_tokens=batch_tokens)  # type: ignore[arg-type]
    encoder = PairEncoder(model_dir)

    def run() -> np.ndarray:
        enc = encoder.encode(prompts, answers)
        res = scorer.score_pairs(enc.prompts_ids, enc.answers_ids, enc.uncond_ids)
        return np.exp(res.loss_cond - res.loss_uncond)

    return run


def raw_mlx_forward(model_dir: Path, prompts: list[str], answers: list[str], batch_tokens: int):  # type: ignore[no-untyped-def]
    """The batches `ours mlx` runs (same sequences, same packing), through `model(tokens)` alone."""
    scorer = load_scorer(model_dir, backend="mlx", batch_tokens=batch_tokens)
    enc = PairEncoder(model_dir).encode(prompts, answers)
    seqs = [
        np.concatenate([x, a])
        for p, a in zip(enc.prompts_ids, enc.answers_ids, strict=True)
        for x in (p, enc.uncond_ids)
    ]
    lengths = np.array([s.size for s in seqs])
    batches = []
    max_rows = None if mlx_backend.mlx_accelerated() else 1  # as MlxScorer.score_pairs
    for idx in plan_batches(lengths, batch_tokens, max_rows):
        width = lengths[idx[0]] if idx.size == 1 else padded_width(lengths[idx]).max()
        tokens = np.zeros((idx.size, width), dtype=np.int32)
        for r, i in enumerate(idx):
            tokens[r, : lengths[i]] = seqs[i]
        batches.append(tokens)

    def run() -> None:
        for tokens in batches:
            mx.eval(scorer.model(mx.array(tokens)))  # type: ignore[attr-defined]

    return run


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=8, help="rows from each of GSM8K and alpaca")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--batch-tokens", type=int, default=4096)
    ap.add_argument("--skip", default="", help="comma-separated methods to leave out")
    args = ap.parse_args()
    model_dir = smollm2.prepare()
    prompts, answers = load_pairs(args.rows)
    enc = PairEncoder(model_dir).encode(prompts, answers)
    n_pairs = len(answers)
    answer_tokens = int(sum(a.size for a in enc.answers_ids))
    all_tokens = int(
        sum(2 * a.size + p.size + enc.uncond_ids.size for p, a in zip(enc.prompts_ids, enc.answers_ids, strict=True))
    )
    print(
        f"{n_pairs} pairs ({args.rows} GSM8K + {args.rows} alpaca), {answer_tokens} answer tokens, "
        f"{all_tokens} tokens through the model; auto -> {pick_backend('auto')}; BLAS: {mlx_backend.BLAS}"
    )
    methods = {
        "transformers per-example": lambda: transformers_per_example(model_dir, prompts, answers),
        "mlx per-example": lambda: mlx_per_example(model_dir, prompts, answers),
        "ours --backend torch": lambda: ours(model_dir, "torch", prompts, answers, args.batch_tokens),
        "ours --backend mlx": lambda: ours(model_dir, "mlx", prompts, answers, args.batch_tokens),
        "ours --backend auto": lambda: ours(model_dir, "auto", prompts, answers, args.batch_tokens),
        "raw mlx forward": lambda: raw_mlx_forward(model_dir, prompts, answers, args.batch_tokens),
    }
    skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    times: dict[str, list[float]] = {}
    scores: dict[str, np.ndarray] = {}
    for _ in range(args.repeat):  # interleaved, so load from other processes hits every method alike
        for name, make in methods.items():
            if name in skip:
                continue
            run = make()
            t = time.perf_counter()
            out = run()
            times.setdefault(name, []).append(time.perf_counter() - t)
            if out is not None:
                scores[name] = out
    ref_name = "transformers per-example"
    ref = statistics.median(times[ref_name]) if ref_name in times else None
    print(f"{'method':26} {'median s':>9} {'pairs/s':>8} {'ans tok/s':>10} {'vs transformers':>16} {'max |dIFD|':>11}")
    for name, ts in times.items():
        med = statistics.median(ts)
        ratio = f"{ref / med:.2f}x" if ref else "-"
        diff = (
            f"{np.max(np.abs(scores[name] - scores[ref_name])):.2e}" if name in scores and ref_name in scores else "-"
        )
        print(f"{name:26} {med:9.2f} {n_pairs / med:8.2f} {answer_tokens / med:10.1f} {ratio:>16} {diff:>11}")
    if "raw mlx forward" in times and "ours --backend mlx" in times:
        share = statistics.median(times["raw mlx forward"]) / statistics.median(times["ours --backend mlx"])
        print(f"ours --backend mlx = {share:.2f} of the raw MLX forward pass's tokens/s at the same batch shapes")
    print(
        f"runs: {args.repeat}, medians; all timings: "
        + json.dumps({k: [round(x, 2) for x in v] for k, v in times.items()})
    )


if __name__ == "__main__":
    main()
