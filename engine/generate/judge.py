"""LLM judging: scores 1-10 per dimension, written as a stage-like column file per partition.

Not a registered stage: stages do no I/O and a judge call is network I/O with a budget, a cache and
retries. It writes what a stage writes, though: `stages/judge/part-NNNNN.parquet` (same rows, same
order, via `write_parquet_atomic` with a fingerprint in the footer) and a `judge` entry in the
manifest's stage log, so `scan()`, SQL, select and the gate (`judge_column = "judge_score"`) see the
columns. A rerun skips partitions whose fingerprint matches and that finished; a partition cut short by
the budget is written with `complete = false` in its footer and redone next time (its answered rows
come from the cache).

Columns: judge_correctness, judge_helpfulness, judge_clarity, judge_safety, judge_groundedness (rows
with a source chunk, i.e. generated Q&A), judge_score (their mean), all Float64 in [1, 10];
judge_reason (the judge's sentence); judge_status: ok | not_sampled | invalid_json | not_an_object |
bad_score | budget_exhausted | http_NNN | timeout | connection_error | bad_response.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from string import Template
from typing import Any

import polars as pl
import xxhash

from engine.generate.ask import ask_all
from engine.generate.client import ChatClient, Endpoint
from engine.generate.prompts import template
from engine.generate.qa import parse_scores
from engine.progress import OnProgress, Progress, ignore
from engine.stages.views import prompt_text, response_text
from engine.store.dataset import Dataset
from engine.store.manifest import read_manifest, write_manifest
from engine.store.partitions import read_footer_meta, scan_partition, stage_dir, write_parquet_atomic

NAME = "judge"
VERSION = 1
DIMS = ("correctness", "helpfulness", "clarity", "safety", "groundedness")
WRITES: dict[str, pl.DataType] = {
    **{f"judge_{d}": pl.Float64() for d in DIMS},
    "judge_score": pl.Float64(),
    "judge_reason": pl.String(),
    "judge_status": pl.String(),
}


@dataclass(frozen=True, slots=True)
class JudgeReport:
    partitions: int
    written: int
    skipped: int
    rows: int
    judged: int
    failed: int
    pending: int
    mean_score: float | None
    spent: dict[str, Any]  # requests, tokens, cost (US$), by_model, limits


def sampled(ids: pl.Expr, sample: float) -> pl.Expr:
    """Deterministic sample by id (hex digits 24..32, independent of split and teacher digits)."""
    return ids.str.slice(24, 8).str.to_integer(base=16, strict=False).fill_null(0) < int(sample * 2**32)


def _prompt(tmpl: Template, prompt: str, response: str, chunk: str | None) -> str:
    src = f'\nSource passage the answer must be grounded in:\n"""\n{chunk}\n"""\n' if chunk else ""
    return tmpl.substitute(
        grounded_ask=" and groundedness in the source passage" if chunk else "",
        grounded_key=', "groundedness": 7' if chunk else "",
        source=src,
        prompt=prompt,
        response=response,
    )


def _judge_partition(
    ds: Dataset,
    part: str,
    judge: Endpoint,
    client: ChatClient,
    sample: float,
    params: Mapping[str, Any],
    max_repairs: int,
) -> pl.DataFrame:
    df = (
        scan_partition(ds.root, part, [])
        .select(
            prompt=prompt_text(),
            response=response_text(),
            chunk=pl.col("meta").str.json_path_match("$.chunk_text"),
            pick=sampled(pl.col("id"), sample),
        )
        .collect()
    )
    tmpl = template("judge")
    rows = df.with_row_index("_i").filter(pl.col("pick")).to_dicts()
    jobs = [
        (judge, [{"role": "user", "content": _prompt(tmpl, r["prompt"] or "", r["response"] or "", r["chunk"])}])
        for r in rows
    ]
    out: dict[str, list[Any]] = {c: [None] * df.height for c in WRITES}
    out["judge_status"] = ["not_sampled"] * df.height
    grounded = [r["chunk"] is not None for r in rows]
    results = []
    for flag in (False, True):
        idx = [k for k, g in enumerate(grounded) if g == flag]
        if not idx:
            continue
        answers = ask_all(
            client,
            [jobs[k] for k in idx],
            lambda c, flag=flag: parse_scores(c, grounded=flag),
            params,
            max_repairs=max_repairs,
        )
        results += list(zip(idx, answers, strict=True))
    for k, ans in results:
        i = rows[k]["_i"]
        if ans.problem is not None or ans.value is None:
            out["judge_status"][i] = ans.problem.reason if ans.problem else "request_failed"
            continue
        v = ans.value
        dims = [d for d in DIMS if d in v]
        for d in dims:
            out[f"judge_{d}"][i] = v[d]
        out["judge_score"][i] = sum(v[d] for d in dims) / len(dims)
        out["judge_reason"][i] = v["reason"]
        out["judge_status"][i] = "ok"
    return pl.DataFrame(out, schema=WRITES)


def run_judge(
    ds: Dataset,
    judge: Endpoint,
    client: ChatClient,
    *,
    sample: float = 1.0,
    params: Mapping[str, Any],
    max_repairs: int = 2,
    on_progress: OnProgress = ignore,
) -> JudgeReport:
    """Judge every partition that is not up to date; see the module docstring."""
    config = {
        "model": judge.model,
        "base_url": judge.base_url,
        "sample": sample,
        "params": dict(params),
        "max_repairs": max_repairs,
    }
    cfg_fp = xxhash.xxh64_hexdigest(json.dumps([VERSION, config, template("judge").template], sort_keys=True).encode())
    manifest = ds.manifest
    log: list[dict[str, Any]] = manifest.setdefault("stages", [])
    entry = {
        "stage": NAME,
        "version": VERSION,
        "config": config,
        "config_fingerprint": cfg_fp,
        "status": "running",
        "columns": list(WRITES),
    }
    names = [e["stage"] for e in log]
    if NAME in names:
        log[names.index(NAME)].update(entry)
    else:
        log.append(entry)
    write_manifest(ds.root, manifest)
    written = skipped = rows = 0
    total = len(ds.partitions)
    on_progress(Progress(NAME, 0, total, unit="partitions"))
    for n, part in enumerate(manifest["partitions"], start=1):
        fp = xxhash.xxh64_hexdigest(f"{part['hash']}\x1f{cfg_fp}".encode())
        path = stage_dir(ds.root, NAME) / part["name"]
        meta = read_footer_meta(path)
        if meta and meta.get("fingerprint") == fp and meta.get("complete"):
            skipped += 1
        else:
            frame = _judge_partition(ds, part["name"], judge, client, sample, params, max_repairs)
            complete = not frame["judge_status"].eq("budget_exhausted").any()
            write_parquet_atomic(
                frame,
                path,
                {"stage": NAME, "version": VERSION, "fingerprint": fp, "rows": frame.height, "complete": complete},
            )
            written += 1
        rows += part["rows"]
        on_progress(Progress(NAME, n, total, unit="partitions", rows=rows))
    cols = pl.concat([pl.scan_parquet(stage_dir(ds.root, NAME) / p) for p in ds.partitions]).select(
        "judge_status", "judge_score"
    )
    summary = (
        cols.select(
            judged=pl.col("judge_status").eq("ok").sum(),
            pending=pl.col("judge_status").eq("budget_exhausted").sum(),
            skipped_rows=pl.col("judge_status").eq("not_sampled").sum(),
            mean=pl.col("judge_score").mean(),
        )
        .collect()
        .row(0, named=True)
    )
    failed = rows - summary["judged"] - summary["pending"] - summary["skipped_rows"]
    manifest = read_manifest(ds.root)
    for e in manifest["stages"]:
        if e["stage"] == NAME:
            e.update(
                status="complete" if summary["pending"] == 0 else "partial",
                rows=rows,
                usage=client.budget.usage(),
                finished_at=datetime.now(UTC).isoformat(timespec="seconds"),
            )
    write_manifest(ds.root, manifest)
    return JudgeReport(
        total,
        written,
        skipped,
        rows,
        summary["judged"],
        failed,
        summary["pending"],
        summary["mean"],
        client.budget.usage(),
    )
