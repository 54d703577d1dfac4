"""Malformed input: every bad row lands in rejects with file, line, field and reason."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine import api
from tests.conftest import DATA


def _rejects(out: Path) -> list[tuple[int, str, str]]:
    df = pl.read_parquet(sorted((out / "rejects").glob("part-*.parquet"))).sort("reject_line")
    return list(zip(df["reject_line"], df["reject_field"], df["reject_reason"], strict=True))


def test_corrupted_copy_of_a_real_file_gives_exactly_the_expected_rejects(tmp_path: Path) -> None:
    rows = json.loads((DATA / "alpaca_en_demo.json").read_text())
    lines = [json.dumps(r, ensure_ascii=False).encode() for r in rows]
    lines[9] = lines[9][: len(lines[9]) // 2]  # line 10: truncated
    lines[19] = json.dumps({**rows[19], "output": 42}).encode()  # line 20: wrong type
    lines[29] = json.dumps({**rows[29], "output": "   "}).encode()  # line 30: empty response
    lines[39] = lines[39].replace(b'"instruction": "', b'"instruction": "\xff\xfe', 1)  # line 40: bad UTF-8
    lines[49] = json.dumps({k: v for k, v in rows[49].items() if k != "instruction"}).encode()  # line 50
    (tmp_path / "bad.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    r = api.ingest([tmp_path / "bad.jsonl"], tmp_path / "ds")
    assert (r.kept, r.rejected) == (994, 5)
    assert _rejects(tmp_path / "ds") == [
        (10, "-", "invalid_json"),
        (20, "output", "wrong_type"),
        (30, "output", "empty_text"),
        (40, "-", "invalid_utf8"),
        (50, "instruction", "missing_field"),
    ]
    rej = pl.read_parquet(sorted((tmp_path / "ds" / "rejects").glob("*.parquet")))
    assert rej["reject_source"].unique().to_list() == [str(tmp_path / "bad.jsonl")]
    assert rej.filter(pl.col("reject_line") == 20)["reject_detail"].item() == "expected string, got number"
    kept = pl.read_parquet(sorted((tmp_path / "ds").glob("part-*.parquet")))
    assert 20 not in kept["src_line"].to_list() and kept["src_line"].n_unique() == 994


def test_corrupted_json_array_keeps_what_precedes_the_break(tmp_path: Path) -> None:
    text = (DATA / "dpo_en_demo.json").read_text()
    (tmp_path / "cut.json").write_text(text[: len(text) // 2])
    r = api.ingest([tmp_path / "cut.json"], tmp_path / "ds")
    assert r.rejected == 1 and 100 < r.kept < 200
    assert _rejects(tmp_path / "ds")[0][2] == "invalid_json"


def test_conversation_and_pair_rejects(tmp_path: Path) -> None:
    rows = [
        {"conversations": [{"from": "human", "value": "hi"}]},  # no assistant
        {"conversations": [{"from": "human", "value": "hi"}, {"from": "robot", "value": "yo"}]},  # unknown role
        {"conversations": []},  # empty
        {"conversations": [{"from": "human", "value": "hi"}, {"from": "gpt", "value": "hello"}]},  # fine
    ]
    (tmp_path / "chat.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    pairs = [
        {"prompt": "p", "chosen": "same", "rejected": "same"},
        {"prompt": "p", "chosen": "a", "rejected": "b"},
    ]
    (tmp_path / "pairs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in pairs))
    r = api.ingest([tmp_path / "chat.jsonl", tmp_path / "pairs.jsonl"], tmp_path / "ds")
    assert (r.kept, r.rejected) == (2, 4)
    assert sorted(_rejects(tmp_path / "ds")) == [
        (1, "conversations", "no_assistant_turn"),
        (1, "rejected", "chosen_equals_rejected"),
        (2, "conversations[1].from", "unknown_role"),
        (3, "conversations", "empty_conversation"),
    ]


_GOOD = st.fixed_dictionaries({"text": st.text(min_size=1).filter(lambda s: s.strip() != "")})
_LINE = st.one_of(
    _GOOD.map(lambda d: json.dumps(d).encode()),
    st.fixed_dictionaries({"text": st.one_of(st.integers(), st.just(""), st.none(), st.lists(st.integers()))}).map(
        lambda d: json.dumps(d).encode()
    ),
    st.binary(min_size=1, max_size=40).filter(lambda b: b"\n" not in b and b"\r" not in b and b.strip() != b""),
    st.just(b"[1, 2]"),
    st.just(b'{"text": "ok", "extra": {"nested": [1, "mixed"]}}'),
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(lines=st.lists(_LINE, min_size=1, max_size=60))
def test_kept_plus_rejected_equals_rows_read_for_random_malformed_jsonl(tmp_path: Path, lines: list[bytes]) -> None:
    src = tmp_path / "fuzz.jsonl"
    src.write_bytes(b"\n".join(lines) + b"\n")
    r = api.ingest([src], tmp_path / "ds", format="text", overwrite=True, partition_rows=7)
    assert r.kept + r.rejected == len(lines)
    kept = pl.read_parquet(sorted((tmp_path / "ds").glob("part-*.parquet")))
    rej = pl.read_parquet(sorted((tmp_path / "ds" / "rejects").glob("part-*.parquet")))
    assert sorted(kept["src_line"].to_list() + rej["reject_line"].to_list()) == list(range(1, len(lines) + 1))
    assert rej["reject_reason"].null_count() == 0
