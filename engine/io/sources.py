"""Open source files as byte streams (plain, .gz, .zst) and tell their container type from the name."""

from __future__ import annotations

import gzip
import io
from pathlib import Path
from typing import BinaryIO, Literal

from engine.errors import InputError

Container = Literal["jsonl", "json", "parquet", "csv", "text"]

_SUFFIXES: dict[str, Container] = {
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "json",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".csv": "csv",
    ".tsv": "csv",
    ".txt": "text",
    ".md": "text",
    ".markdown": "text",
}


def split_compression(path: Path) -> tuple[str, str | None]:
    """('.jsonl', '.gz') for data.jsonl.gz."""
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] in (".gz", ".zst", ".zstd"):
        return (suffixes[-2] if len(suffixes) > 1 else ""), suffixes[-1]
    return (suffixes[-1] if suffixes else ""), None


def container_of(path: Path) -> Container:
    ext, _ = split_compression(path)
    if ext not in _SUFFIXES:
        known = ", ".join(sorted(_SUFFIXES))
        msg = f"{path}: cannot tell the file type from {ext or 'no extension'!r}; expected one of {known} (optionally .gz or .zst)"
        raise InputError(msg)
    return _SUFFIXES[ext]


def check_readable(path: Path) -> None:
    if not path.exists():
        msg = f"{path}: no such file"
        raise InputError(msg)
    if path.is_dir():
        msg = f"{path}: is a directory; pass the files inside it (e.g. {path}/*.jsonl)"
        raise InputError(msg)
    try:
        with path.open("rb") as fh:
            fh.read(1)
    except OSError as exc:
        msg = f"{path}: cannot read ({exc.strerror})"
        raise InputError(msg) from exc


def open_bytes(path: Path) -> BinaryIO:
    """A binary stream of the decompressed content, read lazily."""
    _, comp = split_compression(path)
    if comp == ".gz":
        return gzip.open(path, "rb")  # type: ignore[return-value]
    if comp in (".zst", ".zstd"):
        import zstandard

        return io.BufferedReader(zstandard.ZstdDecompressor().stream_reader(path.open("rb")))  # type: ignore[arg-type]
    return path.open("rb")
