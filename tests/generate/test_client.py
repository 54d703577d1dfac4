"""The chat client against a real local HTTP server: cache, retries, Retry-After, budget."""

from __future__ import annotations

from pathlib import Path

import pytest
from fake_openai import FakeOpenAI

from engine import api
from engine.errors import ConfigError
from engine.generate.budget import Budget, Price
from engine.generate.cache import ResponseCache
from engine.generate.client import ChatClient, Endpoint, prompt_bound
from engine.store.dataset import open_dataset

PARAMS = {"temperature": 0.0, "max_tokens": 64}


def _msgs(i: int) -> list[dict[str, str]]:
    return [{"role": "user", "content": f"strict reviewer\nAnswer:\n{'x' * i}"}]


def test_rerun_is_served_from_the_cache(server: FakeOpenAI, tmp_path: Path) -> None:
    ep = Endpoint("j", "m", server.url)
    client = ChatClient(ResponseCache(tmp_path / "c.sqlite"), concurrency=8)
    first = client.map([(ep, _msgs(i), PARAMS) for i in range(20)])
    assert server.completions == 20 and all(r.content for r in first)
    again = ChatClient(ResponseCache(tmp_path / "c.sqlite"), concurrency=8)  # a new process would do this
    second = again.map([(ep, _msgs(i), PARAMS) for i in range(20)])
    assert server.requests == 20 and again.stats.cache_hits == 20
    assert [r.content for r in second] == [r.content for r in first]


def test_retries_429_and_500_honouring_retry_after(tmp_path: Path) -> None:
    waits: list[float] = []
    with FakeOpenAI(retry_after="2") as server:
        server.faults = [429, 500, 503]
        client = ChatClient(ResponseCache(tmp_path / "c.sqlite"), concurrency=1, backoff_s=0.01, sleep=waits.append)
        reply = client.complete(Endpoint("j", "m", server.url), _msgs(3), PARAMS)
    assert reply.content is not None and reply.error is None
    assert server.requests == 4 and client.stats.retries == 3
    assert waits[0] == 2.0 and all(w <= 0.04 for w in waits[1:])  # Retry-After, then jittered backoff


def test_gives_up_after_max_retries_and_does_not_cache(tmp_path: Path, server: FakeOpenAI) -> None:
    server.faults = [500] * 3
    client = ChatClient(ResponseCache(tmp_path / "c.sqlite"), max_retries=2, sleep=lambda s: None)
    reply = client.complete(Endpoint("j", "m", server.url), _msgs(1), PARAMS)
    assert reply.error == "http_500" and server.requests == 3 and len(client.cache) == 0
    assert client.complete(Endpoint("j", "m", server.url), _msgs(1), PARAMS).content  # next time it works


def test_budget_is_never_exceeded_and_stops_cleanly(server: FakeOpenAI, tmp_path: Path) -> None:
    bound = prompt_bound(_msgs(50)) + PARAMS["max_tokens"]
    budget = Budget(max_requests=7, max_tokens=10 * bound)
    client = ChatClient(ResponseCache(tmp_path / "c.sqlite"), budget, concurrency=8)
    replies = client.map([(Endpoint("j", "m", server.url), _msgs(i), PARAMS) for i in range(30)])
    done = [r for r in replies if r.content is not None]
    assert len(done) == 7 == server.completions == budget.spent.requests
    assert {r.error for r in replies if r.content is None} == {"budget_exhausted"} and budget.exhausted
    tight = Budget(max_tokens=bound * 3)
    c2 = ChatClient(ResponseCache(tmp_path / "d.sqlite"), tight, concurrency=4)
    c2.map([(Endpoint("j", "m", server.url), _msgs(i), PARAMS) for i in range(30)])
    assert 0 < tight.spent.tokens <= bound * 3


def test_money_budget_is_never_exceeded_and_costs_follow_usage(server: FakeOpenAI, tmp_path: Path) -> None:
    price = Price(prompt=300.0, completion=1200.0)  # US$ per million tokens: dear, so a few requests fill it
    hold = price.cost(prompt_bound(_msgs(29)), PARAMS["max_tokens"])
    budget = Budget(max_cost=2 * hold, prices={"m": price, "n": Price(1.0, 2.0)})
    client = ChatClient(ResponseCache(tmp_path / "c.sqlite"), budget, concurrency=8)
    eps = [Endpoint("a", "m", server.url), Endpoint("b", "n", server.url)]
    replies = client.map([(eps[i % 2], _msgs(i), PARAMS) for i in range(30)])
    done = [r for r in replies if r.content is not None]
    assert budget.exhausted and 3 <= len(done) < 30 and budget.spent.cost <= 2 * hold
    # what was charged is the servers' reported usage at each model's price, summed per model
    for model, pr in (("m", price), ("n", Price(1.0, 2.0))):
        mine = [r.usage for i, r in enumerate(replies) if r.content and eps[i % 2].model == model]
        want = sum(pr.cost(u["prompt_tokens"], u["completion_tokens"]) for u in mine)
        assert budget.by_model[model].cost == pytest.approx(want) and budget.by_model[model].requests == len(mine)
    assert budget.usage()["cost"] == pytest.approx(budget.spent.cost, abs=1e-6)


def test_money_limit_needs_a_price_for_every_model() -> None:
    budget = Budget(max_cost=1.0, prices={"m": Price(1.0, 1.0)})
    budget.check_models(["m"])
    with pytest.raises(ConfigError, match="no price for model 'gpt-x'; add --price gpt-x=PROMPT,COMPLETION"):
        budget.check_models(["m", "gpt-x"])
    with pytest.raises(ConfigError, match="--max-cost -1"):
        Budget(max_cost=-1)


def test_slow_answers_and_garbage_bodies_are_retried(tmp_path: Path) -> None:
    with FakeOpenAI() as server:
        server.faults = ["slow", "garbage", 500, "slow"]
        server.slow_s = 1.0
        client = ChatClient(ResponseCache(tmp_path / "c.sqlite"), timeout_s=0.3, backoff_s=0.01, max_retries=5)
        reply = client.complete(Endpoint("j", "m", server.url), _msgs(3), PARAMS)
        assert reply.error is None and reply.content and client.stats.retries == 4
        assert server.requests == 5 and len(client.cache) == 1
        server.faults = ["garbage"] * 3
        tight = ChatClient(ResponseCache(tmp_path / "d.sqlite"), max_retries=2, backoff_s=0.01)
        bad = tight.complete(Endpoint("j", "m", server.url), _msgs(4), PARAMS)
        assert bad.error == "bad_response" and "not a chat completion" in bad.detail and len(tight.cache) == 0


def test_a_fault_storm_loses_and_duplicates_no_row(tmp_path: Path, data: Path) -> None:
    (tmp_path / "w.txt").write_text((data / "wiki_demo.txt").read_text()[:20_000])
    api.chunk([tmp_path / "w.txt"], tmp_path / "ch", chunk_size=800, overlap=0)
    with FakeOpenAI() as server:
        server.slow_s = 0.5
        server.faults = [429, 500, "garbage", "slow", 503, 429, "garbage", 500] * 3
        rep = api.generate(
            tmp_path / "ch", teacher=[f"t=m@{server.url}"], out=tmp_path / "qa", cache=tmp_path / "c.db", pairs=2
        )
    n = rep.tally.rows_in
    assert rep.tally.rows_ok == n and rep.client["retries"] >= 24 - 3  # slow ones only retry past the timeout
    qa = open_dataset(tmp_path / "qa").scan().collect()
    assert qa.height == 2 * n and qa["id"].n_unique() == 2 * n
