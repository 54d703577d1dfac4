"""Stages on a real two-node Ray cluster on 127.0.0.1 write the same bytes as the local runner, and resume alike."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import polars as pl
import pytest

from engine import api, config
from engine.errors import ConfigError
from engine.stages import get_stage
from engine.stages.base import ORD
from engine.stages.near_dedup import rows_in
from engine.stages.shard_reduce import SHARDED, split_shards
from engine.store.dataset import open_dataset
from engine.store.location import ObjectPath, location
from engine.store.ray_runner import RayEngine, RayStageReport, run_stage_ray
from engine.store.runner import run_stage
from tests.conftest import DATA

ray = pytest.importorskip("ray")
from ray.cluster_utils import Cluster  # noqa: E402

PLAN = [("length", {}), ("exact_dedup", {}), ("minhash", {}), ("near_dedup", {})]
MB = 1024 * 1024


@pytest.fixture(scope="module")
def cluster(s3: str) -> Iterator[Cluster]:
    """A head and one worker node (1 CPU each, small object store, no dashboard); only this cluster is shut down.

    The worker node also declares one (logical) GPU, so a stage asking for a GPU must run there. The S3 server's
    environment is set first, so every worker reaches it, as workers with cloud credentials would reach S3.
    """
    saved = os.environ.get("RAY_USAGE_STATS_ENABLED")
    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
    node = {"num_cpus": 1, "object_store_memory": 80 * MB}
    c = Cluster(initialize_head=True, head_node_args={**node, "include_dashboard": False})
    c.add_node(**node, num_gpus=1, resources={"second_node": 1})
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
    assert reports["exact_dedup"].global_step == "sharded" and reports["near_dedup"].global_step == "sharded"
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


def test_a_dataset_on_s3_gets_the_local_bytes_from_ray(runs: tuple[Path, Path, dict], s3: str) -> None:
    """Workers on both nodes read and write an s3:// prefix: same objects and bytes as the local run's files."""
    local = runs[0]
    src = local.parent / "rows.jsonl"
    root = location(f"{s3}/ray-{uuid.uuid4().hex[:8]}")
    assert isinstance(root, ObjectPath)
    api.ingest([src], str(root), partition_rows=220)
    reports = [_run_ray(root, name, settings, shards=3) for name, settings in PLAN]  # type: ignore[arg-type]
    want = _hashes(local)
    got = {
        f"stages/{name}/{p.name}": hashlib.sha256(p.read_bytes()).hexdigest()
        for name, _ in PLAN
        for p in (root / "stages" / name).glob("*.parquet")
    }
    assert got == want
    assert all(r.report.written == 6 for r in reports)
    # the scheduler may keep such short tasks on the head: the other node reads the whole prefix too
    verified = ray.get(ray.remote(resources={"second_node": 1})(api.verify).remote(str(root)))
    assert verified.stats["rows"] == 1320 and verified.ok


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


@pytest.mark.parametrize("name", ["exact_dedup", "near_dedup"])
def test_sharded_reduce_equals_the_stage_reduce(runs: tuple[Path, Path, dict], name: str) -> None:
    """The map/reduce split gives the stage's own side table for any shard count (P = 1 is the local case)."""
    local = runs[0]
    spec, sharded = get_stage(name), SHARDED[name]
    cfg = spec.config()
    lf = open_dataset(local).scan(["length", "exact_dedup", "minhash"][: 1 if name == "exact_dedup" else 3])
    lf = lf.with_row_index(ORD)
    assert spec.reduce is not None
    want = spec.reduce(lf, cfg).sort(ORD)
    keyed = sharded.map(lf, cfg)
    for shards in (1, 4, 7):
        pieces = [sharded.reduce_shard(s, cfg, rows_in(lf)) for s in split_shards(keyed, sharded.key, shards)]
        assert sharded.finish(pl.concat(pieces), cfg, rows_in(lf)).equals(want)
    if name == "exact_dedup":
        assert want.height == 120
    else:  # the planted near copies form clusters, some of which span shards for P > 1
        assert want["mh_cluster"].n_unique() >= 60 and (~want["dup_keep"]).sum() > 100


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


def test_a_task_that_dies_is_retried_with_identical_output(runs: tuple[Path, Path, dict], tmp_path: Path) -> None:
    """The flaky stage's first task kills its own worker (os._exit); Ray reruns it and every file matches local."""
    from tests.store.flaky_stage import STAGE as FLAKY
    from tests.store.flaky_stage import FlakyConfig

    local, remote, _ = runs
    marker = tmp_path / "died"
    cfg = FlakyConfig(marker=str(marker))
    report = run_stage_ray(remote, FLAKY, cfg, engine=RayEngine(address="auto"))
    assert marker.exists() and int(marker.read_text()) != os.getpid()  # a worker died, not this process
    assert (report.report.written, report.report.skipped) == (6, 0)
    run_stage(local, FLAKY, cfg)  # the marker is there now: the local run does not die
    flaky = {k: v for k, v in _hashes(remote).items() if k.startswith("stages/flaky/")}
    assert len(flaky) == 6 and flaky == {k: v for k, v in _hashes(local).items() if k in flaky}


def test_stage_resources_are_honoured(ingested: Path, cluster: Cluster, tmp_path: Path) -> None:
    """IFD asks for a GPU: every task lands on the node that has one and is granted it; length asks for none."""
    from tests.models.test_ifd_tiny import build_tiny_llama

    tiny = build_tiny_llama(tmp_path / "tiny")
    alpaca = json.loads((DATA / "alpaca_en_demo.json").read_text())[:48]
    src = tmp_path / "a.json"
    src.write_text(json.dumps(alpaca))
    local, remote = tmp_path / "local", tmp_path / "remote"
    api.ingest([src], local, partition_rows=16)
    shutil.copytree(local, remote)
    settings = {"model": str(tiny), "max_length": 256, "batch_tokens": 2048}
    spec = get_stage("ifd")
    cfg = config.from_mapping(spec.config, settings, where="ifd")
    report = run_stage_ray(remote, spec, cfg, engine=RayEngine(address="auto"))
    gpu_node = next(n["NodeID"] for n in ray.nodes() if n["Alive"] and n["Resources"].get("GPU"))
    assert report.nodes == {gpu_node} and len(report.granted) == 3
    assert all(g.get("GPU") == 1 and g.get("CPU") == 1 for g in report.granted)
    api.ifd(local, model=str(tiny), max_length=256, batch_tokens=2048)
    want = open_dataset(local).scan().collect()["ifd_score"].to_list()
    got = open_dataset(remote).scan().collect()["ifd_score"].to_list()
    assert len(got) == 48 and sum(v is not None for v in got) > 40
    assert got == pytest.approx(want, rel=1e-5, nan_ok=True)
    length = _run_ray(remote, "length")
    assert all("GPU" not in g for g in length.granted)

    # a chunk finished before a kill is reused by the Ray task too (the runner sets the stage's scratch dir)
    from engine.stages import ifd as ifd_stage

    ids = open_dataset(remote).scan().collect()["id"][16:32]
    planted = remote / "stages" / "ifd" / "_chunks" / f"{ifd_stage._chunk_key(cfg, ids)}.parquet"
    planted.parent.mkdir()
    scored = {"ifd_loss_cond": [1.0] * 16, "ifd_loss_uncond": [2.0] * 16, "ifd_answer_tokens": [7] * 16}
    pl.DataFrame({**scored, "_truncated": [False] * 16}, schema=ifd_stage._SCORED.to_schema()).write_parquet(planted)
    (remote / "stages" / "ifd" / "part-00001.parquet").unlink()
    again = run_stage_ray(remote, spec, cfg, engine=RayEngine(address="auto"))
    assert (again.report.written, again.report.skipped, again.nodes) == (1, 2, {gpu_node})
    redone = open_dataset(remote).scan().collect()
    assert redone["ifd_answer_tokens"][16:32].to_list() == [7] * 16
    assert redone["ifd_score"][:16].to_list() == pytest.approx(want[:16], rel=1e-5, nan_ok=True)
    assert not planted.parent.exists()  # dropped once every partition is committed


SLOW_DRIVER = """
import sys, ray
from engine.store.ray_runner import RayEngine, run_stage_ray
from tests.store.flaky_stage import SLOW, SlowConfig
ray.init(address=sys.argv[2], logging_level="ERROR")
run_stage_ray(sys.argv[1], SLOW, SlowConfig(seconds=0.6), engine=RayEngine())
"""


def test_driver_killed_mid_run_resumes_from_committed_partitions(
    runs: tuple[Path, Path, dict], cluster: Cluster
) -> None:
    from tests.store.flaky_stage import SLOW, SlowConfig

    local, remote, _ = runs
    root = Path(__file__).resolve().parents[2]
    driver = subprocess.Popen(
        [sys.executable, "-c", SLOW_DRIVER, str(remote), cluster.address],
        cwd=root,
        env={**os.environ, "PYTHONPATH": str(root)},
    )
    out = remote / "stages" / "slow"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and len(list(out.glob("part-*.parquet"))) < 2:
        time.sleep(0.02)
    driver.send_signal(signal.SIGKILL)
    driver.wait()
    done = len(list(out.glob("part-*.parquet")))
    assert 2 <= done < 6, f"{done} partitions committed when the driver was killed"
    status = {e["stage"]: e["status"] for e in json.loads((remote / "manifest.json").read_text())["stages"]}
    assert status["slow"] == "running"
    report = run_stage_ray(remote, SLOW, SlowConfig(seconds=0.6), engine=RayEngine(address="auto"))
    assert report.report.skipped >= done and report.report.written + report.report.skipped == 6
    run_stage(local, SLOW, SlowConfig(seconds=0.6))
    slow = {k: v for k, v in _hashes(remote).items() if k.startswith("stages/slow/")}
    assert len(slow) == 6 and slow == {k: v for k, v in _hashes(local).items() if k in slow}


def _pipeline(tmp: Path, partition_rows: int) -> Path:
    """pipelines/default.toml with absolute source paths and another partition size."""
    root = Path(__file__).resolve().parents[2]
    text = (root / "pipelines" / "default.toml").read_text()
    text = text.replace('"../', f'"{root}/').replace("partition_rows = 1000", f"partition_rows = {partition_rows}")
    path = tmp / f"default_{partition_rows}.toml"
    path.write_text(text)
    return path


def _row_columns(ds: Path) -> pl.DataFrame:
    """Every appended score column, per row, in dataset order (independent of the partitioning)."""
    return open_dataset(ds).scan().drop("meta").collect()


def test_default_pipeline_on_ray_matches_local(cluster: Cluster, tmp_path: Path) -> None:
    """`distill run --engine ray` on two nodes: the same stage files, dedup clusters and mix selection as local."""
    pipeline = _pipeline(tmp_path, 1000)
    local = api.run(pipeline, out=tmp_path / "local" / "sample")
    remote = api.run(pipeline, out=tmp_path / "ray" / "sample", engine=RayEngine(address="auto"))
    assert _hashes(remote.out) == _hashes(local.out) and len(_hashes(local.out)) == 3 * 9 + 3
    assert [s.written for s in remote.stages] == [s.partitions for s in local.stages]
    picked = {r.out.parent.name: open_dataset(r.out).scan().collect() for r in (local.select, remote.select)}  # type: ignore[union-attr]
    assert picked["ray"].select("id", "split").equals(picked["local"].select("id", "split"))
    assert picked["local"].height == local.select.rows > 1000  # type: ignore[union-attr]
    # the selection ran as map/reduce: one shard per cluster CPU, mix quotas computed once on the driver
    assert (local.select.shards, remote.select.shards) == (1, 2)  # type: ignore[union-attr]
    assert remote.select.mix == local.select.mix and remote.select.pool == local.select.pool  # type: ignore[union-attr]

    # another partition count on Ray: per-row values (clusters, scores, buckets) and the selection are the same
    other = api.run(_pipeline(tmp_path, 700), out=tmp_path / "ray700" / "sample", engine=RayEngine(address="auto"))
    assert other.stages[0].partitions != local.stages[0].partitions
    want, got = _row_columns(local.out), _row_columns(other.out)
    assert got.equals(want) and (~got["dup_keep"]).sum() > 0 and got["mh_cluster"].n_unique() < got.height
    again = open_dataset(other.select.out).scan().collect()  # type: ignore[union-attr]
    assert again.select("id", "split").equals(picked["local"].select("id", "split"))

    # the kenlm percentiles as per-partition counting/value tasks: the local cut points to the bit
    ray_cuts = _run_ray(remote.out, "kenlm_bucket", {"cuts": "10,90"})
    assert ray_cuts.global_step == "quantile_passes" and ray_cuts.report.written == 3
    api.score("kenlm_bucket", local.out, settings={"cuts": "10,90"})
    side = "stages/kenlm_bucket/_side.parquet"
    assert _hashes(remote.out)[side] == _hashes(local.out)[side]
    assert _hashes(remote.out) == _hashes(local.out)
