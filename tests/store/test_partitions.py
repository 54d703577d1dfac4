"""Partition files: both writers put the fingerprint record where read_footer_meta finds it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pyarrow.parquet as pq
import pytest

from engine.errors import ConfigError
from engine.store.partitions import ROW_GROUP_ROWS, read_footer_meta, row_group_rows, write_parquet_atomic


def test_polars_and_arrow_writes_carry_the_footer_record(tmp_path: Path) -> None:
    df = pl.DataFrame({"id": [f"{i:032x}" for i in range(100_000)], "n": range(100_000)})
    meta = {"fingerprint": "abc", "stage": "length", "nested": {"k": [1, 2]}}
    write_parquet_atomic(df, tmp_path / "polars.parquet", meta)
    write_parquet_atomic(df.to_arrow(), tmp_path / "arrow.parquet", meta)
    for name in ("polars.parquet", "arrow.parquet"):
        path = tmp_path / name
        assert read_footer_meta(path) == meta
        assert pl.read_parquet(path).equals(df)
        md = pq.read_metadata(path)
        assert [md.row_group(i).num_rows for i in range(md.num_row_groups)] == [50_000, 50_000]  # equal halves
        assert md.row_group(0).column(0).compression == "LZ4"  # the default codec
    assert pq.read_schema(tmp_path / "polars.parquet") == pq.read_schema(tmp_path / "arrow.parquet").remove_metadata()
    assert not list(tmp_path.glob(".*tmp-*"))


def test_row_groups_are_equal_and_at_most_the_cap() -> None:
    for rows in (0, 1, 7, ROW_GROUP_ROWS, ROW_GROUP_ROWS + 1, 100_000, 3 * ROW_GROUP_ROWS + 5, 1_000_000):
        size = row_group_rows(rows)
        groups = -(-rows // size) if rows else 1
        assert 1 <= size <= ROW_GROUP_ROWS
        assert groups == max(1, -(-rows // ROW_GROUP_ROWS))  # no more groups than the cap needs
        assert rows == 0 or groups * size - rows < groups  # the last group is short by less than one row a group


def test_footer_record_is_none_without_one(tmp_path: Path) -> None:
    write_parquet_atomic(pl.DataFrame({"a": [1]}), tmp_path / "plain.parquet")
    (tmp_path / "junk.parquet").write_bytes(b"PAR1 half a file")
    assert read_footer_meta(tmp_path / "plain.parquet") is None
    assert read_footer_meta(tmp_path / "junk.parquet") is None
    assert read_footer_meta(tmp_path / "missing.parquet") is None


def test_frames_of_fixed_size_arrays_are_written_uncompressed(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    sigs = pl.DataFrame({"mh_sig": rng.integers(0, 2**32, (1000, 64), dtype=np.uint32), "n": np.arange(1000)})
    text = pl.DataFrame({"text": ["the same words again"] * 1000, "n": np.arange(1000)})
    for name, df in (("sigs", sigs), ("text", text)):
        write_parquet_atomic(df, tmp_path / f"{name}.parquet", {"fingerprint": name})
        assert read_footer_meta(tmp_path / f"{name}.parquet") == {"fingerprint": name}
        assert pl.read_parquet(tmp_path / f"{name}.parquet").equals(df)
    codecs = {
        name: {pq.ParquetFile(tmp_path / f"{name}.parquet").metadata.row_group(0).column(i).compression for i in (0, 1)}
        for name in ("sigs", "text")
    }
    assert codecs == {"sigs": {"UNCOMPRESSED"}, "text": {"LZ4"}}


def test_zstd_codec_on_request_and_unknown_codecs_refused(tmp_path: Path) -> None:
    df = pl.DataFrame({"text": [f"row {i} of some words that repeat, repeat and repeat" for i in range(20_000)]})
    for codec in ("lz4", "zstd"):
        write_parquet_atomic(df, tmp_path / f"polars-{codec}.parquet", codec=codec)
        write_parquet_atomic(df.to_arrow(), tmp_path / f"arrow-{codec}.parquet", codec=codec)
    for writer in ("polars", "arrow"):
        sizes = {}
        for codec in ("lz4", "zstd"):
            path = tmp_path / f"{writer}-{codec}.parquet"
            assert pl.read_parquet(path).equals(df)
            assert pq.read_metadata(path).row_group(0).column(0).compression == codec.upper()
            sizes[codec] = path.stat().st_size
        assert sizes["zstd"] < sizes["lz4"]
    with pytest.raises(ConfigError, match="--codec 'gzip': expected lz4 or zstd"):
        write_parquet_atomic(df, tmp_path / "g.parquet", codec="gzip")  # type: ignore[arg-type]
    assert not (tmp_path / "g.parquet").exists()
