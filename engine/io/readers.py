"""Stream source files as Arrow tables of raw records plus rejects, a bounded block at a time.

JSONL (and JSON arrays, re-emitted as JSONL) are parsed by pyarrow's multi-threaded JSON reader with
an explicit schema for the fields the format reads, so a wrong-typed field fails loudly instead of
being coerced. When a block fails, it is bisected until the failing lines stand alone; those become
rejects with a reason and every other line is kept. Clean blocks cost one parse.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Literal

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.json as pj
import pyarrow.parquet as pq

from engine.errors import InputError
from engine.io.sources import Container, open_bytes, split_compression

BLOCK_BYTES = 16 << 20
TextUnit = Literal["auto", "line", "paragraph", "file"]


@dataclass(frozen=True, slots=True)
class Piece:
    """Parsed records from one file, with the 1-based line each row came from."""

    table: pa.Table
    lines: np.ndarray


@dataclass(slots=True)
class Block:
    pieces: list[Piece]
    rejects: list[dict[str, object]]
    bytes_read: int = 0


def _reject(line: int, field: str, reason: str, detail: str, raw: str | None) -> dict[str, object]:
    return {
        "reject_line": line,
        "reject_field": field,
        "reject_reason": reason,
        "reject_detail": detail,
        "reject_raw": raw,
    }


_COLUMN_RE = re.compile(r"Column\((/[^)]*)\) changed from (\w+) to (\w+)")


def _field_path(pointer: str) -> str:
    """'/conversations/[]/value' -> 'conversations[].value'."""
    out = ""
    for part in pointer.strip("/").split("/"):
        out += "[]" if part == "[]" else (f".{part}" if out else part)
    return out or "-"


def _classify(line_bytes: bytes, err: Exception | None, line: int) -> dict[str, object] | None:
    """Say why one line failed to parse, or None when it is blank (not a record)."""
    if not line_bytes.strip():
        return None
    raw = line_bytes.decode("utf-8", errors="replace").rstrip("\r\n")
    try:
        text = line_bytes.decode("utf-8")
    except UnicodeDecodeError as exc:
        return _reject(
            line, "-", "invalid_utf8", f"byte {line_bytes[exc.start]:#04x} at offset {exc.start} is not UTF-8", raw
        )
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        return _reject(line, "-", "invalid_json", f"{exc.msg} at column {exc.colno}", raw)
    if not isinstance(obj, dict):
        return _reject(line, "-", "not_an_object", f"expected a JSON object, got {type(obj).__name__}", raw)
    m = _COLUMN_RE.search(str(err))
    if m:
        return _reject(line, _field_path(m.group(1)), "wrong_type", f"expected {m.group(2)}, got {m.group(3)}", raw)
    return _reject(line, "-", "invalid_json", f"unparseable record: {err}", raw)


def _parse_options(expected: dict[str, pa.DataType]) -> pj.ParseOptions:
    schema = pa.schema(list(expected.items())) if expected else None
    return pj.ParseOptions(explicit_schema=schema, unexpected_field_behavior="infer", newlines_in_values=False)


def parse_ndjson(
    data: bytes | memoryview, offsets: np.ndarray, lines: np.ndarray, expected: dict[str, pa.DataType]
) -> Block:
    """Parse len(lines) newline-terminated records; bisect failing ranges down to single rejects."""
    block = Block([], [])
    opts = _parse_options(expected)
    view = memoryview(data)  # slices of it are zero-copy views for pyarrow's reader

    stack = [(0, len(lines))] if len(lines) else []
    while stack:  # an explicit stack, not a recursive closure: that would be a cycle keeping every block alive
        lo, hi = stack.pop()
        chunk = view[offsets[lo] : offsets[hi]]
        # the whole range as one pyarrow block: one chunk per column (1 MB blocks made ~16 per 16 MB read, and
        # every later step walked them; 1M rows: wall 0.974x, 10 alternated runs)
        block_size = int(offsets[hi] - offsets[lo]) + 1
        err: Exception | None = None
        try:
            table = pj.read_json(
                pa.BufferReader(pa.py_buffer(chunk)),
                # one thread: this runs on ingest's reader thread beside the converting main thread and the
                # writer, which keep both cores busy; Arrow's own pool on top only adds hand-offs (1M rows:
                # wall 0.954x, peak memory 0.95x, 10 alternated runs)
                read_options=pj.ReadOptions(block_size=block_size, use_threads=False),
                parse_options=opts,
            )
            table.validate(full=True)  # pyarrow's JSON reader does not check UTF-8 in strings; Parquet requires it
            if table.num_rows == hi - lo:
                block.pieces.append(Piece(table, lines[lo:hi]))
                continue
        except (pa.ArrowInvalid, pa.ArrowTypeError, UnicodeDecodeError) as exc:
            err = exc
        if hi - lo == 1:
            rej = _classify(bytes(chunk), err, int(lines[lo]))
            err = None  # its traceback holds this frame: a cycle that would keep views of `data` alive
            if rej is not None:
                block.rejects.append(rej)
            continue
        mid = (lo + hi) // 2
        stack += [(mid, hi), (lo, mid)]  # the left half pops first: pieces stay in row order
    return block


def _split_lines(
    buf: bytes | memoryview, first_line: int, final: bool, scratch: np.ndarray | None = None
) -> tuple[bytes | memoryview, np.ndarray, np.ndarray, int]:
    """Drop blank lines; return the records' bytes (each ending in \\n), offsets, line numbers, and lines seen.

    `scratch` (bool, at least len(buf)) saves allocating, and page-faulting in, a fresh mask per block.
    """
    if not len(buf):
        return b"", np.zeros(1, dtype=np.int64), np.zeros(0, dtype=np.int64), 0
    arr = np.frombuffer(buf, dtype=np.uint8)
    is_nl = (
        np.equal(arr, 10, out=scratch[: len(arr)]) if scratch is not None and len(scratch) >= len(arr) else arr == 10
    )
    nl = np.flatnonzero(is_nl)
    del is_nl
    if final and (len(nl) == 0 or nl[-1] != len(buf) - 1):
        buf = bytes(buf) + b"\n"
        arr = np.frombuffer(buf, dtype=np.uint8)
        nl = np.append(nl, len(buf) - 1)
    starts = np.concatenate(([0], nl[:-1] + 1)).astype(np.int64)
    lengths = nl - starts  # without the newline
    blank = (lengths == 0) | ((lengths == 1) & (arr[starts] == 13))
    line_no = np.arange(first_line, first_line + len(nl), dtype=np.int64)
    if blank.any():
        keep = np.ones(len(buf), dtype=bool)
        keep[starts[blank]] = False
        keep[nl[blank]] = False
        buf = arr[keep].tobytes()
        kept_len = lengths[~blank] + 1
        line_no = line_no[~blank]
    else:
        kept_len = lengths + 1
    offsets = np.concatenate(([0], np.cumsum(kept_len))).astype(np.int64)
    return buf, offsets, line_no, len(nl)


def _fill(fh: BinaryIO, view: memoryview) -> int:
    """Read until `view` is full or the stream ends, like fh.read(len(view)) but into place."""
    got = 0
    while got < len(view):
        n = fh.readinto(view[got:])
        if not n:
            break
        got += n
    return got


def _line_blocks(fh: BinaryIO, block_bytes: int) -> Iterator[tuple[memoryview, bool]]:
    """(whole lines, final) read `block_bytes` at a time and cut after the last newline of each read.

    The blocks are exactly those of `carry + fh.read(block_bytes)`, but they live in one reused buffer,
    so reading a large file neither allocates nor page-faults in two fresh copies of every block. A
    view is only valid until the next one is asked for, and the caller must not keep it (or anything
    made from it without a copy) past then; pyarrow's JSON reader copies what it parses.
    """
    buf = bytearray(block_bytes)
    carried = 0  # bytes at the front of buf: the partial line after the last cut
    while True:
        if len(buf) < carried + block_bytes:  # a line longer than a block: a bigger buffer
            grown = bytearray(carried + block_bytes)
            grown[:carried] = buf[:carried]
            buf = grown
        with memoryview(buf) as whole:
            got = _fill(fh, whole[carried : carried + block_bytes])
        end = carried + got
        if not got:
            with memoryview(buf) as whole, whole[:carried] as last:
                yield last, True
            return
        cut = buf.rfind(b"\n", 0, end)
        if cut < 0:
            carried = end
            continue
        with memoryview(buf) as whole, whole[: cut + 1] as lines:
            yield lines, False
        carried = end - (cut + 1)
        buf[:carried] = buf[cut + 1 : end]  # same length: the buffer is not resized


def iter_jsonl(path: Path, expected: dict[str, pa.DataType], block_bytes: int = BLOCK_BYTES) -> Iterator[Block]:
    """JSONL a block of whole lines at a time, parsed from views of one reused read buffer."""
    line = 1
    scratch = np.empty(block_bytes, dtype=bool)
    with open_bytes(path) as fh:
        for view, final in _line_blocks(fh, block_bytes):
            data, offsets, lines, n_lines = _split_lines(view, line, final, scratch)
            block = parse_ndjson(data, offsets, lines, expected)
            block.bytes_read = len(view)
            del data  # a view of the read buffer, which the next block overwrites
            yield block
            line += n_lines


def _first_char(path: Path) -> str:
    with open_bytes(path) as fh:
        head = fh.read(4096)
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    return chr(text[0]) if text else ""


def iter_json(path: Path, expected: dict[str, pa.DataType], block_bytes: int = BLOCK_BYTES) -> Iterator[Block]:
    """A JSON array streamed element by element (a .json file holding JSONL is read as JSONL)."""
    if _first_char(path) != "[":
        yield from iter_jsonl(path, expected, block_bytes)
        return
    decoder = json.JSONDecoder()
    ws = re.compile(r"[\s,]*")
    with io.TextIOWrapper(open_bytes(path), encoding="utf-8", errors="surrogateescape") as fh:
        buf = fh.read(block_bytes)
        eof = not buf
        pos = buf.index("[") + 1
        line = 1 + buf.count("\n", 0, pos)
        out: list[bytes] = []
        out_lines: list[int] = []
        out_bytes = 0
        rejects: list[dict[str, object]] = []

        def flush() -> Block:
            data = b"".join(out)
            offsets = np.concatenate(([0], np.cumsum([len(b) for b in out]))).astype(np.int64)
            block = parse_ndjson(data, offsets, np.array(out_lines, dtype=np.int64), expected)
            block.rejects.extend(rejects)
            block.bytes_read = out_bytes
            out.clear(), out_lines.clear(), rejects.clear()
            return block

        while True:
            m = ws.match(buf, pos)
            line += buf.count("\n", pos, m.end())
            pos = m.end()
            if pos >= len(buf) and not eof:
                more = fh.read(block_bytes)
                eof = not more
                buf, pos = buf[pos:] + more, 0
                continue
            if pos < len(buf) and buf[pos] == "]":
                break
            if pos >= len(buf):
                rejects.append(_reject(line, "-", "invalid_json", "the array is not closed with ']'", None))
                break
            try:
                obj, end = decoder.raw_decode(buf, pos)
            except json.JSONDecodeError as exc:
                if not eof and len(buf) - pos < (256 << 20):
                    more = fh.read(block_bytes)
                    eof = not more
                    buf, pos = buf[pos:] + more, 0
                    continue
                rest = buf[pos : pos + 200]
                rejects.append(
                    _reject(
                        line + buf.count("\n", pos, exc.pos),
                        "-",
                        "invalid_json",
                        f"{exc.msg}; the rest of the array ({len(buf) - pos} chars) cannot be read",
                        rest,
                    )
                )
                break
            text = buf[pos:end]
            if not isinstance(obj, dict):
                rejects.append(
                    _reject(
                        line, "-", "not_an_object", f"expected a JSON object, got {type(obj).__name__}", text[:1000]
                    )
                )
            else:
                try:
                    encoded = text.replace("\n", " ").replace("\r", " ").encode("utf-8") + b"\n"
                except UnicodeEncodeError as exc:
                    raw = text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
                    rejects.append(_reject(line, "-", "invalid_utf8", f"undecodable byte at offset {exc.start}", raw))
                else:
                    out.append(encoded)
                    out_lines.append(line)
                    out_bytes += len(encoded)
            line += buf.count("\n", pos, end)
            pos = end
            if out_bytes >= block_bytes:
                yield flush()
                buf, pos = buf[pos:], 0
        yield flush()


def iter_parquet(path: Path, batch_rows: int = 65_536) -> Iterator[Block]:
    _, comp = split_compression(path)
    if comp:
        msg = f"{path}: compressed Parquet containers are not supported; Parquet compresses its own pages"
        raise InputError(msg)
    pf = pq.ParquetFile(path)
    first = 1
    for batch in pf.iter_batches(batch_size=batch_rows):
        table = pa.Table.from_batches([batch])
        lines = np.arange(first, first + table.num_rows, dtype=np.int64)
        first += table.num_rows
        yield Block([Piece(table, lines)], [], batch.nbytes)


def iter_csv(path: Path, block_bytes: int = BLOCK_BYTES) -> Iterator[Block]:
    ext, _ = split_compression(path)
    delimiter = "\t" if ext == ".tsv" else ","
    with open_bytes(path) as fh:
        header = fh.readline().decode("utf-8", errors="replace")
    names = next(iter(csv.reader([header], delimiter=delimiter)), [])
    invalid: list[dict[str, object]] = []

    def on_invalid(row: pacsv.InvalidRow) -> str:
        detail = f"expected {row.expected_columns} fields, got {row.actual_columns}"
        invalid.append(
            _reject(row.number if row.number and row.number > 0 else -1, "-", "invalid_csv", detail, row.text)
        )
        return "skip"

    reader = pacsv.open_csv(
        open_bytes(path),
        read_options=pacsv.ReadOptions(block_size=block_bytes),
        parse_options=pacsv.ParseOptions(delimiter=delimiter, newlines_in_values=True, invalid_row_handler=on_invalid),
        convert_options=pacsv.ConvertOptions(column_types={n: pa.string() for n in names}, strings_can_be_null=False),
    )
    line = 2
    for batch in reader:
        table = pa.Table.from_batches([batch])
        lines = np.arange(line, line + table.num_rows, dtype=np.int64)
        line += table.num_rows + len(invalid)
        yield Block([Piece(table, lines)], list(invalid), batch.nbytes)
        invalid.clear()
    if invalid:
        yield Block([], list(invalid))


def _text_piece(texts: list[bytes], lines: list[int], path: Path) -> Block:
    decoded = pl.Series("raw", texts, dtype=pl.Binary).cast(pl.String, strict=False)
    bad = decoded.is_null().to_numpy()
    rejects = [
        _reject(lines[i], "text", "invalid_utf8", "the text is not valid UTF-8", texts[i].decode("utf-8", "replace"))
        for i in np.flatnonzero(bad)
    ]
    table = pa.table({"text": decoded.filter(~decoded.is_null()).to_arrow()})
    return Block([Piece(table, np.array(lines, dtype=np.int64)[~bad])], rejects, sum(map(len, texts)))


def iter_text(path: Path, unit: TextUnit = "auto", block_bytes: int = BLOCK_BYTES) -> Iterator[Block]:
    """Documents: one row per non-blank line (.txt default), per blank-line paragraph, or per file (.md default)."""
    if unit == "auto":
        unit = "file" if split_compression(path)[0] in (".md", ".markdown") else "line"
    if unit == "file":
        with open_bytes(path) as fh:
            data = fh.read()
        if data.strip():
            yield _text_piece([data], [1], path)
        return
    if unit == "paragraph":
        with open_bytes(path) as fh:
            data = fh.read()
        texts, lines = [], []
        for m in re.finditer(rb"(?:[^\n]*\S[^\n]*(?:\n|$))+", data):
            texts.append(m.group(0).rstrip(b"\r\n"))
            lines.append(1 + data.count(b"\n", 0, m.start()))
        if texts:
            yield _text_piece(texts, lines, path)
        return
    line = 1
    with open_bytes(path) as fh:
        carry = b""
        while True:
            chunk = fh.read(block_bytes)
            buf = carry + chunk
            if chunk:
                cut = buf.rfind(b"\n")
                buf, carry = (buf[: cut + 1], buf[cut + 1 :]) if cut >= 0 else (b"", buf)
            else:
                carry = b""
            parts = buf.split(b"\n")
            if buf.endswith(b"\n"):
                parts.pop()
            texts = [p.rstrip(b"\r") for p in parts]
            lines = [line + i for i, t in enumerate(texts) if t.strip()]
            texts = [t for t in texts if t.strip()]
            if texts:
                yield _text_piece(texts, lines, path)
            line += len(parts)
            if not chunk:
                return


def peek_record(path: Path, container: Container) -> dict[str, object] | None:
    """The first parseable record's fields, for format detection (None when the file has none)."""
    if container == "parquet":
        schema = pq.read_schema(path)
        return {name: _sample_of(schema.field(name).type) for name in schema.names}
    if container == "csv":
        for block in iter_csv(path):
            for piece in block.pieces:
                return {name: "" for name in piece.table.column_names}
        return None
    if container == "text":
        return {"text": ""}
    with open_bytes(path) as fh:
        head = fh.read(1 << 20)
    text = head.decode("utf-8", errors="replace").lstrip("\ufeff \t\r\n")
    if text.startswith("["):
        try:
            obj, _ = json.JSONDecoder().raw_decode(text, text.index("[") + 1 + (len(text[1:]) - len(text[1:].lstrip())))
            return obj if isinstance(obj, dict) else None
        except json.JSONDecodeError:
            pass
    for raw in text.splitlines()[:100]:
        try:
            obj = json.loads(raw)
        except json.JSONDecodeError:
            continue
        if isinstance(obj, dict):
            return obj
    return None


def _sample_of(t: pa.DataType) -> object:
    """A Python value of the same shape as an Arrow type (for detecting formats of Parquet files)."""
    if pa.types.is_struct(t):
        return {t.field(i).name: _sample_of(t.field(i).type) for i in range(t.num_fields)}
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        return [_sample_of(t.value_type)]
    if pa.types.is_boolean(t):
        return True
    if pa.types.is_integer(t) or pa.types.is_floating(t):
        return 0
    return ""
