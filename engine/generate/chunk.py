"""Cut documents into overlapping chunks at paragraph, then sentence, then word boundaries.

Each chunk keeps its character offsets into the document, so `doc[char_start:char_end] == text`
always holds and a generated Q&A pair can be traced back to the exact passage. Chunks never exceed
`size` characters; consecutive chunks share up to `overlap` characters, starting the overlap at a
sentence (else word) boundary so a chunk never opens mid-word.
"""

from __future__ import annotations

import bisect
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from engine.errors import ConfigError, InputError

# Paragraph: a blank line or a line break. Sentence: end punctuation (optionally closing quote/bracket)
# followed by whitespace, or glued to a capital letter (dumps that joined paragraphs: "socialism.Humans").
_PARAGRAPH = re.compile(r"\n\s*")
_SENTENCE = re.compile(r"[.!?…][\"'”’)\]]*(?=\s|[A-Z\"“(])")
_WORD = re.compile(r"\s+")
SUFFIXES = (".txt", ".md", ".markdown", ".text", ".rst")


@dataclass(frozen=True, slots=True)
class Chunk:
    index: int
    start: int
    end: int


def _ends(pattern: re.Pattern[str], text: str) -> list[int]:
    return [m.end() if pattern is _SENTENCE else m.start() for m in pattern.finditer(text)]


def _last_in(points: list[int], lo: int, hi: int) -> int | None:
    """The largest point p with lo < p <= hi, or None."""
    i = bisect.bisect_right(points, hi) - 1
    return points[i] if i >= 0 and points[i] > lo else None


def _first_in(points: list[int], lo: int, hi: int) -> int | None:
    """The smallest point p with lo <= p < hi, or None."""
    i = bisect.bisect_left(points, lo)
    return points[i] if i < len(points) and points[i] < hi else None


def _skip_space(text: str, i: int) -> int:
    while i < len(text) and text[i].isspace():
        i += 1
    return i


def _trim_end(text: str, start: int, end: int) -> int:
    while end > start and text[end - 1].isspace():
        end -= 1
    return end


def chunk_spans(text: str, *, size: int = 800, overlap: int = 100) -> list[Chunk]:
    """Chunks of `text` as (start, end) offsets: at most `size` chars, whitespace-trimmed, in order.

    A chunk ends at the last paragraph break past half the size, else the last sentence end, else the
    last whitespace, else exactly at `size` (one unbroken token longer than a chunk).
    """
    check_sizes(size, overlap)
    paras, sents, words = _ends(_PARAGRAPH, text), _ends(_SENTENCE, text), _ends(_WORD, text)
    word_starts = [m.end() for m in _WORD.finditer(text)]
    out: list[Chunk] = []
    start = _skip_space(text, 0)
    while start < len(text):
        limit = start + size
        if limit >= len(text):
            end = len(text)
        else:
            end = (
                _last_in(paras, start + size // 2, limit)
                or _last_in(sents, start, limit)
                or _last_in(words, start, limit)
                or limit
            )
        stop = _trim_end(text, start, end)
        if stop > start:
            out.append(Chunk(len(out), start, stop))
        if end >= len(text):
            break
        lo = max(end - overlap, start + 1)
        nxt = (_first_in(sents, lo, end) or _first_in(word_starts, lo, end)) if overlap else None
        start = _skip_space(text, nxt if nxt is not None else end)
    return out


def check_sizes(size: int, overlap: int) -> None:
    if size < 50:
        msg = f"--chunk-size {size}: expected at least 50 characters"
        raise ConfigError(msg)
    if not 0 <= overlap < size // 2:
        msg = f"--overlap {overlap}: expected 0 <= overlap < chunk-size / 2 ({size // 2})"
        raise ConfigError(msg)


def read_document(path: Path) -> str:
    """A txt/markdown document as text, with a clear error for a missing or non-UTF-8 file."""
    if not path.is_file():
        msg = f"{path}: no such file"
        raise InputError(msg)
    if path.suffix.lower() not in SUFFIXES:
        msg = f"{path}: expected a text or markdown document ({', '.join(SUFFIXES)}), got {path.suffix!r}"
        raise InputError(msg)
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        msg = f"{path}: byte {exc.start}: not valid UTF-8; re-encode the file as UTF-8"
        raise InputError(msg) from exc


def iter_chunk_records(path: Path, *, size: int, overlap: int) -> Iterator[dict[str, object]]:
    """One JSON-ready record per chunk: text, chunk_id (`<stem>#<n>`), doc and char offsets."""
    text = read_document(path)
    for c in chunk_spans(text, size=size, overlap=overlap):
        yield {
            "text": text[c.start : c.end],
            "chunk_id": f"{path.stem}#{c.index}",
            "doc": str(path),
            "char_start": c.start,
            "char_end": c.end,
        }


def write_chunk_source(path: Path, out: Path, *, size: int, overlap: int) -> int:
    """Write the chunks of one document as a JSONL source for ingest (temp name, then rename)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    n = 0
    with tmp.open("w", encoding="utf-8") as fh:
        for rec in iter_chunk_records(path, size=size, overlap=overlap):
            fh.write(json.dumps(rec, ensure_ascii=False) + "\n")
            n += 1
    tmp.replace(out)
    return n
