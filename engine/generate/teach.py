"""Teacher generation: chunks in, Q&A pairs out as JSONL sources (one per teacher) plus a rejects table.

Each text row goes to one teacher (`teachers.assign_teachers`, by id), is asked for `pairs` Q&A pairs
with its domain's template, and every answer is validated (`qa.parse_pairs`). Valid pairs are written
to `source/<teacher>.jsonl` for `api.generate` to ingest as sft rows; everything else is a row in
`source/rejects.parquet` with a reason, so rows in = rows with pairs + rows rejected + rows pending
(left when the budget ran out; a rerun with more budget continues, answered rows come from the cache).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from engine.errors import StoreError
from engine.generate.ask import ask_all
from engine.generate.client import ChatClient, Endpoint
from engine.generate.prompts import template
from engine.generate.qa import Problem, parse_pairs
from engine.generate.teachers import assign_teachers
from engine.progress import OnProgress, Progress, ignore
from engine.store.dataset import Dataset
from engine.store.partitions import scan_partition

REJECT_SCHEMA = {
    "row_id": pl.String,
    "teacher": pl.String,
    "pair": pl.Int64,
    "reject_reason": pl.String,
    "reject_detail": pl.String,
    "reject_raw": pl.String,
}
PENDING = "budget_exhausted"


@dataclass(slots=True)
class TeacherTally:
    model: str
    rows: int = 0
    pairs: int = 0
    rejected_rows: int = 0


@dataclass(slots=True)
class GenerateTally:
    rows_in: int = 0
    rows_ok: int = 0
    rows_rejected: int = 0
    rows_pending: int = 0
    pairs_kept: int = 0
    pairs_rejected: int = 0
    teachers: dict[str, TeacherTally] = field(default_factory=dict)
    reasons: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _parse(content: str) -> tuple[Any, Problem | None]:
    good, bad = parse_pairs(content)
    return (good, bad), (None if good else bad[0])


def _rows(ds: Dataset, part: str, shares: Sequence[float]) -> pl.DataFrame:
    return (
        scan_partition(ds.root, part, [])
        .select(
            "id",
            "kind",
            "text",
            chunk_id=pl.coalesce(pl.col("meta").str.json_path_match("$.chunk_id"), pl.col("id")),
            teacher=assign_teachers(pl.col("id"), shares),
        )
        .collect()
    )


def generate_sources(
    ds: Dataset,
    work: Path,
    teachers: Sequence[Endpoint],
    shares: Sequence[float],
    client: ChatClient,
    *,
    pairs: int = 3,
    domain: str = "general",
    params: Mapping[str, Any],
    max_repairs: int = 2,
    on_progress: OnProgress = ignore,
) -> GenerateTally:
    """Write `work/<teacher>.jsonl` and `work/rejects.parquet`; return the counts (checked to add up)."""
    tmpl = template(domain)
    work.mkdir(parents=True, exist_ok=True)
    tally = GenerateTally(teachers={t.name: TeacherTally(t.model) for t in teachers})
    rejects: list[dict[str, Any]] = []
    files = {t.name: (work / f".{t.name}.jsonl.tmp").open("w", encoding="utf-8") for t in teachers}
    total = sum(p["rows"] for p in ds.manifest["partitions"])
    done = 0
    try:
        for part in ds.partitions:
            df = _rows(ds, part, shares)
            tally.rows_in += df.height
            text_rows = df.filter(pl.col("kind") == "text")
            for row in df.filter(pl.col("kind") != "text").iter_rows(named=True):
                detail = f"kind {row['kind']!r}: generate asks Q&A for text rows (run `distill chunk` first)"
                rejects.append(_reject(row["id"], None, None, "unsupported_kind", detail, None))
            rows = text_rows.to_dicts()
            jobs = [
                (
                    teachers[r["teacher"]],
                    [{"role": "user", "content": tmpl.substitute(n=pairs, chunk=r["text"], chunk_id=r["chunk_id"])}],
                )
                for r in rows
            ]
            base = done

            def tick(i: int, base: int = base) -> None:
                on_progress(Progress("generate", base + i, total, rows=base + i))

            answers = ask_all(client, jobs, _parse, params, max_repairs=max_repairs, on_done=tick)
            for r, (ep, _), ans in zip(rows, jobs, answers, strict=True):
                t = tally.teachers[ep.name]
                if ans.value is None or ans.problem is not None:
                    p = ans.problem or Problem(None, "request_failed", "")
                    pending = p.reason == PENDING
                    tally.rows_pending += pending
                    tally.rows_rejected += not pending
                    t.rejected_rows += not pending
                    tally.reasons[p.reason] = tally.reasons.get(p.reason, 0) + 1
                    rejects.append(_reject(r["id"], ep.name, None, p.reason, p.detail, ans.reply.content))
                    continue
                good, bad = ans.value
                tally.rows_ok += 1
                t.rows += 1
                t.pairs += len(good)
                tally.pairs_kept += len(good)
                tally.pairs_rejected += len(bad)
                for b in bad:
                    tally.reasons[b.reason] = tally.reasons.get(b.reason, 0) + 1
                    rejects.append(_reject(r["id"], ep.name, b.pair, b.reason, b.detail, ans.reply.content))
                for q in good:
                    rec = {
                        "instruction": q["question"],
                        "output": q["answer"],
                        **{k: q[k] for k in ("reasoning", "difficulty", "source_chunk")},
                        "teacher": ep.name,
                        "teacher_model": ep.model,
                        "chunk_id": r["chunk_id"],
                        "source_id": r["id"],
                        "chunk_text": r["text"],
                    }
                    files[ep.name].write(json.dumps(rec, ensure_ascii=False) + "\n")
            done += df.height
    finally:
        for fh in files.values():
            fh.close()
    for t in teachers:
        tmp = work / f".{t.name}.jsonl.tmp"
        if tally.teachers[t.name].pairs:
            tmp.replace(work / f"{t.name}.jsonl")
        else:
            tmp.unlink()
            (work / f"{t.name}.jsonl").unlink(missing_ok=True)
    rows_rejected_unsupported = sum(1 for r in rejects if r["reject_reason"] == "unsupported_kind")
    tally.rows_rejected += rows_rejected_unsupported
    tally.reasons["unsupported_kind"] = rows_rejected_unsupported
    if not tally.reasons["unsupported_kind"]:
        del tally.reasons["unsupported_kind"]
    if tally.rows_in != tally.rows_ok + tally.rows_rejected + tally.rows_pending:
        msg = f"{ds.root}: generate lost rows: {tally.rows_in} in, {tally.rows_ok} ok + {tally.rows_rejected} rejected + {tally.rows_pending} pending"
        raise StoreError(msg)
    pl.DataFrame(rejects, schema=REJECT_SCHEMA).write_parquet(work / "rejects.parquet")
    return tally


def _reject(
    row_id: str, teacher: str | None, pair: int | None, reason: str, detail: str, raw: str | None
) -> dict[str, Any]:
    return {
        "row_id": row_id,
        "teacher": teacher,
        "pair": pair,
        "reject_reason": reason,
        "reject_detail": detail,
        "reject_raw": raw,
    }
