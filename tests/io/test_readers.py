"""JSONL blocks: line numbers across block borders, blank lines, CRLF, a missing final newline."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pyarrow as pa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.io import readers

_LINE = st.one_of(
    st.integers(0, 10**6).map(lambda i: b'{"text": "row %d"}' % i),
    st.sampled_from([b"", b"\r", b"   ", b'{"text": "crlf"}\r']),
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(lines=st.lists(_LINE, min_size=0, max_size=40), final_newline=st.booleans(), block=st.integers(8, 64))
def test_iter_jsonl_numbers_every_record_by_its_line(
    tmp_path: Path, lines: list[bytes], final_newline: bool, block: int
) -> None:
    src = tmp_path / "x.jsonl"
    src.write_bytes(b"\n".join(lines) + (b"\n" if final_newline and lines else b""))
    want = [(i + 1, ln.rstrip(b"\r").decode()) for i, ln in enumerate(lines) if ln.strip()]
    got: list[tuple[int, str]] = []
    rejected: list[int] = []
    for b in readers.iter_jsonl(src, {}, block_bytes=block):
        for piece in b.pieces:
            texts = pl.from_arrow(piece.table)["text"].to_list()  # type: ignore[index]
            got += [(int(n), f'{{"text": "{t}"}}') for n, t in zip(piece.lines, texts, strict=True)]
        rejected += [int(r["reject_line"]) for r in b.rejects]  # type: ignore[call-overload]
    assert rejected == [n for n, t in want if not t.startswith("{")]
    assert got == [(n, t) for n, t in want if t.startswith("{")]


def test_rlvr_split_matches_the_regex_definition() -> None:
    """solution = text before the first '####', answer = after the last one, as the regexes had it."""
    texts = [
        "a\u00a0 \n##### 5 # x",
        "sol #### 1 #### 2",
        "sol\u2003####\u2003 3\u3000",
        "######## 8",
        "a####b####c#####d",
        "x ####",
        "#######",
        "a ## ## b ####c",
        "######### q #### ##### r",
        "é####ü####",
    ]
    s = pl.Series("t", texts)
    old_solution = s.str.replace(r"(?s)\s*####.*$", "").str.strip_chars()
    old_answer = s.str.replace(r"(?s)^.*####", "").str.strip_chars()
    pieces = s.str.split("####")
    assert pieces.list.first().str.strip_chars().to_list() == old_solution.to_list()
    assert pieces.list.last().str.strip_chars_start("#").str.strip_chars().to_list() == old_answer.to_list()


def test_iter_jsonl_lines_longer_than_a_block_and_rejects(tmp_path: Path) -> None:
    long = b'{"text": "' + b"x" * 300 + b'"}'
    lines = [b'{"text": "a"}', long, b"{broken", long + b" ", b'{"text": 5}', b'{"text": "b"}', long]
    src = tmp_path / "x.jsonl"
    src.write_bytes(b"\n".join(lines))  # no final newline
    got, rejected = [], []
    for b in readers.iter_jsonl(src, {"text": pa.string()}, block_bytes=64):
        for piece in b.pieces:
            got += [(int(n), len(t)) for n, t in zip(piece.lines, piece.table["text"].to_pylist(), strict=True)]
        rejected += [(int(r["reject_line"]), r["reject_reason"]) for r in b.rejects]  # type: ignore[call-overload]
    assert got == [(1, 1), (2, 300), (4, 300), (6, 1), (7, 300)]
    assert rejected == [(3, "invalid_json"), (5, "wrong_type")]
