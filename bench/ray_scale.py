"""Local runner vs Ray tasks on the same dataset: wall time per stage, Ray start-up apart, and byte identity.

Why: issue 9 asks what running the very same per-partition function as Ray tasks costs on one
machine (the overhead a user pays before adding nodes). Both engines run length and the dedup
stages (exact_dedup, minhash, near_dedup) on a fresh copy of the stage state; the Ray run
starts its own local Ray (`--cpus` CPUs, one CPU and one Polars thread per task) and the time to
start it is reported apart and included in the total. After the runs every stage file of the two
dataset dirs is compared by sha256.

    python bench/ray_scale.py [--rows 1000000] [--partition-rows 100000] [--repeats 3] [--cpus 2]

Input: bench/_work/dedup_<rows>_s0_d0.15_v1.jsonl from bench/dedup_corpus.py (made if missing).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WORK = ROOT / "bench" / "_work"
STAGES = ("length", "exact_dedup", "minhash", "near_dedup")


def _reset(ds: Path, manifest: bytes) -> None:
    """Back to the freshly ingested state: no stage files, the ingest's manifest."""
    shutil.rmtree(ds / "stages", ignore_errors=True)
    (ds / "manifest.json").write_bytes(manifest)


def _hashes(ds: Path) -> dict[str, str]:
    return {
        str(p.relative_to(ds)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(ds.rglob("stages/*/*.parquet"))
    }


def run_local(ds: Path) -> dict[str, float]:
    from engine import api

    times = {}
    for name in STAGES:
        started = time.perf_counter()
        api.score(name, ds)
        times[name] = time.perf_counter() - started
    return times


def run_ray(ds: Path, cpus: int) -> dict[str, float]:
    import ray

    from engine import config
    from engine.stages import get_stage
    from engine.store.ray_runner import RayEngine, run_stage_ray

    started = time.perf_counter()
    ray.init(num_cpus=cpus, include_dashboard=False, object_store_memory=500 * 1024 * 1024, logging_level="ERROR")
    times = {"ray_start": time.perf_counter() - started}
    try:
        for name in STAGES:
            spec = get_stage(name)
            started = time.perf_counter()
            run_stage_ray(ds, spec, config.from_mapping(spec.config, {}, where=name), engine=RayEngine())
            times[name] = time.perf_counter() - started
    finally:
        ray.shutdown()
    return times


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--partition-rows", type=int, default=100_000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--cpus", type=int, default=2)
    args = ap.parse_args()
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

    src = WORK / f"dedup_{args.rows}_s0_d0.15_v1.jsonl"
    if not src.exists():
        subprocess.run([sys.executable, str(ROOT / "bench" / "dedup_corpus.py"), "--rows", str(args.rows)], check=True)
    from engine import api

    base = WORK / f"ray-{args.rows}"
    local, remote = base / "local", base / "ray"
    api.ingest([src], local, partition_rows=args.partition_rows, overwrite=True)
    shutil.rmtree(remote, ignore_errors=True)
    shutil.copytree(local, remote)
    manifest = (local / "manifest.json").read_bytes()

    runs: dict[str, list[dict[str, float]]] = {"local": [], "ray": []}
    for _ in range(args.repeats):
        _reset(local, manifest)
        runs["local"].append(run_local(local))
        _reset(remote, manifest)
        runs["ray"].append(run_ray(remote, args.cpus))

    same = _hashes(local) == _hashes(remote)
    parts = len(list(local.glob("part-*.parquet")))
    print(f"{args.rows:,} rows in {parts} partitions, {args.cpus} CPUs, medians of {args.repeats} runs")
    print(f"{'step':<14}{'local s':>10}{'ray s':>10}{'ray/local':>11}")
    for step in ("ray_start", *STAGES):
        loc = statistics.median(r[step] for r in runs["local"]) if step != "ray_start" else 0.0
        ray_s = statistics.median(r[step] for r in runs["ray"])
        ratio = f"{ray_s / loc:>10.2f}x" if loc else f"{'':>11}"
        print(f"{step:<14}{loc:>10.2f}{ray_s:>10.2f}{ratio}")
    tot_l = statistics.median(sum(r.values()) for r in runs["local"])
    tot_r = statistics.median(sum(r.values()) for r in runs["ray"])
    print(f"{'total':<14}{tot_l:>10.2f}{tot_r:>10.2f}{tot_r / tot_l:>10.2f}x  (ray includes start-up)")
    print(f"stage files byte-identical: {same} ({len(_hashes(local))} files)")


if __name__ == "__main__":
    main()
