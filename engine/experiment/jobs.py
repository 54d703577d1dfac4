"""One training job per (arm, seed), run one process per core (one thread each), resumable.

Why processes: two PyTorch threads in one process were erratic on a loaded 2-core machine, one process per core
was stable, and arms are independent. A job's dir holds `checkpoint.pt` while it trains and `result.json` when
it is done; a rerun skips finished jobs whose key (model, spec, seed, data) is unchanged and resumes the rest from
their last checkpoint. On a GPU the jobs run one at a time in this process.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from engine.experiment.answers import exact_match
from engine.models import finetune as ft
from engine.progress import OnProgress, Progress, ignore

RESULT = "result.json"
PROGRESS = "progress.json"


@dataclass(frozen=True, slots=True)
class EvalSet:
    name: str
    pairs: Path  # .npz of TokenPairs
    rows: Path  # .parquet with `final` (rlvr reference answers) for exact match
    accuracy: bool


@dataclass(frozen=True, slots=True)
class Job:
    arm: str
    seed: int
    run_dir: Path
    model_dir: Path
    spec: ft.TrainSpec
    train: Path  # .npz of TokenPairs
    evals: tuple[EvalSet, ...]
    key: str
    eos: int | None
    pad: int
    generate_tokens: int
    max_accuracy_rows: int


def done(job: Job) -> dict[str, Any] | None:
    path = job.run_dir / RESULT
    if not path.exists():
        return None
    result = json.loads(path.read_text())
    return result if result.get("key") == job.key else None


def _write_json(path: Path, obj: Any) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(obj))
    os.replace(tmp, path)


def _accuracy(model: Any, job: Job, ev: EvalSet, pairs: ft.TokenPairs) -> dict[str, float]:
    from tokenizers import Tokenizer

    refs = pl.read_parquet(ev.rows)["final"]
    keep = np.flatnonzero(refs.is_not_null().to_numpy())[: job.max_accuracy_rows]
    if keep.size == 0:
        return {}
    tok = Tokenizer.from_file(str(job.model_dir / "tokenizer.json"))
    prompts = [pairs.prompts[i] for i in keep]
    outputs = ft.greedy(model, prompts, job.spec, max_new_tokens=job.generate_tokens, eos=job.eos, pad=job.pad)
    texts = tok.decode_batch([o.tolist() for o in outputs])
    correct = exact_match(texts, refs.gather(keep).to_list())
    return {"accuracy": float(correct.mean()), "accuracy_rows": int(keep.size)}  # type: ignore[arg-type]


def run_job(job: Job) -> dict[str, Any]:
    """Train one arm with one seed, evaluate it on every eval set, write `result.json`; resumes a killed run."""
    job.run_dir.mkdir(parents=True, exist_ok=True)
    model = ft.build_model(job.model_dir, job.spec, job.seed)
    pairs = ft.TokenPairs.load(job.train)
    last = [0.0]

    def on_step(step: int, steps: int) -> None:
        now = time.monotonic()
        if now - last[0] > 1 or step == steps:
            last[0] = now
            _write_json(job.run_dir / PROGRESS, {"step": step, "steps": steps})

    run = ft.train(
        model, pairs, job.spec, job.seed, job.run_dir, key=job.key, eos=job.eos, pad=job.pad, on_step=on_step
    )
    metrics: dict[str, dict[str, float]] = {}
    started = time.perf_counter()
    for ev in job.evals:
        ev_pairs = ft.TokenPairs.load(ev.pairs)
        m = ft.evaluate_loss(model, ev_pairs, job.spec, pad=job.pad)
        m["rows"] = len(ev_pairs)
        if ev.accuracy:
            m.update(_accuracy(model, job, ev, ev_pairs))
        metrics[ev.name] = m
    result = {
        "key": job.key,
        "arm": job.arm,
        "seed": job.seed,
        "curve": run.curve,
        "metrics": metrics,
        "train_seconds": run.train_seconds,
        "eval_seconds": time.perf_counter() - started,
        "resumed_at": run.resumed_at,
        "peak_rss_mb": ft.peak_rss_mb(),
        "device": ft.pick_device(job.spec.device),
    }
    _write_json(job.run_dir / RESULT, result)
    (job.run_dir / "checkpoint.pt").unlink(missing_ok=True)
    return result


def _steps(jobs: Sequence[Job], finished: set[int]) -> tuple[int, int]:
    """Training steps done and planned over all jobs (a job's plan is known once it wrote progress)."""
    done_steps = total = 0
    for i, job in enumerate(jobs):
        planned = job.spec.steps
        step = 0
        try:
            prog = json.loads((job.run_dir / PROGRESS).read_text())
            step, planned = prog["step"], prog["steps"]
        except (FileNotFoundError, json.JSONDecodeError, KeyError):
            pass
        done_steps += planned if i in finished else step
        total += planned
    return done_steps, total


def run_jobs(jobs: Sequence[Job], workers: int, on_progress: OnProgress = ignore) -> list[dict[str, Any]]:
    """Every job's result, in `jobs` order: finished ones read back, the rest run `workers` at a time."""
    results: dict[int, dict[str, Any]] = {}
    todo = []
    for i, job in enumerate(jobs):
        prev = done(job)
        if prev is not None:
            results[i] = prev
        else:
            todo.append(i)
    total = len(jobs)

    def report() -> None:
        steps, planned = _steps(jobs, set(results))
        on_progress(Progress("train", steps, planned, "steps"))

    if results:
        on_progress(Progress("experiment", len(results), total, "runs", message=f"{len(results)} run(s) already done"))
    report()
    if not todo:
        return [results[i] for i in range(total)]
    if workers <= 1 or ft.pick_device(jobs[0].spec.device) == "cuda":
        for i in todo:
            results[i] = run_job(jobs[i])
            report()
        return [results[i] for i in range(total)]
    with ProcessPoolExecutor(max_workers=min(workers, len(todo)), mp_context=get_context("spawn")) as pool:
        pending = {pool.submit(run_job, jobs[i]): i for i in todo}
        while pending:
            finished, _ = wait(pending, timeout=2, return_when=FIRST_COMPLETED)
            for fut in finished:
                results[pending.pop(fut)] = fut.result()
            report()
    return [results[i] for i in range(total)]
