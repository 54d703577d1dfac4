"""Selection as map/reduce gives the one-machine run's rows for any shard count (no cluster: tasks run in process)."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest

from engine.errors import InputError
from engine.select.mix import read_mix
from engine.select.queries import load_query
from engine.select.run import SelectionResult, chain, run_selection
from engine.select.shards import Round, plan_rounds, run_sharded, shard_key
from engine.stages import get_stage
from engine.store.dataset import open_dataset
from engine.store.labels import save_labels
from engine.store.runner import run_stage
from tests.select.conftest import build

CHAINS = [
    (["top_n"], {"n": "333"}),
    (["mix"], {"n": "900"}),
    (["mix", "split"], {"n": "900"}),
    (["top_pct_per_domain"], {"pct": "0.3"}),
    (["from_source", "top_n"], {"source": "alpaca_en_demo", "n": "50"}),
    (["split", "top_n"], {"n": "77"}),
    (["top_n", "split"], {"n": "500"}),
    (["top_n", "mix"], {"n": "400"}),
    (["holdout"], {"n": "40"}),
    (["random_n"], {"n": "100", "seed": "7"}),
    (["quality_tiers"], {"tier1": "10", "tier2": "100", "tier3": "400"}),
    (["threshold"], {"min": "0.5"}),
    (["pool"], {}),
]


def _same(got: SelectionResult | None, want: SelectionResult) -> None:
    assert got is not None
    assert got.rows.equals(want.rows), (got.rows.num_rows, want.rows.num_rows)
    assert (got.pool, got.by_domain) == (want.pool, want.by_domain)
    assert (got.plan is None and want.plan is None) or got.plan.equals(want.plan)  # type: ignore[union-attr]


@pytest.mark.parametrize(("queries", "params"), CHAINS, ids=["+".join(q) for q, _ in CHAINS])
def test_every_shipped_chain_gives_the_local_rows_for_any_shard_count(
    scored: Path, queries: list[str], params: dict[str, str]
) -> None:
    ds = open_dataset(scored)
    mix = read_mix(None)
    want = run_selection(ds, queries, params, mix=mix)
    assert want.rows.num_rows > 0
    for shards in (1, 2, 3, 7):
        _same(run_sharded(ds, queries, params, shards=shards, mix=mix), want)


def test_labels_excluded_ids_and_partitions_missing_a_stage_shard_like_the_local_run(tmp_path: Path) -> None:
    root = build(tmp_path / "ds", gsm8k_rows=400, partition_rows=300)
    ds = open_dataset(root)
    # kenlm_ppl only in every other partition: the others' rows have no such column (nulls in the union)
    run_stage(root, get_stage("kenlm"), get_stage("kenlm").config(), shard=(0, 2))
    ds = open_dataset(root)
    rows = ds.scan().collect()
    # reject rows that would be chosen, and hold out the ids of others
    best = run_selection(ds, ["top_n"], {"n": "60"}, by="heur_score", ascending=True).rows["_ord"].to_pylist()
    save_labels(root, [{"_ord": i, "id": rows["id"][i], "review_label": "reject"} for i in best[:6]])
    exclude = pa.table({"id": rows["id"].gather(best[6:20]).to_list()})
    for queries, params in [(["top_n"], {"n": "200"}), (["mix", "split"], {"n": "500"})]:
        for by in ("kenlm_ppl", "heur_score"):
            want = run_selection(ds, queries, params, by=by, ascending=True, mix=read_mix(None), exclude_ids=exclude)
            if by == "heur_score":
                assert not set(best[:20]) & set(want.rows["_ord"].to_pylist())
            for shards in (2, 5):
                got = run_sharded(
                    ds, queries, params, shards=shards, by=by, ascending=True, mix=read_mix(None), exclude_ids=exclude
                )
                _same(got, want)


def test_a_query_that_does_not_say_how_it_splits_runs_on_one_machine(scored: Path, tmp_path: Path) -> None:
    own = tmp_path / "longest.sql"
    own.write_text(
        "-- longest: the longest responses.\n-- reads:   scored(_ord, len_response_chars)\n-- params:  none\n"
        "-- returns: _ord\nselect _ord from scored order by len_response_chars desc limit 10\n"
    )
    assert run_sharded(open_dataset(scored), [str(own)], {}, shards=3) is None
    assert shard_key(chain(["mix"], {"n": "5"})) == "domain"
    assert shard_key(chain(["split", "top_n"], {"n": "5"})) == "_ord"
    bad = tmp_path / "bad.sql"
    bad.write_text(own.read_text().replace("-- returns: _ord\n", "-- returns: _ord\n-- shard:   everywhere\n"))
    with pytest.raises(InputError, match="shard: expected one of row, domain, top, got 'everywhere'"):
        load_query(bad)


def test_mix_runs_as_two_shard_rounds_around_the_plan_on_the_driver() -> None:
    steps = chain(["from_source", "mix", "split"], {"n": "10", "source": "x"})
    assert [s.query.name for s in steps] == ["from_source", "mix_available", "mix_plan", "mix", "split"]
    rounds, handoff = plan_rounds(steps)
    assert rounds == [Round(0, tuple(steps[:2]), False), 2, Round(3, tuple(steps[3:]), False)]
    assert handoff == len(steps)
    rounds, handoff = plan_rounds(chain(["split", "top_n", "split"], {"n": "5"}))
    assert len(rounds) == 1 and isinstance(rounds[0], Round) and rounds[0].gather and handoff == 1
