"""Ingest of every real file, with exact counts, stable ids, determinism and rejects."""

from __future__ import annotations

import gc
import gzip
import json
import shutil
import threading
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import xxhash
import zstandard

from engine import api
from engine.errors import ConfigError, InputError, StoreError
from engine.io.ingest import _BackgroundWriter, _IdsWhenLoaded, _PartitionWriter
from engine.schema import dataset_polars_schema
from engine.store.ids import content_key
from engine.store.location import location
from tests.conftest import DATA, count_lines, json_len


def _rows(out: Path) -> pl.DataFrame:
    return pl.read_parquet(sorted(out.glob("part-*.parquet")))


def _rejects(out: Path) -> pl.DataFrame:
    return pl.read_parquet(sorted((out / "rejects").glob("part-*.parquet")))


def _expected_counts() -> dict[str, tuple[str, str, int]]:
    seed = [json.loads(line) for line in (DATA / "alpaca_seed_tasks.jsonl").read_text().splitlines() if line.strip()]
    wiki = [line for line in (DATA / "wiki_demo.txt").read_text().splitlines() if line.strip()]
    return {
        "alpaca_en_demo.json": ("alpaca", "sft", json_len(DATA / "alpaca_en_demo.json")),
        "glaive_toolcall_en_demo.json": ("sharegpt", "chat", json_len(DATA / "glaive_toolcall_en_demo.json")),
        "dpo_en_demo.json": ("dpo", "dpo", json_len(DATA / "dpo_en_demo.json")),
        "gsm8k_train.jsonl": ("rlvr", "rlvr", count_lines(DATA / "gsm8k_train.jsonl")),
        "alpaca_seed_tasks.jsonl": ("alpaca", "sft", sum(len(t["instances"]) for t in seed)),
        "c4_demo.jsonl": ("text", "text", count_lines(DATA / "c4_demo.jsonl")),
        "wiki_demo.txt": ("text", "text", len(wiki)),
    }


@pytest.mark.parametrize("name", list(_expected_counts()))
def test_every_real_file_ingests_with_exact_counts(tmp_path: Path, name: str) -> None:
    fmt, kind, n = _expected_counts()[name]
    report = api.ingest([DATA / name], tmp_path / "ds")
    assert [f.format for f in report.files] == [fmt]
    assert (report.kept, report.rejected) == (n, 0)
    df = _rows(tmp_path / "ds")
    assert df.height == n
    assert set(df["kind"]) == {kind}
    assert df.schema == dataset_polars_schema()
    assert df["id"].str.contains(r"^[0-9a-f]{32}$").all()
    manifest = json.loads((tmp_path / "ds" / "manifest.json").read_text())
    assert manifest["rows"] == n and manifest["rows_read"] == n
    assert manifest["sources"][0]["size"] == (DATA / name).stat().st_size


def test_absolute_counts_of_the_shipped_files(tmp_path: Path) -> None:
    """The counts as the files stand today, so a silent change in either reader or data shows."""
    got = {name: c for name, (_, _, c) in _expected_counts().items()}
    assert got == {
        "alpaca_en_demo.json": 999,
        "glaive_toolcall_en_demo.json": 300,
        "dpo_en_demo.json": 300,
        "gsm8k_train.jsonl": 7473,
        "alpaca_seed_tasks.jsonl": 175,
        "c4_demo.jsonl": 300,
        "wiki_demo.txt": 30,
    }


def test_gsm8k_splits_solution_and_final_answer(tmp_path: Path) -> None:
    api.ingest([DATA / "gsm8k_train.jsonl"], tmp_path / "ds")
    df = _rows(tmp_path / "ds")
    first = json.loads((DATA / "gsm8k_train.jsonl").read_text().splitlines()[0])
    row = df.row(0, named=True)
    assert row["problem"] == first["question"]
    assert row["answer"] == first["answer"].split("####")[-1].strip() == "72"
    assert row["solution"] == first["answer"].split("####")[0].strip()
    assert not df["answer"].str.contains("####").any()


def test_rlvr_field_variants_map_to_one_schema(tmp_path: Path) -> None:
    rows = {
        "a.jsonl": {"problem": "What is 2+3?", "answer": "5"},
        "b.jsonl": {"question": "What is 2+3?", "answer": "5"},
        "c.jsonl": {"verification_question": "What is 2+3?", "expected_verification": "5"},
        "d.jsonl": {"problem": "What is 2+3?", "solution": "2+3 is \\boxed{5}"},
    }
    for name, row in rows.items():
        (tmp_path / name).write_text(json.dumps(row) + "\n")
    api.ingest([tmp_path / n for n in rows], tmp_path / "ds")
    df = _rows(tmp_path / "ds")
    assert df["kind"].to_list() == ["rlvr"] * 4
    assert df["problem"].to_list() == ["What is 2+3?"] * 4
    assert df["answer"].to_list() == ["5"] * 4
    assert df["id"][0] == df["id"][1] == df["id"][2]  # same content, same id, whatever the source fields


def test_same_example_from_two_files_gets_the_same_id(tmp_path: Path) -> None:
    rows = json.loads((DATA / "alpaca_en_demo.json").read_text())[:50]
    (tmp_path / "copy.jsonl").write_text("".join(json.dumps(r) + "\n" for r in reversed(rows)))
    api.ingest([DATA / "alpaca_en_demo.json", tmp_path / "copy.jsonl"], tmp_path / "ds")
    df = _rows(tmp_path / "ds")
    a = df.filter(pl.col("source") == "alpaca_en_demo").head(50)["id"].to_list()
    b = df.filter(pl.col("source") == "copy")["id"].to_list()
    assert a == list(reversed(b))
    assert len(set(a)) == 50


def test_ingest_is_deterministic_across_runs_and_partition_sizes(tmp_path: Path) -> None:
    srcs = [DATA / "alpaca_en_demo.json", DATA / "glaive_toolcall_en_demo.json", DATA / "gsm8k_train.jsonl"]
    api.ingest(srcs, tmp_path / "a", partition_rows=100)
    api.ingest(srcs, tmp_path / "b", partition_rows=100)
    api.ingest(srcs, tmp_path / "c", partition_rows=10_000)
    a, b, c = (_rows(tmp_path / d) for d in "abc")
    assert len(list((tmp_path / "a").glob("part-*.parquet"))) == 88
    assert len(list((tmp_path / "c").glob("part-*.parquet"))) == 1
    assert a.equals(b) and a.equals(c)
    for x, y in zip(
        sorted((tmp_path / "a").glob("part-*.parquet")), sorted((tmp_path / "b").glob("part-*.parquet")), strict=True
    ):
        assert x.read_bytes() == y.read_bytes()


def test_unknown_fields_are_kept_in_meta(tmp_path: Path) -> None:
    api.ingest([DATA / "alpaca_seed_tasks.jsonl"], tmp_path / "ds")
    df = _rows(tmp_path / "ds")
    first = json.loads((DATA / "alpaca_seed_tasks.jsonl").read_text().splitlines()[0])
    meta = json.loads(df["meta"][0])
    assert meta == {"id": first["id"], "name": first["name"], "is_classification": first["is_classification"]}
    assert df["response"][0] == first["instances"][0]["output"]


def test_nested_instances_give_one_row_each(tmp_path: Path) -> None:
    task = {
        "instruction": "Sort the words.",
        "instances": [
            {"input": "b a", "output": "a b"},
            {"input": "d c", "output": "c d"},
            {"input": "f e", "output": ""},
        ],
    }
    (tmp_path / "seed.jsonl").write_text(json.dumps(task) + "\n")
    r = api.ingest([tmp_path / "seed.jsonl"], tmp_path / "ds")
    assert (r.kept, r.rejected) == (2, 1)
    assert _rows(tmp_path / "ds")["input"].to_list() == ["b a", "d c"]
    rej = _rejects(tmp_path / "ds").row(0, named=True)
    assert (rej["reject_field"], rej["reject_reason"], rej["reject_line"]) == ("instances[2].output", "empty_text", 1)


def test_tool_call_turns_become_assistant_calls_and_tool_results(tmp_path: Path) -> None:
    api.ingest([DATA / "glaive_toolcall_en_demo.json"], tmp_path / "ds")
    df = _rows(tmp_path / "ds")
    raw = json.loads((DATA / "glaive_toolcall_en_demo.json").read_text())
    turns = df["messages"][0].to_list()
    src = raw[0]["conversations"]
    assert len(turns) == len(src)
    call = next(i for i, t in enumerate(src) if t["from"] == "function_call")
    assert turns[call] == {"role": "assistant", "content": "", "tool_calls": src[call]["value"]}
    assert turns[call + 1]["role"] == "tool"
    assert json.loads(df["tools"][0]) == json.loads(raw[0]["tools"])
    roles = set(df["messages"].explode().struct.field("role"))
    assert roles <= {"system", "user", "assistant", "tool"}


def test_dpo_pairs_from_sharegpt_style(tmp_path: Path) -> None:
    api.ingest([DATA / "dpo_en_demo.json"], tmp_path / "ds")
    df = _rows(tmp_path / "ds")
    raw = json.loads((DATA / "dpo_en_demo.json").read_text())
    assert df["prompt"][0] == raw[0]["conversations"][-1]["value"]
    assert df["chosen"][0] == raw[0]["chosen"]["value"]
    assert df["rejected"][0] == raw[0]["rejected"]["value"]
    multi = next(i for i, r in enumerate(raw) if len(r["conversations"]) > 1)
    assert len(df["history"][multi]) == len(raw[multi]["conversations"]) - 1


def test_kto_and_openai_formats(tmp_path: Path) -> None:
    (tmp_path / "k.jsonl").write_text(
        json.dumps({"prompt": "Say hi", "completion": "Hi!", "label": True})
        + "\n"
        + json.dumps({"prompt": "Say hi", "completion": "No.", "label": "maybe"})
        + "\n"
    )
    (tmp_path / "o.jsonl").write_text(
        json.dumps(
            {
                "messages": [
                    {"role": "system", "content": "Be brief."},
                    {"role": "user", "content": "2+2?"},
                    {
                        "role": "assistant",
                        "content": None,
                        "tool_calls": [
                            {"id": "c1", "type": "function", "function": {"name": "add", "arguments": "{}"}}
                        ],
                    },
                    {"role": "tool", "content": "4"},
                    {"role": "assistant", "content": "4"},
                ]
            }
        )
        + "\n"
    )
    r = api.ingest([tmp_path / "k.jsonl", tmp_path / "o.jsonl"], tmp_path / "ds")
    assert [f.format for f in r.files] == ["kto", "openai"]
    df = _rows(tmp_path / "ds")
    assert df.filter(pl.col("kind") == "kto")["label"].to_list() == [True]
    chat = df.filter(pl.col("kind") == "chat")["messages"][0].to_list()
    assert [t["role"] for t in chat] == ["system", "user", "assistant", "tool", "assistant"]
    assert json.loads(chat[2]["tool_calls"])[0]["function"]["name"] == "add"
    assert _rejects(tmp_path / "ds")["reject_reason"].to_list() == ["invalid_label"]


def test_map_overrides_source_fields(tmp_path: Path) -> None:
    (tmp_path / "x.jsonl").write_text(json.dumps({"ask": "Name a color.", "reply": "Blue.", "extra": 1}) + "\n")
    r = api.ingest(
        [tmp_path / "x.jsonl"],
        tmp_path / "ds",
        format="alpaca",
        mapping={"instruction": "ask", "response": "reply"},
        domain="general",
        source="mine",
    )
    assert r.kept == 1
    row = _rows(tmp_path / "ds").row(0, named=True)
    assert (row["instruction"], row["response"], row["domain"], row["source"]) == (
        "Name a color.",
        "Blue.",
        "general",
        "mine",
    )
    assert json.loads(row["meta"]) == {"extra": 1}


def test_map_naming_an_absent_field_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(
        ConfigError, match=r"--map response=anser: the file has no field 'anser'; did you mean 'answer'"
    ):
        api.ingest([DATA / "gsm8k_train.jsonl"], tmp_path / "ds", format="alpaca", mapping={"response": "anser"})


def test_compressed_parquet_and_csv_sources(tmp_path: Path) -> None:
    raw = (DATA / "gsm8k_train.jsonl").read_bytes()
    (tmp_path / "g.jsonl.gz").write_bytes(gzip.compress(raw))
    (tmp_path / "g.jsonl.zst").write_bytes(zstandard.ZstdCompressor().compress(raw))
    rows = [json.loads(x) for x in raw.splitlines()[:500]]
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "g.parquet")
    pl.DataFrame(rows).write_csv(tmp_path / "g.csv")
    for name, n in (("g.jsonl.gz", 7473), ("g.jsonl.zst", 7473), ("g.parquet", 500), ("g.csv", 500)):
        r = api.ingest([tmp_path / name], tmp_path / f"ds-{name}")
        assert (r.kept, r.rejected, r.files[0].format) == (n, 0, "rlvr"), name
    plain = _rows(tmp_path / "ds-g.jsonl.gz")
    assert plain["id"].to_list() == _rows(tmp_path / "ds-g.jsonl.zst")["id"].to_list()
    assert plain["id"].head(500).to_list() == _rows(tmp_path / "ds-g.parquet")["id"].to_list()
    assert plain["id"].head(500).to_list() == _rows(tmp_path / "ds-g.csv")["id"].to_list()


def test_text_units(tmp_path: Path) -> None:
    (tmp_path / "doc.md").write_text("# Title\n\nFirst paragraph.\n\nSecond one.\n")
    assert api.ingest([tmp_path / "doc.md"], tmp_path / "a").kept == 1
    assert api.ingest([tmp_path / "doc.md"], tmp_path / "b", text_unit="paragraph").kept == 3
    assert api.ingest([tmp_path / "doc.md"], tmp_path / "c", text_unit="line").kept == 3
    assert _rows(tmp_path / "b")["src_line"].to_list() == [1, 3, 5]


def test_missing_file_and_undetectable_format_are_input_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"nope\.jsonl: no such file$"):
        api.ingest([tmp_path / "nope.jsonl"], tmp_path / "ds")
    (tmp_path / "odd.jsonl").write_text('{"foo": 1}\n')
    with pytest.raises(InputError, match=r"cannot detect the format from fields \['foo'\]; pass --format"):
        api.ingest([tmp_path / "odd.jsonl"], tmp_path / "ds")


def test_reingest_is_up_to_date_and_a_different_one_needs_overwrite(tmp_path: Path) -> None:
    api.ingest([DATA / "c4_demo.jsonl"], tmp_path / "ds")
    assert api.ingest([DATA / "c4_demo.jsonl"], tmp_path / "ds").up_to_date
    with pytest.raises(StoreError, match="already holds a different dataset; pass --overwrite"):
        api.ingest([DATA / "wiki_demo.txt"], tmp_path / "ds")
    assert api.ingest([DATA / "wiki_demo.txt"], tmp_path / "ds", overwrite=True).kept == 30


def test_codec_picks_the_partitions_compression_and_a_rerun_keeps_it(tmp_path: Path) -> None:
    src = [DATA / "c4_demo.jsonl"]
    api.ingest(src, tmp_path / "lz4")
    api.ingest(src, tmp_path / "zstd", codec="zstd")
    parts = {c: tmp_path / c / "part-00000.parquet" for c in ("lz4", "zstd")}
    for codec, path in parts.items():
        md = pq.read_metadata(path)
        assert {md.row_group(0).column(i).compression for i in range(md.num_columns)} == {codec.upper()}
        assert json.loads((tmp_path / codec / "manifest.json").read_text())["ingest"]["codec"] == codec
    assert _rows(tmp_path / "lz4").equals(_rows(tmp_path / "zstd"))
    assert parts["zstd"].stat().st_size < 0.7 * parts["lz4"].stat().st_size
    assert api.score("length", tmp_path / "zstd").rows == _rows(tmp_path / "zstd").height  # stages read either
    # a rerun without --codec keeps the dataset's codec; asking for the other one needs --overwrite
    assert api.ingest(src, tmp_path / "zstd").up_to_date
    with pytest.raises(
        StoreError, match="holds this ingest with lz4 partitions; pass --overwrite to rewrite them as zstd"
    ):
        api.ingest(src, tmp_path / "lz4", codec="zstd")
    assert not api.ingest(src, tmp_path / "lz4", codec="zstd", overwrite=True).up_to_date
    assert pq.read_metadata(parts["lz4"]).row_group(0).column(0).compression == "ZSTD"
    with pytest.raises(ConfigError, match="--codec 'gzip': expected lz4 or zstd"):
        api.ingest(src, tmp_path / "g", codec="gzip")  # type: ignore[arg-type]


def test_a_dataset_from_before_the_codec_choice_stays_up_to_date(tmp_path: Path) -> None:
    """Its manifest has no codec and its partitions are zstd: a rerun with the same sources is up to date
    (no forced re-ingest, and no stage recomputed), and treats it as zstd."""
    src = [DATA / "c4_demo.jsonl"]
    api.ingest(src, tmp_path / "ds", codec="zstd")
    manifest = tmp_path / "ds" / "manifest.json"
    doc = json.loads(manifest.read_text())
    del doc["ingest"]["codec"]  # as written before there was a choice
    manifest.write_text(json.dumps(doc))
    assert api.ingest(src, tmp_path / "ds").up_to_date
    with pytest.raises(StoreError, match="holds this ingest with zstd partitions"):
        api.ingest(src, tmp_path / "ds", codec="lz4")


def test_a_pipeline_sets_the_codec_in_its_ingest_table(tmp_path: Path) -> None:
    pipeline = tmp_path / "p.toml"
    source = DATA / "c4_demo.jsonl"
    pipeline.write_text(f'[ingest]\nsources = ["{source}"]\ncodec = "zstd"\n\n[[stage]]\nname = "length"\n')
    api.run(pipeline, out=tmp_path / "ds")
    assert pq.read_metadata(tmp_path / "ds" / "part-00000.parquet").row_group(0).column(0).compression == "ZSTD"
    pipeline.write_text(f'[ingest]\nsources = ["{source}"]\n\n[[stage]]\nname = "length"\n')
    api.run(pipeline, out=tmp_path / "ds")  # no codec: the dataset keeps its own, nothing is re-ingested
    assert json.loads((tmp_path / "ds" / "manifest.json").read_text())["ingest"]["codec"] == "zstd"


def test_a_source_edited_in_place_is_not_up_to_date(tmp_path: Path) -> None:
    src = tmp_path / "c4.jsonl"
    shutil.copy(DATA / "c4_demo.jsonl", src)
    api.ingest([src], tmp_path / "ds")
    manifest = json.loads((tmp_path / "ds" / "manifest.json").read_text())
    assert manifest["sources"][0]["hash"] == xxhash.xxh64(src.read_bytes()).hexdigest()
    data = src.read_bytes()
    src.write_bytes(data.replace(b"the", b"THE", 1))  # same size and name, other content
    with pytest.raises(StoreError, match="already holds a different dataset"):
        api.ingest([src], tmp_path / "ds")
    assert not api.ingest([src], tmp_path / "ds", overwrite=True).up_to_date


def test_background_writer_writes_hashes_and_raises_in_the_caller(tmp_path: Path) -> None:
    writer = _BackgroundWriter()
    records: list[dict[str, object]] = [{}, {}]
    for i, record in enumerate(records):
        writer.submit(pl.DataFrame({"a": [i]}), tmp_path / f"part-{i}.parquet", record)
    writer.close()
    assert all(isinstance(r["hash"], str) for r in records)
    assert pl.read_parquet(tmp_path / "part-1.parquet")["a"].to_list() == [1]

    (tmp_path / "blocker").write_text("a file where a directory should be")
    writer = _BackgroundWriter()
    writer.submit(pl.DataFrame({"a": [1]}), tmp_path / "blocker" / "part-0.parquet", {})
    with pytest.raises(OSError):
        writer.close()


def test_the_heap_alive_before_ingest_is_frozen_during_it_and_thawed_after(tmp_path: Path) -> None:
    seen: list[int] = []
    api.ingest([DATA / "alpaca_en_demo.json"], tmp_path / "a", on_progress=lambda _: seen.append(gc.get_freeze_count()))
    assert seen and min(seen) > 0  # the import-time objects sat out of the collector's walks
    assert gc.get_freeze_count() == 0
    gc.freeze()  # someone else's freeze is left in place (frozen objects may still die meanwhile)
    try:
        api.ingest([DATA / "alpaca_en_demo.json"], tmp_path / "b")
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()


def _waiting(
    tmp_path: Path, max_rows: int
) -> tuple[pl.DataFrame, pl.DataFrame, _BackgroundWriter, _PartitionWriter, threading.Event, _IdsWhenLoaded]:
    """Real ingested rows, the same rows with their content keys in `id` (what finalize(hashed=False)
    gives), and a partition writer behind an `_IdsWhenLoaded` whose kernel is not loaded yet."""
    api.ingest([DATA / "alpaca_en_demo.json"], tmp_path / "src")
    rows = _rows(tmp_path / "src")
    writer = _BackgroundWriter()
    parts = _PartitionWriter(location(tmp_path / "out"), 10_000, writer)
    ready = threading.Event()
    kept = _IdsWhenLoaded(parts, ready, max_rows=max_rows)
    return rows, rows.with_columns(id=content_key(rows, "sft")), writer, parts, ready, kept


def test_rows_wait_for_the_id_kernel_then_go_on_in_order(tmp_path: Path) -> None:
    rows, keyed, writer, parts, ready, kept = _waiting(tmp_path, max_rows=10_000)
    kept.add(keyed.slice(0, 300), hashed=False)
    kept.add(keyed.slice(300, 300), hashed=False)
    assert parts.buffered == 0 and kept.rows == 600  # nothing passes on before the kernel is there
    ready.set()
    kept.add(rows.slice(600), hashed=True)  # the waiting rows go first, hashed
    parts.close()
    writer.close()
    written = pl.read_parquet(tmp_path / "out" / "part-00000.parquet")
    assert written["id"].to_list() == rows["id"].to_list()
    assert written.drop("id").equals(rows.drop("id"))


def test_a_partition_of_waiting_rows_waits_for_the_kernel_instead_of_growing(tmp_path: Path) -> None:
    rows, keyed, writer, parts, ready, kept = _waiting(tmp_path, max_rows=500)
    kept.add(keyed.slice(0, 400), hashed=False)
    threading.Timer(0.2, ready.set).start()
    kept.add(keyed.slice(400, 200), hashed=False)  # 600 >= 500: blocks until the kernel is there, then hashes
    assert ready.is_set() and kept.rows == 0 and parts.buffered == 600
    assert pl.concat(parts.buffer)["id"].to_list() == rows["id"].head(600).to_list()
    writer.close()
