"""Teacher generation: rows in, new sft rows out as JSONL sources (one per teacher and domain) plus rejects.

Each row goes to one teacher (`teachers.assign_teachers`, by id). A text row (a chunk) is asked for
`pairs` Q&A pairs with its domain's template and every answer is validated (`qa.parse_pairs`); an sft
row without a response (ingested with `--format prompts`) is asked for the response (`respond.txt`).
Under `--domain row` the row's own `domain` picks the template; a named domain applies to every row.
Valid answers are written to `source/<teacher>.<domain>.jsonl` for `api.generate` to ingest as sft
rows with that domain; everything else is a row in `source/rejects.parquet` with a reason, so rows in
= rows answered + rows rejected + rows pending (left when the budget ran out; a rerun with more budget
continues, answered rows come from the cache).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any

import polars as pl
import xxhash

from engine.errors import StoreError
from engine.generate.ask import Answer, ask_all
from engine.generate.client import ChatClient, Endpoint, Messages
from engine.generate.prompts import ROW_DOMAIN, STRICT_RESPONSE, context_block, row_template_name, template
from engine.generate.qa import Problem, parse_pairs, parse_response
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
    responses_filled: int = 0
    teachers: dict[str, TeacherTally] = field(default_factory=dict)
    reasons: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def reason(self, code: str, n: int = 1) -> None:
        self.reasons[code] = self.reasons.get(code, 0) + n


@dataclass(frozen=True, slots=True)
class SourceFile:
    """One JSONL of generated rows: which teacher wrote them and the domain they are ingested under."""

    path: Path
    teacher: str
    domain: str


def _parse_qa(content: str) -> tuple[Any, Problem | None]:
    good, bad = parse_pairs(content)
    return (good, bad), (None if good else bad[0])


def _rows(ds: Dataset, part: str, shares: Sequence[float]) -> pl.DataFrame:
    return (
        scan_partition(ds.root, part, [])
        .select(
            "id",
            "kind",
            "text",
            "instruction",
            "input",
            "response",
            "system",
            "domain",
            chunk_id=pl.coalesce(pl.col("meta").str.json_path_match("$.chunk_id"), pl.col("id")),
            teacher=assign_teachers(pl.col("id"), shares),
        )
        .collect()
    )


def _slug(domain: str) -> str:
    """A file-name-safe form of a domain name (with a hash when characters had to go)."""
    slug = re.sub(r"[^A-Za-z0-9_-]+", "_", domain)[:40]
    return slug if slug == domain else f"{slug}-{xxhash.xxh32_hexdigest(domain)}"


class _Sources:
    """Open JSONL writers per (teacher, domain); files appear under their final name only at `close`."""

    def __init__(self, work: Path) -> None:
        self.work = work
        self.open: dict[tuple[str, str], IO[str]] = {}

    def write(self, teacher: str, domain: str, rec: Mapping[str, Any]) -> None:
        key = (teacher, domain)
        if key not in self.open:
            self.open[key] = (self.work / f".{teacher}.{_slug(domain)}.jsonl.tmp").open("w", encoding="utf-8")
        self.open[key].write(json.dumps(rec, ensure_ascii=False) + "\n")

    def close(self, *, keep: bool) -> list[SourceFile]:
        files = []
        for (teacher, domain), fh in sorted(self.open.items()):
            fh.close()
            tmp = Path(fh.name)
            if keep:
                final = tmp.with_name(tmp.name.removeprefix(".").removesuffix(".tmp"))
                tmp.replace(final)
                files.append(SourceFile(final, teacher, domain))
            else:
                tmp.unlink(missing_ok=True)
        return files


def _qa_job(r: Mapping[str, Any], tmpl_name: str, pairs: int) -> Messages:
    body = template(tmpl_name).substitute(n=pairs, chunk=r["text"], chunk_id=r["chunk_id"])
    return [{"role": "user", "content": body}]


def respond_messages(
    instruction: str, inp: str | None, system: str | None, domain: str, passage: str | None = None
) -> list[dict[str, str]]:
    """The request that asks a teacher for an sft row's response (the row's own system prompt first)."""
    context = context_block(inp, "Input") + context_block(passage, "Answer from this passage only")
    body = template("respond").substitute(domain=domain, instruction=instruction, context=context)
    return [*([{"role": "system", "content": system}] if system else []), {"role": "user", "content": body}]


IS_TEXT = pl.col("kind") == "text"
TO_FILL = (pl.col("kind") == "sft") & (pl.col("response").fill_null("").str.strip_chars() == "")
"""The rows generate asks about: text rows (Q&A pairs) and sft rows without a response (the response)."""
_UNSUPPORTED = (
    "generate asks Q&A for text rows (run `distill chunk` first) and responses for sft rows without one "
    "(`distill ingest --format prompts`)"
)


def _not_asked(df: pl.DataFrame) -> pl.DataFrame:
    """Reject rows for every row generate does not ask about, with the reason."""
    has_response = pl.col("kind") == "sft"
    return df.filter(~IS_TEXT & ~TO_FILL).select(
        row_id="id",
        teacher=pl.lit(None, pl.String),
        pair=pl.lit(None, pl.Int64),
        reject_reason=pl.when(has_response).then(pl.lit("has_response")).otherwise(pl.lit("unsupported_kind")),
        reject_detail=pl.when(has_response)
        .then(pl.lit("the sft row already has a response; generate fills empty responses only"))
        .otherwise(pl.format("kind '{}': " + _UNSUPPORTED, "kind")),
        reject_raw=pl.lit(None, pl.String),
    )


def _output_domain(domain: str, row_domain: str | None) -> str:
    """The domain a generated row is ingested under: the source row's under `--domain row`, else `domain`."""
    return (row_domain or "general") if domain == ROW_DOMAIN else domain


def _template_name(domain: str, row_domain: str | None) -> str:
    return row_template_name(row_domain) if domain == ROW_DOMAIN else domain


def generate_sources(
    ds: Dataset,
    work: Path,
    teachers: Sequence[Endpoint],
    shares: Sequence[float],
    client: ChatClient,
    *,
    pairs: int = 3,
    domain: str = ROW_DOMAIN,
    params: Mapping[str, Any],
    max_repairs: int = 2,
    on_progress: OnProgress = ignore,
) -> tuple[GenerateTally, list[SourceFile]]:
    """Write the JSONL sources and `work/rejects.parquet`; return the counts (checked to add up) and the files."""
    work.mkdir(parents=True, exist_ok=True)
    tally = GenerateTally(teachers={t.name: TeacherTally(t.model) for t in teachers})
    rejects: list[dict[str, Any]] = []  # answers that failed, one dict each (few)
    skipped: list[pl.DataFrame] = []  # rows not asked about, a frame per partition
    out = _Sources(work)
    total = sum(p["rows"] for p in ds.manifest["partitions"])
    done = 0
    ok = False

    def tick(i: int) -> None:
        on_progress(Progress("generate", done + i, total, rows=done + i))

    try:
        for part in ds.partitions:
            df = _rows(ds, part, shares)
            tally.rows_in += df.height
            not_asked = _not_asked(df)
            skipped.append(not_asked)
            tally.rows_rejected += not_asked.height
            for code, n in not_asked.group_by("reject_reason").len().iter_rows():
                tally.reason(code, n)

            qa_rows = df.filter(IS_TEXT).to_dicts()
            qa_jobs = [
                (teachers[r["teacher"]], _qa_job(r, _template_name(domain, r["domain"]), pairs)) for r in qa_rows
            ]
            qa_answers = ask_all(client, qa_jobs, _parse_qa, params, max_repairs=max_repairs, on_done=tick)
            for r, (ep, _), ans in zip(qa_rows, qa_jobs, qa_answers, strict=True):
                if not _settle(tally, rejects, r, ep, ans):
                    continue
                good, bad = ans.value
                tally.teachers[ep.name].pairs += len(good)
                tally.pairs_kept += len(good)
                tally.pairs_rejected += len(bad)
                for b in bad:
                    tally.reason(b.reason)
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
                    out.write(ep.name, _output_domain(domain, r["domain"]), rec)
            done += len(qa_rows)

            fill_rows = df.filter(TO_FILL).to_dicts()
            fill_jobs = [
                (
                    teachers[r["teacher"]],
                    respond_messages(r["instruction"], r["input"], r["system"], _output_domain(domain, r["domain"])),
                )
                for r in fill_rows
            ]
            fill_answers = ask_all(
                client, fill_jobs, parse_response, params, max_repairs=max_repairs, on_done=tick, strict=STRICT_RESPONSE
            )
            for r, (ep, _), ans in zip(fill_rows, fill_jobs, fill_answers, strict=True):
                if not _settle(tally, rejects, r, ep, ans):
                    continue
                tally.responses_filled += 1
                rec = {
                    "instruction": r["instruction"],
                    "input": r["input"] or "",
                    "output": ans.value,
                    **({"system": r["system"]} if r["system"] else {}),
                    "teacher": ep.name,
                    "teacher_model": ep.model,
                    "source_id": r["id"],
                }
                out.write(ep.name, _output_domain(domain, r["domain"]), rec)
            done += len(fill_rows) + not_asked.height
        ok = True
    finally:
        files = out.close(keep=ok)
    if tally.rows_in != tally.rows_ok + tally.rows_rejected + tally.rows_pending:
        msg = f"{ds.root}: generate lost rows: {tally.rows_in} in, {tally.rows_ok} ok + {tally.rows_rejected} rejected + {tally.rows_pending} pending"
        raise StoreError(msg)
    pl.concat([pl.DataFrame(rejects, schema=REJECT_SCHEMA), *skipped]).write_parquet(work / "rejects.parquet")
    return tally, files


def _settle(
    tally: GenerateTally, rejects: list[dict[str, Any]], r: Mapping[str, Any], ep: Endpoint, ans: Answer
) -> bool:
    """Count one asked row; True when it has a valid answer, else it is recorded as rejected or pending."""
    t = tally.teachers[ep.name]
    if ans.value is None or ans.problem is not None:
        p = ans.problem or Problem(None, "request_failed", "")
        pending = p.reason == PENDING
        tally.rows_pending += pending
        tally.rows_rejected += not pending
        t.rejected_rows += not pending
        tally.reason(p.reason)
        rejects.append(_reject(r["id"], ep.name, None, p.reason, p.detail, ans.reply.content))
        return False
    tally.rows_ok += 1
    t.rows += 1
    return True


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
