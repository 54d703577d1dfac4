"""frozen_start: objects alive when a job starts sit out its collections; the job's own cycles do not.

The collector's state is process-wide, so the first two checks run in a fresh interpreter.
"""

from __future__ import annotations

import gc
from pathlib import Path

from engine import api
from tests.conftest import DATA, fresh_json


def test_objects_alive_at_the_start_are_frozen_for_the_block_only() -> None:
    out = fresh_json(
        """
import gc, json, weakref
from engine.store.collector import frozen_start

class Node:
    def __init__(self):
        self.me = self  # a reference cycle: only the cyclic collector frees it

before = Node()
gone_before = weakref.ref(before)
with frozen_start():
    frozen = gc.get_freeze_count()
    del before
    gc.collect()
    kept = gone_before() is not None  # frozen: the collector does not look at it
    made = Node()
    gone_made = weakref.ref(made)
    del made
    gc.collect()
    made_freed = gone_made() is None  # a cycle the job made is still collected
after = gc.get_freeze_count()
gc.collect()
print(json.dumps({"frozen": frozen, "kept": kept, "made_freed": made_freed, "after": after,
                  "before_freed": gone_before() is None}))
"""
    )
    assert out["frozen"] > 0 and out["kept"] and out["made_freed"]
    assert out["after"] == 0 and out["before_freed"]  # handed back, and collected as it would have been


def test_nested_blocks_unfreeze_once_and_a_process_freeze_is_left_alone() -> None:
    out = fresh_json(
        """
import gc, json
from engine.store.collector import frozen_start

with frozen_start():
    with frozen_start():
        inner = gc.get_freeze_count()
    outer = gc.get_freeze_count()
after = gc.get_freeze_count()
gc.freeze()  # the process froze objects itself (a pre-fork server, say)
held = gc.get_freeze_count()
with frozen_start():
    during = gc.get_freeze_count()
print(json.dumps({"inner": inner, "outer": outer, "after": after, "held": held, "during": during,
                  "left": gc.get_freeze_count()}))
"""
    )
    assert out["inner"] > 0 and out["outer"] == out["inner"]  # the outer block still holds them
    assert out["after"] == 0
    assert out["held"] > 0 and out["during"] == out["held"] == out["left"]  # not unfrozen by us


def test_a_stage_runs_with_the_start_frozen(tmp_path: Path) -> None:
    api.ingest([DATA / "alpaca_en_demo.json"], tmp_path / "ds", partition_rows=500)
    during: list[int] = []
    start = gc.get_freeze_count()
    report = api.score("length", tmp_path / "ds", on_progress=lambda _: during.append(gc.get_freeze_count()))
    assert report.written == 2 and len(during) >= 3
    assert min(during) > 0  # every progress call came from inside the frozen block
    assert gc.get_freeze_count() == start  # handed back
