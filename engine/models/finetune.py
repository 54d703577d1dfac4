"""Fine-tune a causal LM on (prompt, answer) token pairs and measure it: the model half of `distill experiment`.

Why PyTorch: on a CPU without an accelerator MLX LoRA measured 2-3x slower than PyTorch bf16 (bench/experiment.py).
- `lora` (our own small module: frozen base + B·A, no peft dependency) or `full` fine-tuning; `init="proxy"`
  trains a randomly initialised small Llama from scratch instead (a wiring check: it learns token statistics
  and cannot judge data quality).
- The loss is taken on answer tokens only (IFD's masking), and the output projection runs only at those
  positions, so float32 logits over a 49K vocabulary never exist for prompt tokens (most of a step's memory).
- Deterministic given the seed: the rows of step s are fixed by (seed, s), not by a consumed RNG, and a
  checkpoint (trainable weights, optimizer, step, curve) is written atomically every `checkpoint_every` steps,
  so a killed run resumes and ends with the same weights as an uninterrupted one.
"""

from __future__ import annotations

import json
import math
import os
import resource
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import xxhash

from engine.errors import ConfigError
from engine.models.causal_lm import sequence_nll, truncate
from engine.models.causal_lm_torch import no_progress_bars

LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


@dataclass(frozen=True, slots=True, kw_only=True)
class TrainSpec:
    """One training run's settings; equal across arms so that only the data differs."""

    method: Literal["lora", "full"] = "lora"
    init: Literal["pretrained", "proxy"] = "pretrained"
    steps: int = 32
    tokens: int = 0  # > 0: train until this many answer tokens were seen (the step count follows from the data)
    batch_size: int = 8
    lr: float = 5e-4
    warmup: float = 0.1  # share of steps with a linear warm-up; then cosine decay to lr / 10
    max_length: int = 384
    lora_rank: int = 16
    lora_alpha: float = 32.0
    lora_targets: tuple[str, ...] = LORA_TARGETS
    lora_layers: int = 0  # 0: every layer; N: the last N layers
    proxy_hidden: int = 64
    proxy_layers: int = 2
    dtype: Literal["auto", "bf16", "fp32"] = "auto"
    device: Literal["auto", "cpu", "cuda"] = "auto"
    threads: int = 1
    checkpoint_every: int = 8
    eval_batch_tokens: int = 4096
    grad_checkpointing: bool = True  # recompute each layer in the backward: half the peak memory, ~13% more time

    def __post_init__(self) -> None:
        object.__setattr__(self, "lora_targets", tuple(self.lora_targets))
        for name in ("batch_size", "max_length", "lora_rank", "proxy_hidden", "proxy_layers", "threads"):
            if getattr(self, name) < 1:
                msg = f"experiment: {name} must be >= 1, got {getattr(self, name)}"
                raise ConfigError(msg)
        if self.steps < 1 and self.tokens < 1:
            msg = "experiment: give a training budget: steps >= 1 or tokens >= 1"
            raise ConfigError(msg)
        if not 0 < self.lr < 1 or not 0 <= self.warmup < 1:
            msg = f"experiment: lr must be in (0, 1) and warmup in [0, 1), got {self.lr}, {self.warmup}"
            raise ConfigError(msg)
        if self.init == "proxy" and self.method == "lora":
            msg = "experiment: init = 'proxy' trains a random model from scratch; use method = 'full' with it"
            raise ConfigError(msg)
        if self.proxy_hidden % 16:
            msg = f"experiment: proxy_hidden must be a multiple of 16 (heads of 16), got {self.proxy_hidden}"
            raise ConfigError(msg)


@dataclass(frozen=True, slots=True)
class TokenPairs:
    """Prompt and answer token ids per row (prompt through the chat template; answer bare)."""

    prompts: list[np.ndarray]
    answers: list[np.ndarray]

    def __len__(self) -> int:
        return len(self.answers)

    def flat(self) -> dict[str, np.ndarray]:
        """Prompts and answers as two int32 bodies with their offsets (the .npz layout)."""

        def join(arrs: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
            lens = np.fromiter((a.size for a in arrs), dtype=np.int64, count=len(arrs))
            body = np.concatenate(arrs).astype(np.int32) if arrs else np.zeros(0, np.int32)
            return body, np.concatenate([[0], np.cumsum(lens)])

        (p, po), (a, ao) = join(self.prompts), join(self.answers)
        return {"p": p, "po": po, "a": a, "ao": ao}

    def save(self, path: Path) -> None:
        tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}.npz")
        np.savez(tmp, **self.flat())
        os.replace(tmp, path)

    def digest(self) -> str:
        """xxh3 of every token and row boundary: the identity of an arm's or eval set's data in a resume key."""
        h = xxhash.xxh3_64()
        for arr in self.flat().values():
            h.update(arr.astype(np.int64).tobytes())
        return h.hexdigest()

    @classmethod
    def load(cls, path: Path) -> TokenPairs:
        z = np.load(path)

        def split(body: np.ndarray, off: np.ndarray) -> list[np.ndarray]:
            return [body[off[i] : off[i + 1]] for i in range(off.size - 1)]

        return cls(split(z["p"], z["po"]), split(z["a"], z["ao"]))


@dataclass(slots=True)
class RunResult:
    curve: list[dict[str, float]]  # per step: step, tokens, loss, lr, seconds
    train_seconds: float
    resumed_at: int  # step the run resumed from (0: fresh)


# ---------------------------------------------------------------- model


def special_ids(model_dir: Path) -> tuple[int | None, int]:
    """(end token, pad token) of a model dir: the end token closes every training answer and stops decoding."""
    from tokenizers import Tokenizer

    cfg_path = model_dir / "tokenizer_config.json"
    tok_cfg = json.loads(cfg_path.read_text()) if cfg_path.exists() else {}
    eos = tok_cfg.get("eos_token")
    eos = eos.get("content") if isinstance(eos, dict) else eos
    eos_id = Tokenizer.from_file(str(model_dir / "tokenizer.json")).token_to_id(eos) if eos else None
    pad = json.loads((model_dir / "config.json").read_text()).get("pad_token_id")
    return eos_id, int(pad or 0)


def _torch() -> Any:
    import torch

    return torch


def pick_device(device: str) -> str:
    torch = _torch()
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def pick_dtype(dtype: str, device: str) -> Any:
    """bf16 autocast where the hardware computes it natively (avx512_bf16/AMX on a CPU), else float32."""
    torch = _torch()
    if dtype == "fp32":
        return None
    if dtype == "bf16":
        return torch.bfloat16
    if device == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else None
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return None
    return torch.bfloat16 if ("avx512_bf16" in flags or "amx_bf16" in flags) else None


def _lora_class() -> type:
    torch = _torch()

    class LoraLinear(torch.nn.Module):
        """y = W x + (alpha / r) B A x with W frozen; B starts at zero, so step 0 is the base model."""

        def __init__(self, base: Any, rank: int, alpha: float) -> None:
            super().__init__()
            self.base = base
            self.lora_a = torch.nn.Parameter(torch.empty(rank, base.in_features))
            self.lora_b = torch.nn.Parameter(torch.zeros(base.out_features, rank))
            torch.nn.init.kaiming_uniform_(self.lora_a, a=math.sqrt(5))
            self.scale = alpha / rank

        def forward(self, x: Any) -> Any:
            return self.base(x) + (x @ self.lora_a.t() @ self.lora_b.t()) * self.scale

    return LoraLinear


def apply_lora(model: Any, spec: TrainSpec) -> int:
    """Freeze the model and wrap the target linears of the chosen layers; returns how many were wrapped."""
    torch = _torch()
    lora = _lora_class()
    for p in model.parameters():
        p.requires_grad_(False)
    layers = list(model.get_decoder().layers)
    if spec.lora_layers:
        layers = layers[-spec.lora_layers :]
    wrapped = 0
    seen: set[str] = set()
    for layer in layers:
        for name, module in list(layer.named_modules()):
            if not isinstance(module, torch.nn.Linear):
                continue
            leaf = name.rsplit(".", 1)[-1]
            seen.add(leaf)
            if leaf in spec.lora_targets:
                parent = layer.get_submodule(name.rsplit(".", 1)[0]) if "." in name else layer
                setattr(parent, leaf, lora(module, spec.lora_rank, spec.lora_alpha))
                wrapped += 1
    if not wrapped:
        msg = f"experiment: lora_targets {list(spec.lora_targets)} match no linear layer (the model has {sorted(seen)})"
        raise ConfigError(msg)
    return wrapped


def build_model(model_dir: Path, spec: TrainSpec, seed: int) -> Any:
    """The model to train: pretrained weights (+ LoRA), or a random proxy Llama with the model's vocabulary."""
    torch = _torch()
    from transformers import AutoConfig, AutoModelForCausalLM, LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    if spec.init == "proxy":
        base = AutoConfig.from_pretrained(model_dir)
        cfg = LlamaConfig(
            vocab_size=base.vocab_size,
            hidden_size=spec.proxy_hidden,
            intermediate_size=spec.proxy_hidden * 4,
            num_hidden_layers=spec.proxy_layers,
            num_attention_heads=spec.proxy_hidden // 16,
            num_key_value_heads=spec.proxy_hidden // 16,
            max_position_embeddings=max(spec.max_length, 512),
            tie_word_embeddings=True,
            bos_token_id=base.bos_token_id,
            eos_token_id=base.eos_token_id,
            pad_token_id=base.pad_token_id,
        )
        model = LlamaForCausalLM(cfg)
    else:
        with no_progress_bars():
            model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    if spec.method == "lora":
        apply_lora(model, spec)
    if spec.grad_checkpointing:
        kwargs = {"use_reentrant": False}
        if hasattr(model, "activation_checkpointing_enable"):  # transformers >= 5.2 names it so
            model.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
        else:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)
    return model


# ---------------------------------------------------------------- batches and losses


def training_sequences(pairs: TokenPairs, max_length: int, eos: int | None) -> tuple[list[np.ndarray], np.ndarray]:
    """prompt + answer (+ the end token when training, so the model learns to stop), truncated, and where each
    answer starts; evaluation passes `eos=None` to score the answer tokens alone, as IFD does."""
    seqs, starts = [], np.zeros(len(pairs), dtype=np.int64)
    tail = np.asarray([eos] if eos is not None else [], dtype=np.int32)
    for i, (p, a) in enumerate(zip(pairs.prompts, pairs.answers, strict=True)):
        p, a, _ = truncate(p, np.concatenate([a, tail]), max_length)
        seqs.append(np.concatenate([p, a]))
        starts[i] = p.size
    return seqs, starts


def step_rows(n: int, batch_size: int, seed: int, step: int) -> np.ndarray:
    """Rows of one step: a stream of per-epoch permutations fixed by (seed, epoch), read batch_size at a time."""
    k = np.arange(step * batch_size, (step + 1) * batch_size)
    epochs = k // n
    out = np.empty(batch_size, dtype=np.int64)
    for e in np.unique(epochs):
        perm = np.random.default_rng([seed, int(e)]).permutation(n)
        out[epochs == e] = perm[k[epochs == e] % n]
    return out


def plan_steps(starts: np.ndarray, lengths: np.ndarray, spec: TrainSpec, seed: int) -> int:
    """Steps of the budget: `steps`, or as many as it takes to see `tokens` answer tokens with this data order."""
    if spec.tokens <= 0:
        return spec.steps
    per_row = np.maximum(lengths - starts, 0)
    if per_row.sum() == 0:
        msg = "experiment: the arm has no answer tokens to train on"
        raise ConfigError(msg)
    seen, step = 0, 0
    while seen < spec.tokens:
        seen += int(per_row[step_rows(lengths.size, spec.batch_size, seed, step)].sum())
        step += 1
    return step


def _lr_at(step: int, steps: int, spec: TrainSpec) -> float:
    warm = math.ceil(spec.warmup * steps)
    if step < warm:
        return spec.lr * (step + 1) / warm
    t = (step - warm) / max(1, steps - warm)
    return spec.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * t)))


def answer_nll(model: Any, tokens: Any, rows: Any, cols: Any, autocast: Any) -> Any:
    """NLL (float32) of tokens[row, col + 1] given tokens[row, :col + 1]; the head only at those positions."""
    torch = _torch()
    with torch.autocast(tokens.device.type, dtype=autocast, enabled=autocast is not None):
        h = model.get_decoder()(input_ids=tokens, use_cache=False).last_hidden_state
        logits = model.get_output_embeddings()(h[rows, cols]).float()
    target = tokens[rows, cols + 1]
    return torch.logsumexp(logits, dim=-1) - logits.gather(1, target[:, None])[:, 0]


def _batch(seqs: Sequence[np.ndarray], starts: np.ndarray, idx: np.ndarray, pad: int) -> tuple[np.ndarray, ...]:
    lens = np.fromiter((seqs[i].size for i in idx), dtype=np.int64, count=idx.size)
    tokens = np.full((idx.size, int(lens.max())), pad, dtype=np.int64)
    for r, i in enumerate(idx):  # one copy per row: packing, not per-token work
        tokens[r, : lens[r]] = seqs[i]
    counts = np.maximum(lens - starts[idx], 0)
    rows = np.repeat(np.arange(idx.size), counts)
    first = np.repeat(starts[idx] - 1 - np.cumsum(counts) + counts, counts)
    return tokens, rows, first + np.arange(rows.size)


# ---------------------------------------------------------------- training


def _save(path: Path, state: dict[str, Any]) -> None:
    torch = _torch()
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    torch.save(state, tmp)
    os.replace(tmp, path)


def train(
    model: Any,
    pairs: TokenPairs,
    spec: TrainSpec,
    seed: int,
    run_dir: Path,
    *,
    key: str,
    eos: int | None,
    pad: int,
    on_step: Callable[[int, int], None] | None = None,
) -> RunResult:
    """Train in place; resume from `run_dir/checkpoint.pt` when its `key` (config + data identity) matches."""
    torch = _torch()
    device = pick_device(spec.device)
    autocast = pick_dtype(spec.dtype, device)
    if device == "cpu":
        torch.set_num_threads(spec.threads)
    model.to(device).train()
    seqs, starts = training_sequences(pairs, spec.max_length, eos)
    lengths = np.fromiter((s.size for s in seqs), dtype=np.int64, count=len(seqs))
    if not len(seqs):
        msg = "experiment: an arm with no rows cannot be trained"
        raise ConfigError(msg)
    steps = plan_steps(starts, lengths, spec, seed)
    params = [p for p in model.parameters() if p.requires_grad]
    names = [n for n, p in model.named_parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=spec.lr, weight_decay=0.0)
    ckpt = run_dir / "checkpoint.pt"
    curve: list[dict[str, float]] = []
    step, seen, elapsed = 0, 0, 0.0
    if ckpt.exists():
        state = torch.load(ckpt, map_location=device, weights_only=False)
        if state["key"] == key:
            with torch.no_grad():
                for n, p in zip(names, params, strict=True):
                    p.copy_(state["weights"][n])
            opt.load_state_dict(state["optimizer"])
            step, seen, curve, elapsed = state["step"], state["tokens"], state["curve"], state["seconds"]
    resumed_at = step
    started = time.perf_counter() - elapsed
    while step < steps:
        idx = step_rows(len(seqs), spec.batch_size, seed, step)
        tokens, rows, cols = (torch.from_numpy(a).to(device) for a in _batch(seqs, starts, idx, pad))
        for g in opt.param_groups:
            g["lr"] = _lr_at(step, steps, spec)
        nll = answer_nll(model, tokens, rows, cols, autocast)
        loss = nll.mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        seen += int(rows.numel())
        step += 1
        curve.append(
            {
                "step": step,
                "tokens": seen,
                "loss": float(loss.detach()),
                "lr": opt.param_groups[0]["lr"],
                "seconds": time.perf_counter() - started,
            }
        )
        if on_step is not None:
            on_step(step, steps)
        if step % spec.checkpoint_every == 0 and step < steps:
            weights = {n: p.detach().clone() for n, p in zip(names, params, strict=True)}
            state = {"key": key, "weights": weights, "optimizer": opt.state_dict(), "step": step}
            _save(ckpt, {**state, "tokens": seen, "curve": curve, "seconds": time.perf_counter() - started})
    return RunResult(curve, time.perf_counter() - started, resumed_at)


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


# ---------------------------------------------------------------- evaluation


def evaluate_loss(model: Any, pairs: TokenPairs, spec: TrainSpec, *, pad: int) -> dict[str, float]:
    """Answer-token NLL of held-out pairs (no end token: IFD's masking), token-weighted over the set."""
    torch = _torch()
    device = pick_device(spec.device)
    autocast = pick_dtype(spec.dtype, device)
    model.eval()

    def forward(tokens: np.ndarray, positions: np.ndarray, targets: np.ndarray) -> np.ndarray:
        t = torch.from_numpy(tokens.astype(np.int64)).to(device)
        pos = torch.from_numpy(positions.astype(np.int64)).to(device)
        with torch.inference_mode():
            nll = answer_nll(model, t, pos // t.shape[1], pos % t.shape[1], autocast)
        return nll.cpu().numpy()

    seqs, starts = training_sequences(pairs, spec.max_length, eos=None)
    sums, counts = sequence_nll(seqs, starts, forward, spec.eval_batch_tokens, pad)
    total = int(counts.sum())
    loss = float(sums.sum() / total) if total else float("nan")
    with np.errstate(invalid="ignore", divide="ignore"):
        row_mean = float(np.nanmean(np.where(counts > 0, sums / np.maximum(counts, 1), np.nan))) if total else math.nan
    return {"loss": loss, "ppl": math.exp(loss) if total else math.nan, "row_loss": row_mean, "tokens": total}


def greedy(
    model: Any, prompts: Sequence[np.ndarray], spec: TrainSpec, *, max_new_tokens: int, eos: int | None, pad: int
) -> list[np.ndarray]:
    """Greedy continuations of each prompt (left-padded batches of 16); stops at the end token."""
    torch = _torch()
    device = pick_device(spec.device)
    autocast = pick_dtype(spec.dtype, device)
    model.eval()
    out: list[np.ndarray] = []
    for b in range(0, len(prompts), 16):
        chunk = [p[-spec.max_length :] for p in prompts[b : b + 16]]
        width = max(p.size for p in chunk)
        ids = np.full((len(chunk), width), pad, dtype=np.int64)
        mask = np.zeros_like(ids)
        for r, p in enumerate(chunk):
            ids[r, width - p.size :], mask[r, width - p.size :] = p, 1
        with torch.inference_mode(), torch.autocast(device, dtype=autocast, enabled=autocast is not None):
            gen = model.generate(
                input_ids=torch.from_numpy(ids).to(device),
                attention_mask=torch.from_numpy(mask).to(device),
                max_new_tokens=max_new_tokens,
                do_sample=False,
                pad_token_id=pad,
                eos_token_id=eos,
            )
        for row in gen[:, width:].cpu().numpy():
            stop = np.flatnonzero(row == eos) if eos is not None else np.zeros(0, dtype=np.int64)
            out.append(row[: stop[0]] if stop.size else row)
    return out


def spec_dict(spec: TrainSpec) -> dict[str, Any]:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(spec).items()}
