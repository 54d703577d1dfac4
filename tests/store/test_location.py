"""Datasets on object storage: the pathlib look-alike, atomic uploads, and whole pipelines on a real S3 server."""

from __future__ import annotations

import hashlib
import pickle
import uuid
from pathlib import Path

import polars as pl
import pytest

from engine import api
from engine.errors import StoreError
from engine.store.dataset import open_dataset
from engine.store.location import ObjectPath, atomic_output, location
from engine.store.partitions import file_hash, read_footer_meta, write_parquet_atomic
from tests.conftest import REPO


def _fresh(s3: str) -> ObjectPath:
    root = location(f"{s3}/{uuid.uuid4().hex[:8]}")
    assert isinstance(root, ObjectPath)
    return root


def test_location_picks_the_kind_by_scheme(tmp_path: Path) -> None:
    assert location(tmp_path) == tmp_path
    assert location(f"file://{tmp_path}") == tmp_path
    assert location("s3://bucket/a/b/") == ObjectPath("s3", "bucket/a/b")
    assert str(location("gs://bucket/ds")) == "gs://bucket/ds"
    with pytest.raises(StoreError, match="unsupported storage scheme 'hdfs'"):
        location("hdfs://namenode/ds")
    with pytest.raises(StoreError, match="expected s3://bucket/prefix"):
        location("s3://")


def test_object_path_parts_and_pickling() -> None:
    p = ObjectPath("s3", "bucket/ds") / "stages" / "minhash" / "part-00001.parquet"
    assert str(p) == "s3://bucket/ds/stages/minhash/part-00001.parquet"
    assert (p.name, p.stem, p.suffix) == ("part-00001.parquet", "part-00001", ".parquet")
    assert str(p.parent.parent) == "s3://bucket/ds/stages"
    assert str(p.with_name("_side.parquet")) == "s3://bucket/ds/stages/minhash/_side.parquet"
    assert pickle.loads(pickle.dumps(p)) == p  # Ray ships it to workers as scheme + key


def test_object_path_io_on_s3(s3: str) -> None:
    root = _fresh(s3)
    assert not root.exists()
    (root / "b.txt").write_text("second")
    (root / "a.txt").write_text("first")
    (root / "part-00000.parquet").write_bytes(b"x")
    (root / "sub" / "part-00001.parquet").write_bytes(b"y")
    assert root.is_dir() and (root / "a.txt").is_file() and (root / "sub").is_dir()
    assert (root / "a.txt").read_text() == "first"
    assert [p.name for p in root.iterdir()] == ["a.txt", "b.txt", "part-00000.parquet", "sub"]
    assert [p.name for p in root.glob("part-*.parquet")] == ["part-00000.parquet"]  # files directly under it only
    (root / "a.txt").unlink()
    assert not (root / "a.txt").exists()
    (root / "a.txt").unlink(missing_ok=True)
    with pytest.raises(FileNotFoundError):
        (root / "a.txt").unlink()


@pytest.mark.parametrize("where", ["local", "s3"])
def test_a_failed_write_leaves_nothing(where: str, s3: str, tmp_path: Path) -> None:
    root = tmp_path if where == "local" else _fresh(s3)
    target = root / "part-00000.parquet"
    with pytest.raises(RuntimeError, match="half way"), atomic_output(target) as sink:
        pl.DataFrame({"a": range(1000)}).write_parquet(sink)
        msg = "killed half way"
        raise RuntimeError(msg)
    assert not target.exists()
    if where == "local":
        assert list(tmp_path.iterdir()) == []  # the temp file went too


def test_parquet_on_s3_has_the_local_bytes_and_footer(s3: str, tmp_path: Path) -> None:
    root = _fresh(s3)
    frame = pl.DataFrame({"id": ["a", "b"], "score": [0.5, 0.25]})
    meta = {"stage": "x", "fingerprint": "f00"}
    write_parquet_atomic(frame, tmp_path / "p.parquet", meta)
    write_parquet_atomic(frame, root / "p.parquet", meta)
    assert (root / "p.parquet").read_bytes() == (tmp_path / "p.parquet").read_bytes()
    assert file_hash(root / "p.parquet") == file_hash(tmp_path / "p.parquet")
    assert read_footer_meta(root / "p.parquet") == meta
    assert read_footer_meta(root / "missing.parquet") is None


def test_a_missing_dataset_on_s3_says_how_to_make_one(s3: str) -> None:
    with pytest.raises(StoreError, match=r"no such dataset directory; create one with `distill ingest SRC --out s3://"):
        open_dataset(f"{s3}/nothing-here")


def _objects(root: ObjectPath) -> dict[str, str]:
    """Every Parquet file of the dataset (canonical, stages, rejects) by relative name -> sha256."""
    out: dict[str, str] = {}
    todo = [root]
    while todo:
        d = todo.pop()
        for p in d.iterdir():
            if p.is_dir():
                todo.append(p)
            elif p.suffix == ".parquet":
                out[p.key[len(root.key) + 1 :]] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def _files(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in root.rglob("*.parquet")}


def test_default_pipeline_on_s3_writes_the_local_bytes_and_resumes(s3: str, tmp_path: Path) -> None:
    """`distill run --out s3://...`: same files and bytes as a local run; a rerun skips every partition."""
    # the file's own copy, so the selection, export and report it names land under tmp_path
    pipeline = tmp_path / "pipelines" / "default.toml"
    pipeline.parent.mkdir()
    text = (REPO / "pipelines" / "default.toml").read_text()
    pipeline.write_text(text.replace('"../data/', f'"{REPO}/data/').replace('"../queries/', f'"{REPO}/queries/'))
    local = api.run(pipeline, out=tmp_path / "sample")
    root = _fresh(s3)
    remote = api.run(pipeline, out=str(root))
    assert remote.out == root
    assert _objects(root) == _files(tmp_path / "sample")
    assert all(c.ok for c in api.verify(str(root)).checks)
    # the selection (DuckDB reading s3 through fsspec) chose the same rows
    assert remote.select is not None and local.select is not None
    assert remote.select.out.resolve() == tmp_path / "out" / "sample-selected" != local.select.out
    chosen = [
        pl.read_parquet(list(d.glob("part-*.parquet")))["id"].sort() for d in (local.select.out, remote.select.out)
    ]
    assert chosen[0].len() > 0 and chosen[0].equals(chosen[1])
    again = api.run(pipeline, out=str(root))
    assert [s.written for s in again.stages] == [0] * len(again.stages)
    assert sum(s.skipped for s in again.stages) == sum(s.written for s in remote.stages)
