"""Generate against a real OpenAI-compatible server: `mlx_lm server` on 127.0.0.1 with a tiny local model.

The model has random weights (nothing can be downloaded), so its Q&A answers are never valid JSON: that
exercises the reject path on real server output. Its free-text responses are valid answers for filling
sft rows, so that path is exercised end to end, cache included.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import polars as pl
import pytest

from engine import api
from engine.generate.cache import ResponseCache
from engine.store.dataset import open_dataset
from tests.models.test_ifd_tiny import build_tiny_llama

pytest.importorskip("mlx_lm")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def mlx_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    model = build_tiny_llama(tmp_path_factory.mktemp("tiny-llama"))
    port = _free_port()
    cmd = [sys.executable, "-m", "mlx_lm", "server", "--model", str(model), "--host", "127.0.0.1"]
    cmd += ["--port", str(port), "--log-level", "WARNING"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"{url}/v1/models", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"mlx_lm server did not start: {proc.stderr.read() if proc.stderr else ''}")
                time.sleep(0.3)
        yield f"tiny={model}@{url}/v1"  # the server serves the model named by its --model path
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_fills_responses_from_a_real_mlx_lm_server(mlx_server: str, tmp_path: Path, data: Path) -> None:
    rows = json.loads((data / "alpaca_en_demo.json").read_text())[:12]
    (tmp_path / "p.jsonl").write_text("".join(json.dumps({"instruction": r["instruction"]}) + "\n" for r in rows))
    api.ingest([tmp_path / "p.jsonl"], tmp_path / "pr")
    kw = {"teacher": [mlx_server], "cache": tmp_path / "c.db", "answer_tokens": 24, "concurrency": 4}
    rep = api.generate(tmp_path / "pr", out=tmp_path / "ans", **kw)
    t = rep.tally
    assert t.rows_in == 12 == t.rows_ok + t.rows_rejected + t.rows_pending and t.rows_pending == 0
    assert t.responses_filled == t.rows_ok > 0 and rep.client["sent"] >= 12
    assert 0 < rep.spent["completion_tokens"] <= 24 * rep.spent["requests"]  # the server's own usage counts
    out = open_dataset(tmp_path / "ans").scan().collect()
    assert out.height == t.rows_ok and set(out["instruction"]) <= {r["instruction"] for r in rows}
    # each response is the server's text as it was cached, stripped
    cache = ResponseCache(tmp_path / "c.db")
    cached = {json.loads(b)["content"].strip() for (b,) in cache._con.execute("select body from responses")}
    cache.close()
    assert set(out["response"]) <= cached and out["response"].str.len_chars().min() > 0
    again = api.generate(tmp_path / "pr", out=tmp_path / "ans2", **kw)
    assert again.client["sent"] == 0 and again.client["cache_hits"] == rep.client["sent"]
    again_rows = open_dataset(tmp_path / "ans2").scan().collect()
    assert again_rows.drop("src_file").equals(out.drop("src_file"))  # src_file names the output dir


def test_invalid_answers_from_a_real_server_are_rejected_with_reasons(
    mlx_server: str, tmp_path: Path, data: Path
) -> None:
    (tmp_path / "w.txt").write_text((data / "wiki_demo.txt").read_text()[:2500])
    api.chunk([tmp_path / "w.txt"], tmp_path / "ch", chunk_size=900, overlap=0)
    n = open_dataset(tmp_path / "ch").scan().select(pl.len()).collect().item()
    rep = api.generate(
        tmp_path / "ch",
        teacher=[mlx_server],
        out=tmp_path / "qa",
        cache=tmp_path / "c.db",
        answer_tokens=24,
        max_repairs=1,
    )
    t = rep.tally
    assert t.rows_in == n == t.rows_ok + t.rows_rejected and t.rows_rejected > 0
    rej = pl.read_parquet(tmp_path / "qa" / "source" / "rejects.parquet")
    assert rej.height >= t.rows_rejected and rej["reject_raw"].is_not_null().all()
    assert set(rej["reject_reason"]) <= {"invalid_json", "not_an_object", "no_pairs", "missing_field", "wrong_type"}
    assert rep.client["sent"] == n + t.rows_rejected  # one stricter re-ask per rejected row
