"""A `distill generate` killed with SIGKILL mid-run resumes from the cache: nothing lost, duplicated or paid twice."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
from fake_openai import FakeOpenAI

from engine import api
from engine.generate.cache import ResponseCache
from engine.store.dataset import open_dataset

REPO = Path(__file__).resolve().parents[2]
CONCURRENCY = 4


def _generate(ds: Path, out: Path, cache: Path, url: str) -> subprocess.Popen[str]:
    args = [sys.executable, "-m", "engine.cli.main", "generate", str(ds), "--teacher", f"t=m@{url}", "--out", str(out)]
    args += ["--cache", str(cache), "--pairs", "2", "--concurrency", str(CONCURRENCY), "-q"]
    return subprocess.Popen(args, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def test_sigkill_mid_run_then_rerun_resumes_from_the_cache(tmp_path: Path, data: Path) -> None:
    (tmp_path / "w.txt").write_text((data / "wiki_demo.txt").read_text()[:40_000])
    api.chunk([tmp_path / "w.txt"], tmp_path / "ch", chunk_size=1000, overlap=0)
    n = open_dataset(tmp_path / "ch").scan().select(pl.len()).collect().item()
    assert n >= 30
    with FakeOpenAI(delay_s=0.05) as server:
        proc = _generate(tmp_path / "ch", tmp_path / "qa", tmp_path / "c.db", server.url)
        deadline = time.monotonic() + 60
        while server.completions < n // 3 and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.01)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        assert proc.returncode == -signal.SIGKILL
        time.sleep(0.5)  # requests in flight at the kill finish on the server (their answers go nowhere)
        paid = server.completions
        cache = ResponseCache(tmp_path / "c.db")
        kept = len(cache)  # every answer that reached the client was committed before the kill
        cache.close()
        assert n // 3 - CONCURRENCY <= kept <= paid < n
        assert not (tmp_path / "qa" / "manifest.json").exists()  # no half dataset

        rerun = _generate(tmp_path / "ch", tmp_path / "qa", tmp_path / "c.db", server.url)
        out, _ = rerun.communicate(timeout=120)
        assert rerun.returncode == 0, out
        assert f"{kept} from cache" in out and f"{n} rows: {n} answered" in out
        # the rerun asked exactly the rows without a cached answer; only those in flight at the kill were paid twice
        assert server.completions - paid == n - kept and n <= server.completions <= n + CONCURRENCY

    resumed = open_dataset(tmp_path / "qa").scan().collect()
    assert api.verify(tmp_path / "qa").ok and resumed.height == 2 * n
    assert resumed.select("id").n_unique() == 2 * n  # no row twice
    with FakeOpenAI() as clean_server:  # an uninterrupted run, from scratch, gives the same rows
        clean = _generate(tmp_path / "ch", tmp_path / "qa2", tmp_path / "c2.db", clean_server.url)
        assert clean.wait(timeout=120) == 0
    fresh = open_dataset(tmp_path / "qa2").scan().collect()
    assert sorted(fresh["id"]) == sorted(resumed["id"])
