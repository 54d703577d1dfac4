"""Chunker on the real wiki dump: offsets slice back exactly, sizes hold, boundaries are sentences."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from engine import api
from engine.errors import ConfigError, InputError
from engine.generate.chunk import chunk_spans
from engine.store.dataset import open_dataset


def test_chunks_slice_back_and_respect_size(data: Path, tmp_path: Path) -> None:
    doc = data / "wiki_demo.txt"
    text = doc.read_text(encoding="utf-8")
    rep = api.chunk([doc], tmp_path / "ch", chunk_size=800, overlap=100)
    df = open_dataset(tmp_path / "ch").scan().select("text", "source", "meta", "kind").collect()
    assert rep.kept == df.height > 1000 and rep.rejected == 0
    meta = df["meta"].str.json_decode()
    starts, ends = meta.struct.field("char_start").to_list(), meta.struct.field("char_end").to_list()
    assert all(text[s:e] == t for s, e, t in zip(starts, ends, df["text"], strict=True))
    assert (df["text"].str.len_chars() <= 800).all() and (df["kind"] == "text").all()
    assert set(df["source"]) == {"wiki_demo"}
    assert meta.struct.field("chunk_id").to_list()[:2] == ["wiki_demo#0", "wiki_demo#1"]
    # in order, overlapping by at most `overlap`, and no non-space character left out
    assert all(e0 - s1 <= 100 and s1 > s0 for s0, e0, s1 in zip(starts, ends, starts[1:], strict=False))
    covered = bytearray(len(text))
    for s, e in zip(starts, ends, strict=True):
        covered[s:e] = b"\1" * (e - s)
    assert all(covered[i] or text[i].isspace() for i in range(len(text)))
    # nearly all chunks end at a sentence end (the dump has no blank lines)
    assert df["text"].str.contains(r"[.!?][\"')\]]*$").mean() > 0.9


def test_paragraph_breaks_win_and_long_words_split() -> None:
    text = "Alpha beta gamma. " * 20 + "\n\n" + "Delta epsilon. " * 20
    spans = chunk_spans(text, size=400, overlap=0)
    assert text[spans[0].end :].lstrip().startswith("Delta") and spans[0].end == 20 * 18 - 1
    long = "x" * 250
    spans = chunk_spans(long, size=100, overlap=10)
    assert [s.end - s.start for s in spans] == [100, 100, 50]  # no boundary to overlap from


def test_bad_sizes_and_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="--overlap 500"):
        api.chunk([tmp_path / "a.txt"], tmp_path / "o", chunk_size=800, overlap=500)
    with pytest.raises(InputError, match="no such file"):
        api.chunk([tmp_path / "missing.txt"], tmp_path / "o")
    (tmp_path / "d.csv").write_text("a,b\n")
    with pytest.raises(InputError, match="expected a text or markdown"):
        api.chunk([tmp_path / "d.csv"], tmp_path / "o2")


def test_rechunk_same_out_is_idempotent(tmp_path: Path, data: Path) -> None:
    api.chunk([data / "wiki_demo.txt"], tmp_path / "ch", chunk_size=2000, overlap=0)
    first = open_dataset(tmp_path / "ch").scan().collect()
    api.chunk([data / "wiki_demo.txt"], tmp_path / "ch", chunk_size=2000, overlap=0)
    assert open_dataset(tmp_path / "ch").scan().collect().equals(first)
    assert pl.read_ndjson(next((tmp_path / "ch" / "source").glob("*.jsonl"))).height == first.height
