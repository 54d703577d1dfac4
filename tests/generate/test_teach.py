"""Generation and judging end to end against a real local HTTP server speaking the OpenAI wire format."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import polars as pl
import pytest
from fake_openai import FakeOpenAI

from engine import api
from engine.errors import ConfigError
from engine.generate.budget import Limits
from engine.generate.teachers import parse_teachers
from engine.io.ingest import SourceSpec, ingest
from engine.store.dataset import open_dataset

PROMPTS = Path(api.__file__).parent / "generate" / "prompts"
LEGAL_HEAD, GENERAL_HEAD, MEDICAL_HEAD = (
    (PROMPTS / f"{d}.txt").read_text().split("\n", 1)[0] for d in ("legal", "general", "medical")
)


@pytest.fixture(scope="module")
def wiki_chunks(tmp_path_factory: pytest.TempPathFactory, data: Path) -> Path:
    out = tmp_path_factory.mktemp("wiki") / "ch"
    api.chunk([data / "wiki_demo.txt"], out, chunk_size=1500, overlap=100)
    return out


def test_teachers_share_rows_by_percentage_deterministically(wiki_chunks: Path, tmp_path: Path) -> None:
    with FakeOpenAI() as server:
        specs = [f"a=ma@{server.url}:40", f"b=mb@{server.url}:35", f"c=mc@{server.url}:25"]
        rep = api.generate(
            wiki_chunks, teacher=specs, out=tmp_path / "qa", pairs=2, cache=tmp_path / "c.sqlite", concurrency=16
        )
        n = open_dataset(wiki_chunks).scan().select(pl.len()).collect().item()
        t = rep.tally
        assert t.rows_in == n == t.rows_ok and t.pairs_kept == 2 * n and not rep.budget_exhausted
        shares = {k: v.rows / n for k, v in t.teachers.items()}
        assert shares == pytest.approx({"a": 0.40, "b": 0.35, "c": 0.25}, abs=0.04)
        assert dict(server.by_model) == {f"m{k}": v.rows for k, v in t.teachers.items()}
        qa = open_dataset(tmp_path / "qa").scan().collect()
        assert qa.height == 2 * n and set(qa["kind"]) == {"sft"}
        meta = qa["meta"].str.json_decode()
        assert set(meta.struct.field("teacher")) == {"a", "b", "c"} and set(qa["source"]) == {"a", "b", "c"}
        assert (meta.struct.field("teacher") == qa["source"]).all()
        # rerun: same bytes, zero requests (the cache), same teacher per row
        before = server.requests
        again = api.generate(wiki_chunks, teacher=specs, out=tmp_path / "qa", pairs=2, cache=tmp_path / "c.sqlite")
        assert server.requests == before and again.client["cache_hits"] == n
        assert open_dataset(tmp_path / "qa").scan().collect().equals(qa)
    assert parse_teachers(specs)[1] == pytest.approx((0.4, 0.35, 0.25))


def _doc(tmp_path: Path) -> Path:
    paras = [
        "The heart pumps blood through the body. It has four chambers.",
        "MALFORMED answers come back from this passage on the first try. The retry fixes them.",
        "ALWAYS_BAD passages never get valid JSON from the teacher. They are rejected.",
        "BADPAIR passages get one pair with an invalid difficulty. The rest are fine.",
        "FENCED passages get their JSON inside a code fence. That is accepted.",
    ]
    p = tmp_path / "doc.md"
    p.write_text("\n\n".join(paras))
    return p


def test_rejects_have_reasons_and_rows_add_up(tmp_path: Path, server: FakeOpenAI) -> None:
    api.chunk([_doc(tmp_path)], tmp_path / "ch", chunk_size=100, overlap=0)
    rep = api.generate(
        tmp_path / "ch",
        teacher=[f"t=m@{server.url}"],
        out=tmp_path / "qa",
        pairs=3,
        cache=tmp_path / "c.sqlite",
        max_repairs=2,
    )
    t = rep.tally
    assert t.rows_in == 5 == t.rows_ok + t.rows_rejected + t.rows_pending
    assert (t.rows_ok, t.rows_rejected, t.pairs_kept, t.pairs_rejected) == (4, 1, 11, 1)
    rej = pl.read_parquet(tmp_path / "qa" / "source" / "rejects.parquet")
    assert sorted(rej["reject_reason"]) == ["bad_difficulty", "invalid_json"]
    assert rej.filter(pl.col("reject_reason") == "bad_difficulty")["pair"].item() == 1
    assert rej["reject_raw"].is_not_null().all() and rej["reject_detail"].str.len_chars().min() > 5
    # ALWAYS_BAD: asked once plus two stricter re-asks; MALFORMED: fixed by the first re-ask
    assert server.completions == 5 + 2 + 1
    assert open_dataset(tmp_path / "qa").scan().select(pl.len()).collect().item() == 11


def test_budget_stop_leaves_rows_pending_and_rerun_continues(tmp_path: Path, server: FakeOpenAI, data: Path) -> None:
    src = tmp_path / "w.txt"
    src.write_text((data / "wiki_demo.txt").read_text()[:30_000])
    api.chunk([src], tmp_path / "ch", chunk_size=1000, overlap=0)
    kw = {"teacher": [f"t=m@{server.url}"], "out": tmp_path / "qa", "cache": tmp_path / "c.sqlite", "concurrency": 4}
    cut = api.generate(tmp_path / "ch", limits=Limits(max_requests=10), **kw)
    assert cut.budget_exhausted and cut.spent["requests"] == 10 == server.completions
    assert cut.tally.rows_ok == 10 and cut.tally.rows_pending == cut.tally.rows_in - 10
    full = api.generate(tmp_path / "ch", **kw)
    assert full.tally.rows_ok == full.tally.rows_in and full.client["cache_hits"] == 10
    assert server.completions == full.tally.rows_in  # nothing asked twice


def test_judge_appends_columns_with_sampling_and_feeds_the_gate(tmp_path: Path, server: FakeOpenAI) -> None:
    api.chunk([_doc(tmp_path)], tmp_path / "ch", chunk_size=100, overlap=0)
    api.generate(tmp_path / "ch", teacher=[f"t=m@{server.url}"], out=tmp_path / "qa", cache=tmp_path / "c.sqlite")
    rep = api.judge(tmp_path / "qa", judge=f"j@{server.url}", sample=0.5, cache=tmp_path / "c.sqlite")
    df = open_dataset(tmp_path / "qa").scan().collect()
    ok = df.filter(pl.col("judge_status") == "ok")
    assert rep.rows == df.height and rep.judged == ok.height > 0 and rep.judged < df.height
    assert set(df["judge_status"]) == {"ok", "not_sampled"}
    expect = ((ok["response"].str.len_chars() + 10) % 10 + 1).cast(pl.Float64)  # the server's oracle
    assert ok["judge_correctness"].equals(expect, check_names=False)
    assert ok["judge_groundedness"].is_not_null().all()
    assert (ok["judge_score"] - (4 * expect + (expect - 1).clip(1)) / 5).abs().max() < 1e-9
    asked = server.completions
    assert (
        api.judge(tmp_path / "qa", judge=f"j@{server.url}", sample=0.5, cache=tmp_path / "c.sqlite").skipped
        == rep.partitions
    )
    assert server.completions == asked
    gate = api.gate(tmp_path / "qa", settings={"judge_column": "judge_score", "min_judge": 5})
    assert gate.passed == ok.filter(pl.col("judge_score") >= 5).height


def test_bad_teacher_specs() -> None:
    with pytest.raises(ConfigError, match="every teacher or to none"):
        parse_teachers(["a=m@http://h/v1:40", "b=m@http://h/v1"])
    with pytest.raises(ConfigError, match="given twice"):
        parse_teachers(["a=m@http://h/v1", "a=n@http://h/v1"])


def _prompts_file(tmp_path: Path, data: Path, n: int = 40) -> tuple[Path, list[dict]]:
    """Real alpaca instructions as a prompts file: most without a response, every 5th with one."""
    rows = json.loads((data / "alpaca_en_demo.json").read_text())[:n]
    recs = []
    for i, r in enumerate(rows):
        rec = {"instruction": r["instruction"], "input": r["input"]}
        if i % 5 == 4:
            rec["output"] = r["output"]
        elif i == 1:
            rec["instruction"] = "EMPTY_FIRST " + rec["instruction"]
        elif i == 2:
            rec["instruction"] = "NULL_FIRST " + rec["instruction"]
        recs.append(rec)
    p = tmp_path / "prompts.jsonl"
    p.write_text("".join(json.dumps(r) + "\n" for r in recs))
    return p, recs


def test_fills_responses_of_instruction_rows(tmp_path: Path, server: FakeOpenAI, data: Path) -> None:
    src, recs = _prompts_file(tmp_path, data)
    ing = api.ingest([src], tmp_path / "pr", domain="medical")
    assert ing.kept == len(recs) and ing.rejected == 0
    rep = api.generate(tmp_path / "pr", teacher=[f"t=m@{server.url}"], out=tmp_path / "ans", cache=tmp_path / "c.db")
    t = rep.tally
    answered = [r for r in recs if "output" not in r]
    assert (t.rows_in, t.rows_ok, t.responses_filled, t.rows_rejected) == (40, 32, 32, 8)
    assert t.reasons == {"has_response": 8}
    out = open_dataset(tmp_path / "ans").scan().sort("instruction").collect()
    assert out.height == len(answered) and set(out["kind"]) == {"sft"} and set(out["domain"]) == {"medical"}
    want = sorted((r["instruction"], r["input"]) for r in answered)
    assert list(zip(out["instruction"], out["input"], strict=True)) == want
    assert (out["response"] == "Response to: " + out["instruction"]).all()  # the server's oracle
    # the medical-domain rows were asked with the respond template naming the domain
    assert all("expert medical assistant" in p for p in server.prompts)
    # EMPTY_FIRST came back blank, NULL_FIRST as a null content (an empty answer, not a failed request); each
    # was fixed by one stricter re-ask: 32 rows, 34 completions
    assert server.completions == 34 and rep.client["retries"] == 0
    rej = pl.read_parquet(tmp_path / "ans" / "source" / "rejects.parquet")
    assert rej.height == 8 and set(rej["reject_reason"]) == {"has_response"}


def test_each_row_domain_picks_its_template(tmp_path: Path, server: FakeOpenAI, data: Path) -> None:
    text = (data / "wiki_demo.txt").read_text()
    specs = []
    for name, part, domain in (("a", text[:6000], "legal"), ("b", text[6000:12000], "astronomy")):
        (tmp_path / f"{name}.txt").write_text(part)
        api.chunk([tmp_path / f"{name}.txt"], tmp_path / f"c{name}", chunk_size=1500, overlap=0)
        src = next((tmp_path / f"c{name}" / "source").glob("*.jsonl"))
        specs.append(SourceSpec(src, "text", {}, domain, name, "auto"))
    ingest(specs, tmp_path / "both")  # one dataset, rows of two domains
    rows = open_dataset(tmp_path / "both").scan().collect()
    n_legal = rows.filter(pl.col("domain") == "legal").height
    assert 0 < n_legal < rows.height
    kw = {"teacher": [f"t=m@{server.url}"], "cache": tmp_path / "c.db", "pairs": 1}
    api.generate(tmp_path / "both", out=tmp_path / "qa", **kw)
    heads = Counter(p.split("\n", 1)[0] for p in server.prompts)
    assert heads == {LEGAL_HEAD: n_legal, GENERAL_HEAD: rows.height - n_legal}  # astronomy has no template
    out = open_dataset(tmp_path / "qa").scan().collect()
    assert out.group_by("domain").len().sort("domain").rows() == [
        ("astronomy", rows.height - n_legal),
        ("legal", n_legal),
    ]
    server.prompts.clear()
    api.generate(tmp_path / "both", out=tmp_path / "qm", domain="medical", **kw)  # a named domain: every row
    assert {p.split("\n", 1)[0] for p in server.prompts} == {MEDICAL_HEAD}
    assert set(open_dataset(tmp_path / "qm").scan().collect()["domain"]) == {"medical"}


def test_money_budget_holds_and_lands_in_the_manifest(tmp_path: Path, server: FakeOpenAI, data: Path) -> None:
    src, _ = _prompts_file(tmp_path, data)
    api.ingest([src], tmp_path / "pr")
    kw = {"teacher": [f"t=m@{server.url}"], "out": tmp_path / "ans", "cache": tmp_path / "c.db", "concurrency": 4}
    with pytest.raises(ConfigError, match="no price for model 'm'"):
        api.generate(tmp_path / "pr", limits=Limits(max_cost=1.0), **kw)
    cut = api.generate(tmp_path / "pr", limits=Limits(max_cost=0.2, price=("m=100,400",)), answer_tokens=16, **kw)
    assert cut.budget_exhausted and 0 < cut.spent["cost"] <= 0.2
    assert 0 < cut.tally.rows_ok < 32 and cut.tally.rows_pending == 32 - cut.tally.rows_ok
    usage = json.loads((tmp_path / "ans" / "manifest.json").read_text())["generate"]["usage"]
    assert usage["cost"] == pytest.approx(cut.spent["cost"]) and usage["limits"]["cost"] == 0.2
    assert usage["by_model"]["m"]["requests"] == cut.spent["requests"] == server.completions
    full = api.generate(tmp_path / "pr", limits=Limits(price=("m=100,400",)), answer_tokens=16, **kw)
    assert full.tally.responses_filled == 32 and full.client["cache_hits"] == cut.spent["requests"]
    assert server.completions == 34  # 32 rows + two stricter re-asks: nothing paid for twice
