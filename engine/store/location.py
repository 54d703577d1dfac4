"""Where a dataset lives: a local (or shared) directory, or an object-store prefix (s3://, gs://).

`location("s3://bucket/ds")` gives an `ObjectPath`, a small pathlib look-alike over `pyarrow.fs`, so the
store's code (`root / "stages" / name`, `.exists()`, `.glob()`, `.read_text()`) reads the same for both.
Credentials and endpoints come from the usual environment (AWS_ACCESS_KEY_ID, AWS_ENDPOINT_URL,
GOOGLE_APPLICATION_CREDENTIALS...), which pyarrow and Polars both read, so every Ray worker that has
them reads and writes the same prefix.

Atomic writes keep one rule on both: a reader never sees half a file. Locally that is a temp name and
`os.replace`; on an object store an object appears only when its upload completes, so the bytes are
built in memory (one partition, bounded) and sent in one upload, never streamed from a half-made file.
"""

from __future__ import annotations

import fnmatch
import io
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path, PurePosixPath
from typing import IO, Any

import pyarrow.fs as pafs

from engine.errors import StoreError

SCHEMES = ("s3", "gs", "gcs")


@lru_cache(maxsize=16)
def _filesystem(scheme: str, bucket: str) -> pafs.FileSystem:
    """One client per bucket and process (Ray workers build their own from their environment)."""
    try:
        fs, _ = pafs.FileSystem.from_uri(f"{scheme}://{bucket}")
    except (OSError, ValueError) as exc:
        msg = (
            f"{scheme}://{bucket}: cannot open the object store ({exc}); check credentials and AWS_ENDPOINT_URL/region"
        )
        raise StoreError(msg) from exc
    return fs


class ObjectPath:
    """A key prefix in a bucket, with the slice of pathlib's API the store uses."""

    __slots__ = ("key", "scheme")

    def __init__(self, scheme: str, key: str) -> None:
        self.scheme, self.key = scheme, key.strip("/")

    @classmethod
    def parse(cls, uri: str) -> ObjectPath:
        scheme, _, key = uri.partition("://")
        if scheme not in SCHEMES or not key.strip("/"):
            msg = f"{uri}: expected s3://bucket/prefix or gs://bucket/prefix"
            raise StoreError(msg)
        return cls(scheme, key)

    # -- pure path parts ------------------------------------------------------------------------
    def __str__(self) -> str:
        return f"{self.scheme}://{self.key}"

    def __repr__(self) -> str:
        return f"ObjectPath({str(self)!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ObjectPath) and (self.scheme, self.key) == (other.scheme, other.key)

    def __hash__(self) -> int:
        return hash((self.scheme, self.key))

    def __reduce__(self) -> tuple[Any, ...]:
        return (ObjectPath, (self.scheme, self.key))

    def __truediv__(self, part: str | Path) -> ObjectPath:
        return ObjectPath(self.scheme, f"{self.key}/{str(part).strip('/')}")

    @property
    def _pure(self) -> PurePosixPath:
        return PurePosixPath(self.key)

    @property
    def name(self) -> str:
        return self._pure.name

    @property
    def stem(self) -> str:
        return self._pure.stem

    @property
    def suffix(self) -> str:
        return self._pure.suffix

    @property
    def parent(self) -> ObjectPath:
        return ObjectPath(self.scheme, str(self._pure.parent))

    def with_name(self, name: str) -> ObjectPath:
        return ObjectPath(self.scheme, str(self._pure.with_name(name)))

    # -- I/O --------------------------------------------------------------------------------------
    @property
    def _fs(self) -> pafs.FileSystem:
        return _filesystem(self.scheme, self.key.split("/", 1)[0])

    def _info(self) -> pafs.FileInfo:
        return self._fs.get_file_info(self.key)

    def exists(self) -> bool:
        return self._info().type != pafs.FileType.NotFound

    def is_dir(self) -> bool:
        return self._info().type == pafs.FileType.Directory

    def is_file(self) -> bool:
        return self._info().type == pafs.FileType.File

    def iterdir(self) -> Iterator[ObjectPath]:
        if not self.is_dir():
            return iter(())
        infos = self._fs.get_file_info(pafs.FileSelector(self.key, allow_not_found=True))
        return iter(sorted(ObjectPath(self.scheme, i.path) for i in infos))

    def __lt__(self, other: ObjectPath) -> bool:
        return self.key < other.key

    def glob(self, pattern: str) -> Iterator[ObjectPath]:
        """Files directly under this prefix whose name matches `pattern` (no `**`)."""
        return (p for p in self.iterdir() if fnmatch.fnmatchcase(p.name, pattern) and p.is_file())

    def mkdir(self, parents: bool = False, exist_ok: bool = False) -> None:
        """Nothing to do: object stores have no directories; a prefix exists once a key is under it."""

    def read_bytes(self) -> bytes:
        with self._fs.open_input_stream(self.key) as fh:
            return fh.read()

    def read_text(self) -> str:
        return self.read_bytes().decode()

    def write_bytes(self, data: bytes) -> None:
        """One upload: the object appears whole or not at all."""
        with self._fs.open_output_stream(self.key) as fh:
            fh.write(data)

    def write_text(self, text: str) -> None:
        self.write_bytes(text.encode())

    def open(self, mode: str = "rb", buffering: int = -1) -> IO[bytes]:
        if mode != "rb":
            msg = f"{self}: only 'rb' opens are supported on object storage; write with atomic_output"
            raise StoreError(msg)
        return self._fs.open_input_file(self.key)  # type: ignore[return-value]

    def unlink(self, missing_ok: bool = False) -> None:
        try:
            self._fs.delete_file(self.key)
        except FileNotFoundError:
            if not missing_ok:
                raise

    def remove_tree(self) -> None:
        self._fs.delete_dir(self.key)


Where = Path | ObjectPath


def location(root: str | os.PathLike[str] | ObjectPath) -> Where:
    """A local Path, or an ObjectPath for s3://, gs:// and gcs:// URIs."""
    if isinstance(root, ObjectPath):
        return root
    text = os.fspath(root)
    if "://" in text:
        scheme = text.split("://", 1)[0]
        if scheme == "file":
            return Path(text[len("file://") :])
        if scheme not in SCHEMES:
            msg = f"{text}: unsupported storage scheme {scheme!r}; use a local path, s3:// or gs://"
            raise StoreError(msg)
        return ObjectPath.parse(text)
    return Path(text)


def is_local(path: Where) -> bool:
    return isinstance(path, Path)


def remove_tree(path: Where) -> None:
    if isinstance(path, ObjectPath):
        path.remove_tree()
    else:
        shutil.rmtree(path)


@contextmanager
def atomic_output(path: Where) -> Iterator[Path | io.BytesIO]:
    """A sink to write `path` through: a temp file renamed on success, or a buffer uploaded in one go.

    On an error inside the block nothing reaches `path` (the temp file is removed, the buffer dropped).
    """
    if isinstance(path, ObjectPath):
        buf = io.BytesIO()
        yield buf
        path.write_bytes(buf.getvalue())
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def register_object_store(con: Any, path: ObjectPath) -> None:
    """Let a DuckDB connection read `path`'s scheme through fsspec (s3fs/gcsfs, the `cloud` extra).

    DuckDB's own httpfs extension is downloaded on first use, which offline machines cannot do.
    """
    try:
        import fsspec

        fs = fsspec.filesystem(path.scheme)
    except ImportError as exc:
        msg = f'{path}: reading object storage with SQL needs s3fs/gcsfs; pip install -e ".[cloud]" ({exc})'
        raise StoreError(msg) from exc
    con.register_filesystem(fs)
