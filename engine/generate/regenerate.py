"""Regenerate rejected rows: re-ask a teacher, with a stricter prompt, for each row a reviewer rejected.

The prompt (`prompts/regenerate.txt`) carries the instruction, its input, the source passage of a
generated Q&A row, the rejected response and the reviewer's note. A valid answer becomes the row's
`review_edit` response and its label becomes `regenerated`: eligible for selection again, and back in
the review queue. A failed row keeps its `reject` label and reason; a budget stop leaves the rest
pending for a rerun (answered rows come from the cache). Rows are read by `_ord` from their
partitions only, so memory stays at the rejected rows.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import polars as pl

from engine.generate.ask import ask_all
from engine.generate.client import ChatClient, Endpoint
from engine.generate.prompts import STRICT_RESPONSE, context_block, template
from engine.generate.qa import parse_response
from engine.generate.teach import PENDING
from engine.generate.teachers import assign_teachers
from engine.progress import OnProgress, Progress, ignore
from engine.store.dataset import Dataset
from engine.store.labels import read_labels, save_labels
from engine.store.partitions import scan_partition

KINDS = ("sft",)
"""Kinds a teacher can rewrite: one instruction, one response."""


@dataclass(slots=True)
class RegenerateTally:
    rejected: int = 0
    regenerated: int = 0
    failed: int = 0
    pending: int = 0
    skipped: int = 0
    teachers: dict[str, int] = field(default_factory=dict)
    reasons: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def rejected_rows(ds: Dataset) -> pl.DataFrame:
    """The rows whose current label is `reject`, with their edit, note and `_ord`.

    The labels are read once; only partitions holding a rejected row are scanned, and a label whose row
    has another id now (the dataset changed) is left out.
    """
    rejected = read_labels(ds.root).filter(pl.col("review_label") == "reject")
    offsets = np.cumsum([0] + [p["rows"] for p in ds.manifest["partitions"]])
    frames = []
    for i, part in enumerate(ds.partitions):
        mine = rejected.filter(pl.col("_ord").is_between(int(offsets[i]), int(offsets[i + 1]) - 1))
        if mine.is_empty():
            continue
        rows = scan_partition(ds.root, part, []).with_row_index("_ord", offset=int(offsets[i]))
        rows = rows.with_columns(pl.col("_ord").cast(pl.Int64))
        want = mine.lazy().select("_ord", "id", "review_edit", "review_note")
        frames.append(rows.join(want, on=["_ord", "id"], how="inner").collect())
    return pl.concat(frames) if frames else pl.DataFrame()


def _messages(row: Mapping[str, Any]) -> list[dict[str, str]]:
    edit = json.loads(row["review_edit"]) if row["review_edit"] else {}
    instruction = edit.get("instruction", row["instruction"])
    inp = edit.get("input", row["input"])
    meta = json.loads(row["meta"]) if row["meta"] else {}
    passage = meta.get("chunk_text") if isinstance(meta, dict) else None
    note = f" The reviewer's note: {row['review_note']}" if row["review_note"] else ""
    context = context_block(inp, "Input") + context_block(passage, "Answer from this passage only")
    body = template("regenerate").substitute(
        domain=row["domain"] or "general",
        instruction=instruction,
        context=context,
        rejected=edit.get("response", row["response"]),
        note=note,
    )
    system = row["system"]
    return [*([{"role": "system", "content": system}] if system else []), {"role": "user", "content": body}]


def regenerate_rejected(
    ds: Dataset,
    teachers: Sequence[Endpoint],
    shares: Sequence[float],
    client: ChatClient,
    *,
    params: Mapping[str, Any],
    max_repairs: int = 2,
    on_progress: OnProgress = ignore,
) -> RegenerateTally:
    """Re-ask for every rejected row and save the answers as labels; returns the counts (they add up)."""
    rows = rejected_rows(ds)
    tally = RegenerateTally(rejected=rows.height)
    if rows.is_empty():
        return tally
    rows = rows.with_columns(teacher=assign_teachers(pl.col("id"), shares))
    todo = rows.filter(pl.col("kind").is_in(KINDS)).to_dicts()
    tally.skipped = rows.height - len(todo)
    if tally.skipped:
        tally.reasons["unsupported_kind"] = tally.skipped
    jobs = [(teachers[r["teacher"]], _messages(r)) for r in todo]

    def tick(i: int) -> None:
        on_progress(Progress("regenerate", i, len(jobs), rows=i))

    answers = ask_all(
        client, jobs, parse_response, params, max_repairs=max_repairs, on_done=tick, strict=STRICT_RESPONSE
    )
    saved = []
    for r, (ep, _), ans in zip(todo, jobs, answers, strict=True):
        if ans.value is None or ans.problem is not None:
            reason = ans.problem.reason if ans.problem else "request_failed"
            tally.pending += reason == PENDING
            tally.failed += reason != PENDING
            tally.reasons[reason] = tally.reasons.get(reason, 0) + 1
            continue
        edit = json.loads(r["review_edit"]) if r["review_edit"] else {}
        edit["response"] = ans.value
        saved.append(
            {
                "_ord": r["_ord"],
                "id": r["id"],
                "review_label": "regenerated",
                "review_edit": edit,
                "review_note": r["review_note"],
                "review_by": f"regenerate:{ep.name}",
            }
        )
        tally.teachers[ep.name] = tally.teachers.get(ep.name, 0) + 1
    tally.regenerated = len(saved)
    if saved:
        save_labels(ds.root, saved)
    return tally
