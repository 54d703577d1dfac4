"""Stages on a real two-node Ray cluster on 127.0.0.1 write the same bytes as the local runner, and resume alike."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import polars as pl
import pytest

from engine import api, config
from engine.errors import ConfigError
from engine.stages import get_stage
from engine.stages.base import ORD
from engine.stages.exact_dedup import reduce as exact_reduce
from engine.stages.shard_reduce import SHARDED, split_shards
from engine.store.dataset import open_dataset
from engine.store.ray_runner import RayEngine, RayStageReport, run_stage_ray
from tests.conftest import DATA

ray = pytest.importorskip("ray")
from ray.cluster_utils import Cluster  # noqa: E402

PLAN = [("length", {}), ("exact_dedup", {}), ("minhash", {}), ("near_dedup", {})]
MB = 1024 * 1024


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    """A head and one worker node (1 CPU each, small object store, no dashboard); only this cluster is shut down."""
    saved = os.environ.get("RAY_USAGE_STATS_ENABLED")
    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
    node = {"num_cpus": 1, "object_store_memory": 80 * MB}
    c = Cluster(initialize_head=True, head_node_args={**node, "include_dashboard": False})
    c.add_node(**node, resources={"second_node": 1})
    ray.init(address=c.address, logging_level="WARNING")
    try:
        yield c
    finally:
        ray.shutdown()
        c.shutdown()
        if saved is None:
            os.environ.pop("RAY_USAGE_STATS_ENABLED", None)
        else:
            os.environ["RAY_USAGE_STATS_ENABLED"] = saved


@pytest.fixture(scope="module")
def ingested(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """1,200 real GSM8K rows plus 60 exact (case/space) copies and 60 near copies, in 6 partitions."""
    rows = [json.loads(line) for line in (DATA / "gsm8k_train.jsonl").read_text().splitlines()[:1200]]
    exact = [{**r, "question": r["question"].upper() + "  "} for r in rows[:60]]
    near = [{**r, "question": r["question"] + " Show your work."} for r in rows[100:160]]
    base = tmp_path_factory.mktemp("ray")
    src = base / "rows.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in rows[:600] + exact + rows[600:] + near))
    api.ingest([src], base / "clean", partition_rows=220)
    return base / "clean"


def _hashes(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted((root / "stages").rglob("*.parquet"))
    }


def _run_ray(root: Path, name: str, settings: dict | None = None, shards: int = 0) -> RayStageReport:
    spec = get_stage(name)
    cfg = config.from_mapping(spec.config, settings or {}, where=name)
    return run_stage_ray(root, spec, cfg, engine=RayEngine(address="auto", shards=shards))


@pytest.fixture(scope="module")
def runs(ingested: Path, cluster: Cluster) -> tuple[Path, Path, dict[str, RayStageReport]]:
    local, remote = ingested.parent / "local", ingested.parent / "remote"
    shutil.copytree(ingested, local)
    shutil.copytree(ingested, remote)
    reports = {}
    for name, settings in PLAN:
        api.score(name, local, settings=settings)
        reports[name] = _run_ray(remote, name, settings, shards=3)
    return local, remote, reports


def test_every_stage_file_is_byte_identical_to_the_local_run(runs: tuple[Path, Path, dict]) -> None:
    local, remote, reports = runs
    want = _hashes(local)
    assert len([k for k in want if "/part-" in k]) == 4 * 6 and len([k for k in want if "_side" in k]) == 2
    assert _hashes(remote) == want
    assert reports["exact_dedup"].global_step == "sharded" and reports["near_dedup"].global_step == "one_task"
    assert all(r.report.written == 6 and r.report.skipped == 0 for r in reports.values())
    df = open_dataset(remote).scan().collect()
    assert df.height == 1320 and df["exact_dup_of"].drop_nulls().len() == 60  # the planted copies were found
    assert not df.filter(pl.col("exact_dup_of").is_not_null())["dup_keep"].any()  # exact copies are near copies too
    assert (~df["dup_keep"]).sum() > 100  # and most of the 60 planted near copies (short rows fall below 0.8)
    done = [e for e in json.loads((remote / "manifest.json").read_text())["stages"]]
    assert [(e["stage"], e["status"], e["rows"]) for e in done] == [(n, "complete", 1320) for n, _ in PLAN]


def test_tasks_ran_on_both_nodes(runs: tuple[Path, Path, dict], cluster: Cluster) -> None:
    alive = {n["NodeID"] for n in ray.nodes() if n["Alive"]}
    used = set().union(*(r.nodes for r in runs[2].values()))
    assert len(alive) == 2 and used == alive


def test_deleted_partition_resumes_on_either_engine(runs: tuple[Path, Path, dict]) -> None:
    local, remote, _ = runs
    want = _hashes(local)
    (remote / "stages" / "length" / "part-00003.parquet").unlink()
    (remote / "stages" / "near_dedup" / "part-00001.parquet").unlink()
    again = _run_ray(remote, "length")
    assert (again.report.written, again.report.skipped) == (1, 5)
    # the Ray run's files are up to date for the local runner too: it redoes only the missing partition
    report = api.score("near_dedup", remote)
    assert (report.written, report.skipped) == (1, 5)
    (remote / "stages" / "exact_dedup" / "part-00000.parquet").unlink()
    again = _run_ray(remote, "exact_dedup")
    assert (again.report.written, again.report.skipped, again.global_step) == (1, 5, "reused")
    assert _hashes(remote) == want


def test_sharded_exact_reduce_equals_the_stage_reduce(ingested: Path) -> None:
    """The map/reduce split gives the stage's own side table for any shard count (P = 1 is the local case)."""
    cfg = get_stage("exact_dedup").config()
    lf = open_dataset(ingested).scan([]).with_row_index(ORD)
    want = exact_reduce(lf, cfg).sort(ORD)
    keyed = SHARDED["exact_dedup"].map(lf, cfg).collect()
    for shards in (1, 4, 7):
        pieces = [SHARDED["exact_dedup"].reduce_shard(s, cfg) for s in split_shards(keyed, "exact_hash", shards)]
        assert pl.concat(pieces).sort(ORD).equals(want)
    assert want.height == 120


def test_missing_ray_says_how_to_install(ingested: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)
    spec = get_stage("length")
    with pytest.raises(ConfigError, match=r"needs the ray package.*pip install -e \"\.\[ray\]\""):
        run_stage_ray(ingested, spec, spec.config())


def test_api_score_on_ray_matches_local_with_another_keep_policy(runs: tuple[Path, Path, dict]) -> None:
    local, remote, _ = runs
    api.score("exact_dedup", local, settings={"keep": "longest"})
    report = api.score_on_ray("exact_dedup", remote, address="auto", settings={"keep": "longest"}, shards=2)
    assert (report.written, report.rows) == (6, 1320)  # a new config redoes the global step and every partition
    assert _hashes(remote) == _hashes(local)
    df = open_dataset(remote).scan().collect()
    assert df["exact_dup_of"].drop_nulls().len() == 60


def _descendants(root: int) -> list[int]:
    """Processes under `root` (Linux /proc): the workers of this test's own cluster, nobody else's."""
    parent = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parent[int(stat.parent.name)] = int(fields[1])
    found, frontier = [], {root}
    while frontier:
        frontier = {pid for pid, ppid in parent.items() if ppid in frontier}
        found += frontier
    return found


def _kill_one_partition_task(stop: threading.Event, killed: list[int]) -> None:
    """SIGKILL the first worker of this test's cluster seen running a partition task."""
    while not stop.is_set() and not killed:
        for pid in _descendants(os.getpid()):
            try:
                title = Path(f"/proc/{pid}/cmdline").read_bytes()
            except OSError:
                continue
            if title.startswith(b"ray::_partition_task"):
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
                return
        time.sleep(0.005)


def test_killed_worker_task_is_retried_with_identical_output(runs: tuple[Path, Path, dict]) -> None:
    local, remote, _ = runs
    for seed in (11, 12, 13):  # each seed rewrites every partition; the kill needs one task caught running
        killed: list[int] = []
        stop = threading.Event()
        killer = threading.Thread(target=_kill_one_partition_task, args=(stop, killed))
        killer.start()
        report = _run_ray(remote, "minhash", {"seed": seed, "num_perm": 256})
        stop.set()
        killer.join()
        if killed:
            break
    assert killed, "no partition task was caught running"
    assert report.report.written == 6
    api.score("minhash", local, settings={"seed": seed, "num_perm": 256})
    minhash = {k: v for k, v in _hashes(remote).items() if k.startswith("stages/minhash/")}
    assert len(minhash) == 6 and minhash == {k: v for k, v in _hashes(local).items() if k in minhash}
