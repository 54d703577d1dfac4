"""Ingest sources into a dataset dir: detect, stream, convert, partition, reject with reasons.

Memory stays bounded by one read block plus one partition: blocks are converted as they arrive and
flushed to `part-NNNNN.parquet` every `partition_rows` rows. Every row read is either kept or in
`rejects/`, and the totals are checked before the manifest is written. The manifest is written last,
so a killed ingest leaves no manifest and the rerun starts it over.
"""

from __future__ import annotations

import json
import queue
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import closing
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl
import xxhash

import engine
from engine.errors import ConfigError, InputError, StoreError, did_you_mean
from engine.io import readers
from engine.io.canonical import finalize, hash_id_column, load_id_kernel
from engine.io.formats import FORMATS, convert, detect
from engine.io.rejects import REJECT_SCHEMA, reject_frame
from engine.io.sources import check_readable, container_of
from engine.progress import OnProgress, Progress, ignore
from engine.schema import dataset_schema, schema_version
from engine.store.collector import frozen_start
from engine.store.location import Where, location, remove_tree
from engine.store.manifest import FORMAT_VERSION, MANIFEST, write_manifest
from engine.store.partitions import CODEC, Codec, check_codec, file_hash, part_name, write_parquet_atomic


@dataclass(frozen=True, slots=True)
class SourceSpec:
    """One input file and how to read it."""

    path: Path
    format: str = "auto"
    mapping: Mapping[str, str] = field(default_factory=dict)
    domain: str | None = None
    source: str | None = None
    text_unit: readers.TextUnit = "auto"


@dataclass(frozen=True, slots=True)
class FileReport:
    path: str
    format: str
    detected: str | None
    kind: str
    rows_read: int
    kept: int
    rejected: int


@dataclass(frozen=True, slots=True)
class IngestReport:
    out: Where
    files: tuple[FileReport, ...]
    kept: int
    rejected: int
    partitions: int
    seconds: float
    up_to_date: bool = False

    @property
    def rows_read(self) -> int:
        return self.kept + self.rejected


@dataclass(slots=True)
class _Plan:
    spec: SourceSpec
    container: readers.Container | str
    format: str
    detected: str | None
    bound: dict[str, str]
    size: int
    hash: str = ""  # xxh64 of the file as stored: filled in by `_hash_sources`, beside the work


def _plan(spec: SourceSpec, on_progress: OnProgress) -> _Plan:
    path = spec.path
    check_readable(path)
    container = container_of(path)
    if spec.format != "auto" and spec.format not in FORMATS:
        msg = f"--format {spec.format!r}: expected auto|{'|'.join(FORMATS)}{did_you_mean(spec.format, FORMATS)}"
        raise ConfigError(msg)
    detected = None
    record = readers.peek_record(path, container) if container != "text" else {"text": ""}
    if spec.format == "auto":
        name, why = ("text", "a text document") if container == "text" else detect(record, str(path))
        detected = why
        on_progress(Progress("detect", 0, None, message=f"{path}: format {name} ({why})"))
    else:
        name = spec.format
    if container == "text" and name != "text":
        msg = f"{path}: a text document can only be ingested as --format text, not {name!r}"
        raise ConfigError(msg)
    fields = list(record or {})
    bound = FORMATS[name].bind(fields, spec.mapping)
    for slot, src_field in spec.mapping.items():
        if record is not None and src_field not in record:
            msg = f"{path}: --map {slot}={src_field}: the file has no field {src_field!r}{did_you_mean(src_field, fields)}"
            raise ConfigError(msg)
    return _Plan(spec, container, name, detected, bound, path.stat().st_size)


def _hash_sources(plans: list[_Plan]) -> None:
    for p in plans:
        p.hash = file_hash(p.spec.path)


def _blocks(plan: _Plan) -> Iterator[readers.Block]:
    path, schema = plan.spec.path, FORMATS[plan.format].explicit_schema(plan.bound)
    if plan.container == "jsonl":
        return readers.iter_jsonl(path, schema)
    if plan.container == "json":
        return readers.iter_json(path, schema)
    if plan.container == "parquet":
        return readers.iter_parquet(path)
    if plan.container == "csv":
        return readers.iter_csv(path)
    return readers.iter_text(path, plan.spec.text_unit)


def _fingerprint(plans: list[_Plan], partition_rows: int, codec: Codec) -> str:
    parts: list[Any] = [engine.__version__, schema_version(), partition_rows]
    if codec != "zstd":  # the only codec before there was a choice: datasets ingested then keep their fingerprint
        parts.append(codec)
    for p in plans:
        s = p.spec
        parts += [str(s.path), p.size, p.hash, p.format, sorted(s.mapping.items()), s.domain, s.source, s.text_unit]
    return xxhash.xxh64_hexdigest(repr(parts).encode())


def _written_ingest(out: Where) -> dict[str, Any] | None:
    """The `ingest` record of the manifest already in `out` (its codec filled in: zstd before there was a
    choice), or None where there is none or it cannot be read."""
    try:
        record = json.loads((out / MANIFEST).read_text())["ingest"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return {"codec": "zstd", **record} if isinstance(record, dict) else None


def _prepare_out(out: Where, written: dict[str, Any] | None, fingerprint: Callable[[], str], overwrite: bool) -> bool:
    """True when `out` already holds this exact ingest (`written`: its manifest's `_written_ingest`);
    otherwise leave it empty and ready."""
    if (out / MANIFEST).exists():
        if written is not None and written.get("fingerprint") == fingerprint():
            return True
        if not overwrite:
            msg = f"{out}: already holds a different dataset; pass --overwrite to replace it, or choose another --out"
            raise StoreError(msg)
    if out.exists():
        if not out.is_dir():
            msg = f"{out}: exists and is not a directory; choose another --out"
            raise StoreError(msg)
        ours = {MANIFEST, "rejects", "stages"}
        foreign = [p.name for p in out.iterdir() if p.name not in ours and not p.name.startswith(("part-", ".part-"))]
        if foreign and not overwrite:
            msg = f"{out}: is not empty ({foreign[0]!r} is not ours); choose an empty or new --out directory"
            raise StoreError(msg)
        for p in out.iterdir():
            if p.name in ours or p.name.startswith(("part-", ".part-")):
                remove_tree(p) if p.is_dir() else p.unlink()
    out.mkdir(parents=True, exist_ok=True)
    return False


_END = object()


def _prefetch(blocks: Iterator[readers.Block], depth: int = 1) -> Iterator[readers.Block]:
    """The same blocks in the same order, read and parsed on a side thread up to `depth` blocks ahead.

    Reading and pyarrow's JSON parser release the GIL, so the next block is parsed while this one is
    converted and hashed. The queue bounds memory to `depth` parsed blocks (plus one in each hand).
    An error in the reader is raised here, at the block where it happened.
    """
    jobs: queue.Queue[object] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item: object) -> bool:
        while not stop.is_set():
            try:
                jobs.put(item, timeout=0.1)
            except queue.Full:
                continue
            return True
        return False

    def run() -> None:
        try:
            for block in blocks:
                if not put(block):
                    return
        except BaseException as exc:  # handed to the consuming thread below
            put(exc)
        else:
            put(_END)
        finally:
            getattr(blocks, "close", lambda: None)()

    thread = threading.Thread(target=run, name="distill-ingest-reader", daemon=True)
    thread.start()
    try:
        while (item := jobs.get()) is not _END:
            if isinstance(item, BaseException):
                raise item
            yield item  # type: ignore[misc]
    finally:
        stop.set()
        thread.join()


class _BackgroundWriter:
    """One thread that writes finished partitions while the caller parses and converts the next rows.

    Parquet encoding and compression release the GIL, so on two cores writing overlaps the rest. At
    most `depth` frames are handed over and not yet on disk (`submit` waits for a free slot), so memory
    stays bounded by depth + 1 partitions: the ones being written and the one being filled. A failed
    write is raised in the caller at its next `submit` or at `close`.
    """

    def __init__(self, codec: Codec = CODEC, depth: int = 1) -> None:
        self._codec = codec
        self._slots = threading.Semaphore(depth)
        self._jobs: queue.SimpleQueue[tuple[pl.DataFrame, Where, dict[str, Any]] | None] = queue.SimpleQueue()
        self._error: Exception | None = None
        self._thread = threading.Thread(target=self._run, name="distill-ingest-writer", daemon=True)
        self._thread.start()

    def submit(self, frame: pl.DataFrame, path: Where, record: dict[str, Any]) -> None:
        """Write `frame` to `path` and set record["hash"] once the file is complete."""
        self._raise()
        self._slots.acquire()
        self._raise()
        self._jobs.put((frame, path, record))

    def close(self) -> None:
        """Wait for every submitted write; raise the first error."""
        self.stop()
        self._raise()

    def stop(self) -> None:
        if self._thread.is_alive():
            self._jobs.put(None)
            self._thread.join()

    def _raise(self) -> None:
        if self._error is not None:
            raise self._error

    def _run(self) -> None:
        while (job := self._jobs.get()) is not None:
            self._write(*job)
            del job  # drop the frame before the slot frees up
            self._slots.release()

    def _write(self, frame: pl.DataFrame, path: Where, record: dict[str, Any]) -> None:
        if self._error is not None:
            return
        try:
            write_parquet_atomic(frame, path, codec=self._codec)
            record["hash"] = file_hash(path)
        except Exception as exc:  # handed to the caller's thread by _raise
            self._error = exc


class _PartitionWriter:
    """Buffers frames and writes `part-NNNNN.parquet` every `rows` rows (the last one may be short)."""

    def __init__(self, root: Where, rows: int, writer: _BackgroundWriter, prefix: str = "") -> None:
        self.root, self.rows, self.writer, self.prefix = root, rows, writer, prefix
        self.buffer: list[pl.DataFrame] = []
        self.buffered = 0
        self.written: list[dict[str, Any]] = []

    def add(self, df: pl.DataFrame) -> None:
        if df.height:
            self.buffer.append(df)
            self.buffered += df.height
        while self.buffered >= self.rows:
            self._flush(self.rows)

    def close(self) -> None:
        if self.buffered:
            self._flush(self.buffered)

    def _flush(self, n: int) -> None:
        frame = pl.concat(self.buffer, how="vertical") if len(self.buffer) > 1 else self.buffer[0]
        head, rest = frame.slice(0, n), frame.slice(n)
        self.buffer = [rest] if rest.height else []
        self.buffered = rest.height
        del frame
        name = part_name(len(self.written))
        record: dict[str, Any] = {
            "name": f"{self.prefix}{'/' if self.prefix else ''}{name}".removeprefix("/"),
            "rows": head.height,
            "hash": None,  # set by the writer once the file is on disk
        }
        self.written.append(record)
        self.writer.submit(head, self.root / self.prefix / name, record)


class _IdsWhenLoaded:
    """Kept rows on their way to the partitions, their ids hashed as soon as numba has the id kernel.

    numba's first kernel in a process takes ~0.15 s to load. Until then the main thread goes on converting
    (Polars, no GIL held) and keeps the rows with their content keys in `id`; they are hashed and passed
    on in order once the kernel is there, or when a partition's worth is waiting (memory stays bounded).
    """

    def __init__(self, parts: _PartitionWriter, ready: threading.Event, max_rows: int) -> None:
        self.parts, self.ready, self.max_rows = parts, ready, max_rows
        self.waiting: list[pl.DataFrame] = []
        self.rows = 0

    @property
    def hashed(self) -> bool:
        return self.ready.is_set()

    def add(self, frame: pl.DataFrame, hashed: bool) -> None:
        if hashed:
            self.flush()
            self.parts.add(frame)
            return
        self.waiting.append(frame)
        self.rows += frame.height
        if self.rows >= self.max_rows:
            self.flush()

    def flush(self) -> None:
        if self.waiting:
            self.ready.wait()
            for frame in self.waiting:
                self.parts.add(hash_id_column(frame))
            self.waiting, self.rows = [], 0


def _ingest_all(
    plans: list[_Plan],
    out: Where,
    partition_rows: int,
    writer: _BackgroundWriter,
    on_progress: OnProgress,
    ids_ready: threading.Event,
) -> tuple[_PartitionWriter, _PartitionWriter, list[FileReport]]:
    """Stream every source through convert + finalize into partitions and rejects (written by `writer`)."""
    parts = _PartitionWriter(out, partition_rows, writer)
    kept_rows = _IdsWhenLoaded(parts, ids_ready, partition_rows)
    rejects = _PartitionWriter(out, partition_rows, writer, prefix="rejects")
    total_bytes = sum(p.size for p in plans)
    done_bytes = done_before = kept_total = 0
    reports: list[FileReport] = []
    for plan in plans:
        fmt = FORMATS[plan.format]
        spec = plan.spec
        src_name = spec.source or spec.path.name.split(".")[0]
        rename = {src: f"__{slot}" for slot, src in plan.bound.items()}
        kept = rejected = 0
        with closing(_prefetch(_blocks(plan))) as blocks:
            for block in blocks:
                for piece in block.pieces:
                    df = pl.from_arrow(piece.table)
                    assert isinstance(df, pl.DataFrame)
                    df = df.with_columns(_row=pl.int_range(0, df.height, dtype=pl.Int64), _line=pl.Series(piece.lines))
                    unknown = [c for c in df.columns if c not in rename and c not in ("_row", "_line")]
                    renamed = df.rename({k: v for k, v in rename.items() if k in df.columns})
                    conv = convert(fmt, renamed, plan.bound)
                    if conv["_reason"].null_count() == conv.height:  # the common case: no copy
                        good, bad = conv, conv.clear()
                    else:
                        good = conv.filter(pl.col("_reason").is_null())
                        bad = conv.filter(pl.col("_reason").is_not_null())
                    hashed = kept_rows.hashed
                    frame = finalize(
                        good.drop("_reason", "_field", "_detail"),
                        df,
                        unknown,
                        kind=fmt.kind,
                        source=src_name,
                        domain=spec.domain,
                        src_file=str(spec.path),
                        hashed=hashed,
                    )
                    kept_rows.add(frame, hashed)
                    if bad.height:
                        raw_cols = [c for c in df.columns if c not in ("_row", "_line")]
                        raw = df.select(
                            "_row",
                            reject_raw=pl.struct(raw_cols).struct.json_encode()
                            if raw_cols
                            else pl.lit(None, pl.String),
                        )
                        rejects.add(
                            bad.join(raw, on="_row", how="left", maintain_order="left").select(
                                reject_source=pl.lit(str(spec.path)),
                                reject_line=pl.col("_line").cast(pl.Int64),
                                reject_field=pl.col("_field"),
                                reject_reason=pl.col("_reason"),
                                reject_detail=pl.col("_detail"),
                                reject_raw=pl.col("reject_raw"),
                            )
                        )
                    kept += good.height
                    rejected += bad.height
                if block.rejects:
                    rejects.add(reject_frame([{"reject_source": str(spec.path), **r} for r in block.rejects]))
                    rejected += len(block.rejects)
                done_bytes = min(done_bytes + block.bytes_read, done_before + plan.size)
                on_progress(
                    Progress(
                        "ingest",
                        min(done_bytes, total_bytes),
                        total_bytes,
                        unit="bytes",
                        rows=kept_total + kept + rejected,
                    )
                )
        kept_total += kept
        done_before += plan.size
        done_bytes = done_before
        reports.append(
            FileReport(str(spec.path), plan.format, plan.detected, fmt.kind, kept + rejected, kept, rejected)
        )
    kept_rows.flush()
    parts.close()
    rejects.close()
    return parts, rejects, reports


def ingest(
    sources: list[SourceSpec],
    out: str | Path,
    *,
    partition_rows: int = 100_000,
    codec: Codec | None = None,
    overwrite: bool = False,
    on_progress: OnProgress = ignore,
) -> IngestReport:
    """Read every source into the dataset dir `out`; see the module docstring. `codec`: the partitions'
    compression (LZ4 reads back fastest, zstd takes ~2/3 of the disk; see `engine.store.partitions.CODEC`);
    None keeps the codec of the dataset already in `out`, and gives a new one LZ4.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (d / "a.jsonl").write_text('{"text": "hello"}\\n{"text": ""}\\n')
    >>> r = ingest([SourceSpec(d / "a.jsonl")], d / "out")
    >>> (r.kept, r.rejected)
    (1, 1)
    """
    started = time.perf_counter()
    out = location(out)
    if not sources:
        msg = "no sources given; pass one or more files, e.g. distill ingest data.jsonl --out DIR"
        raise InputError(msg)
    if partition_rows < 1:
        msg = f"--partition-rows must be >= 1, got {partition_rows}"
        raise ConfigError(msg)
    if codec is not None:
        check_codec(codec)
    # numba loads the id kernel in ~0.15 s of CPU: do it beside planning, parsing and converting (kept rows
    # wait for it in `_IdsWhenLoaded`).
    # Join it on every way out: a daemon thread still inside numba when the interpreter exits aborts it.
    ids_ready = threading.Event()

    def load() -> None:
        try:
            load_id_kernel()
        finally:
            ids_ready.set()  # also on a failure: the first real call then raises it where it can be seen

    loader = threading.Thread(target=load, name="distill-load-id-kernel", daemon=True)
    loader.start()
    # The sources' hashes identify them in the fingerprint, which only a rerun needs up front (is `out`
    # already this ingest?); a fresh ingest writes it at the end, so they are read and hashed beside the
    # work (xxhash releases the GIL), not in a full extra pass over the input before it.
    try:
        with frozen_start():  # the imports' objects sit out the collector's walks (engine.store.collector)
            plans = [_plan(s, on_progress) for s in sources]
            with ThreadPoolExecutor(1, thread_name_prefix="distill-hash-sources") as pool:
                sources_hashed = pool.submit(_hash_sources, plans)
                return _ingest_planned(
                    plans, sources_hashed, out, partition_rows, codec, overwrite, on_progress, started, ids_ready
                )
    finally:
        loader.join()


def _ingest_planned(
    plans: list[_Plan],
    sources_hashed: Future[None],
    out: Where,
    partition_rows: int,
    codec: Codec | None,
    overwrite: bool,
    on_progress: OnProgress,
    started: float,
    ids_ready: threading.Event,
) -> IngestReport:
    written = _written_ingest(out)
    have: Codec | None = written["codec"] if written else None
    codec = codec or have or CODEC

    def fingerprint(c: Codec = codec) -> str:
        sources_hashed.result()
        return _fingerprint(plans, partition_rows, c)

    if written and have != codec and not overwrite and written.get("fingerprint") == fingerprint(have):
        msg = f"{out}: holds this ingest with {have} partitions; pass --overwrite to rewrite them as {codec}"
        raise StoreError(msg)
    if _prepare_out(out, written, fingerprint, overwrite):
        m = json.loads((out / MANIFEST).read_text())
        files = tuple(
            FileReport(s["path"], s["format"], s.get("detected"), s["kind"], s["rows_read"], s["kept"], s["rejected"])
            for s in m["sources"]
        )
        return IngestReport(
            out, files, m["rows"], m["rejected"], len(m["partitions"]), time.perf_counter() - started, up_to_date=True
        )

    writer = _BackgroundWriter(codec)
    try:
        parts, rejects, reports = _ingest_all(plans, out, partition_rows, writer, on_progress, ids_ready)
        writer.close()
    finally:
        writer.stop()  # on an error, let a write in flight finish before the error propagates
    n_kept = sum(p["rows"] for p in parts.written)
    n_rejected = sum(p["rows"] for p in rejects.written)
    if n_kept != sum(r.kept for r in reports) or n_rejected != sum(r.rejected for r in reports):
        counted = sum(r.kept for r in reports)
        msg = f"{out}: wrote {n_kept} kept + {n_rejected} rejected rows, but counted {counted} kept; this is a bug"
        raise StoreError(msg)
    if not parts.written:
        write_parquet_atomic(dataset_schema().empty_table(), out / part_name(0), codec=codec)
        parts.written.append({"name": part_name(0), "rows": 0, "hash": file_hash(out / part_name(0))})
    if not rejects.written:
        (out / "rejects").mkdir(exist_ok=True)
        empty = pl.DataFrame(schema=REJECT_SCHEMA).to_arrow()
        write_parquet_atomic(empty, out / "rejects" / part_name(0), codec=codec)
        rejects.written.append(
            {"name": f"rejects/{part_name(0)}", "rows": 0, "hash": file_hash(out / "rejects" / part_name(0))}
        )

    kinds: dict[str, int] = {}
    for r in reports:
        kinds[r.kind] = kinds.get(r.kind, 0) + r.kept
    manifest = {
        "format_version": FORMAT_VERSION,
        "engine_version": engine.__version__,
        "schema_version": schema_version(),
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "kind": next(iter(kinds)) if len(kinds) == 1 else "mixed",
        "kinds": kinds,
        "rows": n_kept,
        "rejected": n_rejected,
        "rows_read": n_kept + n_rejected,
        "ingest": {"fingerprint": fingerprint(), "partition_rows": partition_rows, "codec": codec},
        "sources": [
            {
                "path": r.path,
                "size": p.size,
                "hash": p.hash,
                "format": r.format,
                "detected": r.detected,
                "kind": r.kind,
                "mapping": p.bound,
                "domain": p.spec.domain,
                "source": p.spec.source,
                "rows_read": r.rows_read,
                "kept": r.kept,
                "rejected": r.rejected,
            }
            for r, p in zip(reports, plans, strict=True)
        ],
        "partitions": parts.written,
        "rejects": rejects.written,
        "stages": [],
    }
    write_manifest(out, manifest)
    return IngestReport(out, tuple(reports), n_kept, n_rejected, len(parts.written), time.perf_counter() - started)
