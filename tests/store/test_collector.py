"""frozen_start: objects alive when a job starts sit out its collections; the job's own cycles do not."""

from __future__ import annotations

import gc
import weakref
from pathlib import Path

from engine import api
from engine.store.collector import frozen_start
from tests.conftest import DATA


class Node:
    def __init__(self) -> None:
        self.me = self  # a reference cycle: only the cyclic collector frees it


def test_objects_alive_at_the_start_are_frozen_for_the_block_only() -> None:
    before = Node()
    gone_before = weakref.ref(before)
    with frozen_start():
        assert gc.get_freeze_count() > 0
        del before
        gc.collect()
        assert gone_before() is not None  # frozen: the collector does not look at it
        made = Node()
        gone_made = weakref.ref(made)
        del made
        gc.collect()
        assert gone_made() is None  # a cycle the job made is still collected
    assert gc.get_freeze_count() == 0
    gc.collect()
    assert gone_before() is None  # handed back, and collected as it would have been


def test_nested_blocks_unfreeze_once_and_a_process_freeze_is_left_alone() -> None:
    with frozen_start():
        with frozen_start():
            inner = gc.get_freeze_count()
        assert gc.get_freeze_count() == inner > 0  # the outer block still holds them
    assert gc.get_freeze_count() == 0
    gc.freeze()  # the process froze objects itself (a pre-fork server, say)
    try:
        held = gc.get_freeze_count()
        with frozen_start():
            assert gc.get_freeze_count() == held
        assert gc.get_freeze_count() == held  # not unfrozen by us
    finally:
        gc.unfreeze()


def test_a_stage_runs_with_the_start_frozen(tmp_path: Path) -> None:
    api.ingest([DATA / "alpaca_en_demo.json"], tmp_path / "ds", partition_rows=500)
    during: list[int] = []
    report = api.score("length", tmp_path / "ds", on_progress=lambda _: during.append(gc.get_freeze_count()))
    assert report.written == 2 and len(during) >= 3
    assert min(during) > 0  # every progress call came from inside the frozen block
    assert gc.get_freeze_count() == 0
