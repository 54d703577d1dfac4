"""`distill experiment` with SmolLM2-135M (run here, not in CI): does the loop see a known signal, what does the
shipped experiment find, and what does training cost.

1. swap check: real alpaca rows against the same rows with responses swapped between rows (a known-bad arm),
   two seeds, eval on 200 trusted real rows kept out of the pool: the real arm should be lower in both seeds
   by more than the seed spread.
2. the shipped experiment, experiments/ifd_vs_random.toml (IFD-top vs heuristic-top vs random).
3. training tokens/s, PyTorch (bf16 autocast where the CPU has it) against MLX LoRA, same model, same batch shape,
   one process.

    python bench/experiment.py                       # all three (~1.5 h on 2 cores)
    python bench/experiment.py --only swap --rows 256 --steps 32
    python bench/experiment.py --only speed
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import time
from pathlib import Path

import numpy as np
import polars as pl

from engine import api
from engine.models import finetune as ft
from engine.models.causal_lm import PairEncoder, resolve_model

ROOT = Path(__file__).resolve().parents[1]
ALPACA = ROOT / "data" / "sample" / "alpaca_en_demo.json"

SWAP = """
name = "real_vs_swapped"
seeds = [0, 1]
rows = {rows}
baseline = "real"

[pool]
dir = "pool"

[model]
name = "smollm2"
method = "lora"

[train]
steps = {steps}
batch_size = 8
lr = 5e-4
max_length = 384

[eval]
holdout = 20
external = ["trusted.json"]

[[arm]]
name = "real"
query = ["from_source", "random_n"]
params = {{ source = "real", seed = 0 }}

[[arm]]
name = "swapped"
query = ["from_source", "random_n"]
params = {{ source = "swapped", seed = 0 }}
"""


def _print_runs(out: Path) -> None:
    m = pl.read_parquet(out / "metrics.parquet")
    c = pl.read_parquet(out / "curves.parquet").group_by("arm", "seed").agg(pl.col("tokens").max())
    runs = m.join(c, on=["arm", "seed"]).with_columns(tok_s=pl.col("tokens_right") / pl.col("train_seconds"))
    print(
        runs.select(
            "arm", "seed", "eval", "loss", "train_seconds", "eval_seconds", "peak_rss_mb", pl.col("tok_s").round(1)
        ).sort("eval", "arm", "seed")
    )


def _print_verdicts(report: api.ExperimentReport) -> None:
    cols = ["eval", "metric", "arm", "mean", "spread", "diff", "base_spread", "draw_spread", "verdict"]
    print(pl.DataFrame(report.verdicts).select(cols))


def swap_check(work: Path, rows: int, steps: int) -> None:
    work.mkdir(parents=True, exist_ok=True)
    data = json.loads(ALPACA.read_text())
    pool, trusted = data[: rows + 144], data[-200:]
    answers = [r["output"] for r in pool]
    rng = random.Random(0)
    order = list(range(len(pool)))
    rng.shuffle(order)
    swapped = [{**r, "output": answers[order[(order.index(i) + 1) % len(order)]]} for i, r in enumerate(pool)]
    (work / "real.json").write_text(json.dumps(pool))
    (work / "swapped.json").write_text(json.dumps(swapped))
    (work / "trusted.json").write_text(json.dumps(trusted))
    api.ingest([work / "real.json", work / "swapped.json"], work / "pool", overwrite=True)
    (work / "swap.toml").write_text(SWAP.format(rows=rows, steps=steps))
    started = time.perf_counter()
    report = api.experiment(work / "swap.toml", out=work / "result")
    print(
        f"\n## swap check: {rows} rows per arm, {steps} steps of 8, 2 seeds: {time.perf_counter() - started:.0f}s wall"
    )
    _print_runs(report.out)
    _print_verdicts(report)


def shipped(path: Path) -> None:
    started = time.perf_counter()
    report = api.experiment(path)
    print(f"\n## {path.name}: {time.perf_counter() - started:.0f}s wall")
    _print_runs(report.out)
    _print_verdicts(report)


def _speed_batch(batch: int, length: int) -> tuple[np.ndarray, int]:
    model_dir = resolve_model("smollm2")
    rows = json.loads(ALPACA.read_text())[:batch]
    enc = PairEncoder(model_dir).encode([r["instruction"] for r in rows], [r["output"] for r in rows])
    seqs = [np.resize(np.concatenate([p, a]), length) for p, a in zip(enc.prompts_ids, enc.answers_ids, strict=True)]
    return np.stack(seqs).astype(np.int64), batch * (length - length // 2 - 1)  # loss on each row's second half


def speed_torch(steps: int, batch: int, length: int) -> float:
    """Median seconds per LoRA r16 step (every projection) with our trainer's own loss, one thread."""
    import torch

    tokens, _ = _speed_batch(batch, length)
    spec = ft.TrainSpec(method="lora", max_length=length)
    torch.set_num_threads(1)
    model = ft.build_model(resolve_model("smollm2"), spec, 0).train()
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    rows_t = torch.arange(batch).repeat_interleave(length - length // 2 - 1)
    cols_t = torch.arange(length // 2, length - 1).repeat(batch)
    autocast = ft.pick_dtype("auto", "cpu")
    times = []
    for _ in range(steps + 1):
        t = time.perf_counter()
        loss = ft.answer_nll(model, torch.from_numpy(tokens), rows_t, cols_t, autocast).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        times.append(time.perf_counter() - t)
    return statistics.median(times[1:])


def speed_mlx(steps: int, batch: int, length: int) -> float:
    """The same step with mlx-lm's LoRA layers (rank 16, every projection), in a process without PyTorch."""
    import mlx.core as mx
    import mlx.nn as nn
    import mlx.optimizers as optim
    from mlx_lm.tuner.utils import linear_to_lora_layers
    from mlx_lm.utils import load_model

    import engine.models.causal_lm_mlx  # noqa: F401  (loads OpenBLAS before mlx.core)

    tokens, _ = _speed_batch(batch, length)
    mlx_model, _ = load_model(resolve_model("smollm2"))
    mlx_model.freeze()
    keys = ["self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj", "mlp.gate_proj"]
    keys += ["mlp.up_proj", "mlp.down_proj"]
    linear_to_lora_layers(mlx_model, len(mlx_model.layers), {"rank": 16, "scale": 2.0, "dropout": 0.0, "keys": keys})
    x = mx.array(tokens)
    mask = mx.zeros(tokens.shape).at[:, length // 2 : length].add(1)[:, 1:]

    def loss_fn(m: nn.Module) -> mx.array:
        logits = m(x[:, :-1]).astype(mx.float32)
        ce = nn.losses.cross_entropy(logits, x[:, 1:]) * mask
        return ce.sum() / mask.sum()

    step = nn.value_and_grad(mlx_model, loss_fn)
    mopt = optim.Adam(learning_rate=1e-4)
    times = []
    for _ in range(steps + 1):
        t = time.perf_counter()
        lv, grads = step(mlx_model)
        mopt.update(mlx_model, grads)
        mx.eval(mlx_model.parameters(), mopt.state, lv)
        times.append(time.perf_counter() - t)
    return statistics.median(times[1:])


def speed(steps: int, batch: int, length: int) -> None:
    """Training throughput, PyTorch vs MLX, each in its own fresh process (neither library's BLAS beside the other)."""
    import subprocess
    import sys

    def child(fn: str) -> float:
        code = f"import sys; sys.path.insert(0, {str(ROOT)!r}); from bench.experiment import {fn}; print({fn}({steps}, {batch}, {length}))"
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
        return float(out.strip().splitlines()[-1])

    _, answer = _speed_batch(batch, length)
    torch_s, mlx_s = child("speed_torch"), child("speed_mlx")
    print(f"\n## training speed: LoRA r16, batch {batch} x {length} tokens, one process each, median of {steps} steps")
    print(
        f"PyTorch (bf16 autocast where the CPU has it, 1 thread): {torch_s:.2f} s/step, {answer / torch_s:.0f} answer tok/s"
    )
    print(f"MLX (mlx-lm LoRA layers, OpenBLAS): {mlx_s:.2f} s/step, {answer / mlx_s:.0f} answer tok/s")
    print(f"PyTorch / MLX speed: {mlx_s / torch_s:.2f}x")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", choices=["swap", "shipped", "speed"], default=None)
    ap.add_argument("--rows", type=int, default=256)
    ap.add_argument("--steps", type=int, default=32)
    ap.add_argument("--work", type=Path, default=ROOT / "out" / "bench-experiment")
    ap.add_argument("--speed-steps", type=int, default=3)
    args = ap.parse_args()
    if args.only in (None, "speed"):
        speed(args.speed_steps, 4, 256)
    if args.only in (None, "swap"):
        swap_check(args.work, args.rows, args.steps)
    if args.only in (None, "shipped"):
        shipped(ROOT / "experiments" / "ifd_vs_random.toml")


if __name__ == "__main__":
    main()
