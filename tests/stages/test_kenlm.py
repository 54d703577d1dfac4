"""The kenlm and kenlm_bucket stages: perplexity as kenlm computes it, normalisation, global buckets."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from engine import api
from engine import config as cfgmod
from engine.errors import ConfigError
from engine.models import kenlm_lm, kenlm_workers
from engine.stages import kenlm, kenlm_bucket
from engine.stages.views import response_text
from engine.store.dataset import open_dataset
from tests.conftest import DATA

SOURCES = [DATA / "alpaca_en_demo.json", DATA / "glaive_toolcall_en_demo.json", DATA / "c4_demo.jsonl"]


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("kenlm") / "wiki3.arpa"
    api.kenlm_train([DATA / "wiki_demo.txt"], out, order=3)
    return out


@pytest.fixture(scope="module")
def scored(tmp_path_factory: pytest.TempPathFactory, model: Path) -> Path:
    ds = tmp_path_factory.mktemp("kenlm_ds") / "ds"
    api.ingest(SOURCES, ds, partition_rows=400)
    api.score("kenlm", ds, settings={"model": str(model)})
    api.score("kenlm_bucket", ds)
    return ds


def test_fast_normalisation_equals_the_polars_expression_on_real_text() -> None:
    texts: list[str] = []
    for name in ("alpaca_en_demo.json", "glaive_toolcall_en_demo.json", "dpo_en_demo.json"):
        texts += [json.dumps(r, ensure_ascii=False) for r in json.loads((DATA / name).read_text())]
    texts += (DATA / "c4_demo.jsonl").read_text().splitlines() + kenlm_lm.read_corpus([DATA / "wiki_demo.txt"])
    # the corners: accents, combining marks, curly quotes, full-width and CJK, emoji, sigma, controls
    texts += [
        "Ｃafé “résumé” — naïve…",
        "e\u0301\u0301x",
        "ΣΟΦΙΑΣ σοφίας",
        "北京大学。好！",
        "ok 🚀🙂 1,234.5",
        "\x00a\tb\r\nc",
        "",
        "İstanbul ǅ ﬁ",
    ]
    series = pl.Series("t", texts, dtype=pl.String)
    fast = kenlm.normalize_series(series)
    slow = series.to_frame().select(kenlm.normalize(pl.col("t")))["t"]
    assert fast.to_list() == slow.to_list()
    assert kenlm.normalize_texts(["Café “Résumé” — 1984!"]) == ['cafe " resume " - 0000 !']


def test_kenlm_ppl_equals_a_direct_model_call(scored: Path, model: Path) -> None:
    df = open_dataset(scored).scan().select(text=response_text(), ppl="kenlm_ppl").collect()
    assert df.height == 999 + 300 + 300 and df["ppl"].null_count() == df["text"].null_count()
    direct = kenlm_lm.load(model)
    rows = df.filter(pl.col("text").is_not_null())
    expected = [direct.perplexity(t) for t in kenlm.normalize_texts(rows["text"].to_list())]
    np.testing.assert_allclose(rows["ppl"].to_numpy(), expected, rtol=1e-12)


def test_bucket_counts_match_percentiles_computed_independently(scored: Path) -> None:
    df = open_dataset(scored).scan().select("kenlm_ppl", "kenlm_bucket").collect()
    ppl = df["kenlm_ppl"].drop_nulls().to_numpy()
    lo, hi = np.percentile(ppl, [30, 60])
    want = {
        "head": int((ppl <= lo).sum()),
        "middle": int(((ppl > lo) & (ppl <= hi)).sum()),
        "tail": int((ppl > hi).sum()),
    }
    got = dict(df.group_by("kenlm_bucket").len().drop_nulls().iter_rows())
    assert got == want
    assert abs(want["head"] - 0.3 * len(ppl)) <= 1


def test_bucket_cuts_are_configurable_and_checked(scored: Path, tmp_path: Path) -> None:
    ds = tmp_path / "ds"
    shutil.copytree(scored, ds)
    api.score("kenlm_bucket", ds, settings={"cuts": "10,90"})
    counts = dict(open_dataset(ds).scan().group_by("kenlm_bucket").len().collect().iter_rows())
    rows = sum(counts.values())
    assert abs(counts["head"] - 0.1 * rows) <= 1 and abs(counts["tail"] - 0.1 * rows) <= 1
    with pytest.raises(ConfigError, match="cuts must be two percentiles"):
        cfgmod.from_mapping(kenlm_bucket.KenlmBucketConfig, {"cuts": "60,30"}, where="kenlm_bucket")


def test_config_fingerprint_follows_the_model_file(model: Path, tmp_path: Path) -> None:
    copy = tmp_path / "m.arpa"
    shutil.copy(model, copy)
    a = kenlm.KenlmConfig(model=str(copy))
    copy.write_text(copy.read_text().replace("\t", "\t", 1) + "\n")  # same path, other bytes
    b = kenlm.KenlmConfig(model=str(copy))
    assert a.model_hash != b.model_hash and cfgmod.fingerprint(a, 1) != cfgmod.fingerprint(b, 1)
    with pytest.raises(ConfigError, match="the model changed"):
        kenlm.KenlmConfig(model=str(copy), model_hash=a.model_hash)
    with pytest.raises(ConfigError, match="does not exist"):
        kenlm.KenlmConfig(model=str(tmp_path / "missing.arpa"))
    with pytest.raises(ConfigError, match="field must be one of"):
        kenlm.KenlmConfig(field="respones")


def test_default_model_is_the_bundled_wiki_reference_trained_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    cfg = kenlm.KenlmConfig()
    assert cfg.model_hash.startswith("ref-")
    path = Path(cfg.model_path())
    assert path.parent == tmp_path / "cache" / "distill" and path.is_file()
    mtime = path.stat().st_mtime_ns
    assert Path(kenlm.KenlmConfig().model_path()).stat().st_mtime_ns == mtime  # cached, not retrained
    model = kenlm_lm.load(path)
    assert model.order == kenlm_lm.REFERENCE_ORDER
    wiki, noise = kenlm.normalize_texts(["The state is a political entity.", "entity state political a is The."])
    assert model.perplexity(wiki) < model.perplexity(noise)


def test_field_option_scores_another_text(scored: Path, model: Path, tmp_path: Path) -> None:
    ds = tmp_path / "ds"
    api.ingest([DATA / "alpaca_en_demo.json", DATA / "c4_demo.jsonl"], ds)
    api.score("kenlm", ds, settings={"model": str(model), "field": "prompt"})
    df = open_dataset(ds).scan().select("kind", "kenlm_ppl").collect()
    assert df.filter(pl.col("kind") == "text")["kenlm_ppl"].null_count() == 300  # text rows have no prompt
    assert df.filter(pl.col("kind") == "sft")["kenlm_ppl"].null_count() == 0


def test_a_large_partition_is_scored_on_forked_processes_with_the_same_floats(tmp_path: Path, model: Path) -> None:
    ds = tmp_path / "gsm"
    api.ingest([DATA / "gsm8k_train.jsonl"], ds)  # 7,473 rows in one partition: shared with forked scorers
    assert len(open_dataset(ds).manifest["partitions"]) == 1
    api.score("kenlm", ds, settings={"model": str(model)})
    df = open_dataset(ds).scan().select(text=response_text(), ppl="kenlm_ppl").collect()
    direct = kenlm_lm.load(model)
    expected = [direct.perplexity(t) for t in kenlm.normalize_texts(df["text"].to_list())]
    np.testing.assert_allclose(df["ppl"].to_numpy(), expected, rtol=1e-12)
    if sys.platform == "linux" and pl.thread_pool_size() > 1:
        assert len(kenlm_workers.workers(direct, pl.thread_pool_size()).pids) == pl.thread_pool_size() - 1
