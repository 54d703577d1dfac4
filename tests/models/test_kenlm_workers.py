"""Forked KenLM scorers: the same floats as a loop over `Model.score`, real children, failures said plainly."""

from __future__ import annotations

import json
import os
import signal
import sys

import numpy as np
import pytest

from engine.models import kenlm_lm, kenlm_workers
from engine.stages.kenlm import normalize_texts
from tests.conftest import DATA

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="forked scorers run on Linux only")


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> object:
    out = tmp_path_factory.mktemp("kenlm_workers") / "wiki3.arpa"
    kenlm_lm.train([DATA / "wiki_demo.txt"], out, order=3, normalize=normalize_texts)
    return kenlm_lm.load(out)


@pytest.fixture(scope="module")
def texts() -> list[str]:
    """7,473 GSM8K questions and solutions plus the 999 alpaca outputs, normalised: real rows of uneven length."""
    gsm = [json.loads(line) for line in (DATA / "gsm8k_train.jsonl").read_text().splitlines()]
    alpaca = json.loads((DATA / "alpaca_en_demo.json").read_text())
    return normalize_texts([r["question"] + " " + r["answer"] for r in gsm] + [r["output"] for r in alpaca])


def _loop(model: object, texts: list[str]) -> np.ndarray:
    return np.array([model.score(t) for t in texts])  # type: ignore[attr-defined]


def test_forked_scores_equal_a_loop_bit_for_bit(model: object, texts: list[str]) -> None:
    w = kenlm_workers.workers(model, 3)
    assert len(w.pids) == 2 and all(pid != os.getpid() for pid in w.pids)
    cost = np.array([t.count(" ") + 2 for t in texts])
    got = w.score(texts, cost)
    np.testing.assert_array_equal(got, _loop(model, texts))
    # the same scorers serve the next call (no second fork), and equal rows in another order
    assert kenlm_workers.workers(model, 3) is w
    np.testing.assert_array_equal(w.score(texts[::-1]), got[::-1])


def test_small_batches_stay_in_process(model: object, texts: list[str]) -> None:
    w = kenlm_workers.workers(model, 2)
    few = texts[: 2 * kenlm_workers.MIN_SHARE_ROWS - 1]
    os.kill(w.pids[0], signal.SIGSTOP)  # a child that cannot answer: a small batch must not need it
    try:
        np.testing.assert_array_equal(w.score(few), _loop(model, few))
    finally:
        os.kill(w.pids[0], signal.SIGCONT)


def test_a_dead_child_is_a_clear_error_and_the_next_call_forks_again(model: object, texts: list[str]) -> None:
    w = kenlm_workers.workers(model, 2)
    os.kill(w.pids[0], signal.SIGKILL)
    os.waitpid(w.pids[0], 0)
    with pytest.raises(RuntimeError, match=r"scoring process ended unexpectedly.*rerun"):
        w.score(texts)
    assert w.closed and not w.pids
    fresh = kenlm_workers.workers(model, 2)
    assert fresh is not w and len(fresh.pids) == 1
    np.testing.assert_array_equal(fresh.score(texts[:5000]), _loop(model, texts[:5000]))


def test_one_process_forks_nothing(model: object, texts: list[str]) -> None:
    w = kenlm_workers.workers(model, 1)
    assert w.pids == [] and w.conns == []
    np.testing.assert_array_equal(w.score(texts[:5000]), _loop(model, texts[:5000]))


def test_close_all_reaps_every_child(model: object) -> None:
    pids = kenlm_workers.workers(model, 3).pids + kenlm_workers.workers(model, 2).pids
    kenlm_workers.close_all()
    for pid in pids:
        with pytest.raises(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)


def test_a_batch_that_fails_here_never_leaves_stale_answers_in_the_pipes(model: object, texts: list[str]) -> None:
    w = kenlm_workers.workers(model, 2)
    bad = [123, *texts[1:6000]]  # the first share is scored here: it fails after the child got its share
    with pytest.raises(TypeError):
        w.score(bad)  # type: ignore[arg-type]
    assert w.closed
    fresh = kenlm_workers.workers(model, 2)
    np.testing.assert_array_equal(fresh.score(texts[:6000]), _loop(model, texts[:6000]))
