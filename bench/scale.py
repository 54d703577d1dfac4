"""Scale-out: local runner vs Ray on one machine over >= 2M rows, the global steps apart, and a projection.

Why: issue 9 asks what running the very same per-partition functions as Ray tasks costs (target <= 1.2x the
local wall time, Ray start-up included), how the LSH global step as Ray map/reduce compares with the local
one, and, from measured per-partition costs, what 100M rows would take on 8 and 64 workers, with the
driver's peak memory flat as rows grow.

Each run is a fresh process (so the driver's peak RSS is its own) over a fresh copy of the stage state:
exact_dedup, minhash, near_dedup (the dedup stages) and heuristic, then the selection `split -> top_n`
(100K rows by heur_score; on Ray the map/reduce of `engine.select.shards`, its top-k re-ranked on the
driver). The Ray run starts its own local Ray (`--cpus` CPUs, one CPU and one Polars thread per task). Global-step seconds come from the runners' own
progress events. After the runs, every stage file of the two dataset dirs is compared by sha256.

    python bench/scale.py [--rows 2000000] [--partition-rows 125000] [--repeats 3] [--cpus 2]
                          [--memory-rows 500000,1000000]

Input: bench/_work/dedup_<rows>_s0_d0.15_v1.jsonl from bench/dedup_corpus.py (made if missing); the
`--memory-rows` datasets are its first N lines, run on Ray once each for the driver's peak RSS.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import resource
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WORK = ROOT / "bench" / "_work"
STAGES = ("exact_dedup", "minhash", "near_dedup", "heuristic")
GLOBAL = ("exact_dedup", "near_dedup")
SELECT, SELECT_N = ["split", "top_n"], 100_000


def _reset(ds: Path, manifest: bytes) -> None:
    """Back to the freshly ingested state: no stage files, the ingest's manifest."""
    shutil.rmtree(ds / "stages", ignore_errors=True)
    (ds / "manifest.json").write_bytes(manifest)


def _hashes(ds: Path) -> dict[str, str]:
    return {
        str(p.relative_to(ds)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(ds.rglob("stages/*/*.parquet"))
    }


def child(engine: str, ds: Path, cpus: int) -> dict[str, float]:
    """One run of every stage in this process: seconds per stage and global step, and this driver's peak RSS."""
    from engine import api
    from engine.progress import Progress

    times: dict[str, float] = {}
    marks: dict[str, float] = {}

    def on_progress(p: Progress) -> None:
        if p.task.endswith("(global step)"):
            name = p.task.split(" ")[0]
            if p.done == 0:
                marks[name] = time.perf_counter()
            else:
                times[f"{name} global"] = time.perf_counter() - marks[name]

    session = None
    if engine == "ray":
        import ray

        from engine.store.ray_runner import RayEngine

        started = time.perf_counter()
        ray.init(num_cpus=cpus, include_dashboard=False, object_store_memory=1024**3, logging_level="ERROR")
        times["ray_start"] = time.perf_counter() - started
        session = RayEngine()
    try:
        for name in STAGES:
            started = time.perf_counter()
            api.score(name, ds, engine=session or "local", on_progress=on_progress)
            times[name] = time.perf_counter() - started
        # the selection's global step: a split then the best rows by heur_score (a top-k gathered on the driver)
        out = ds.parent / f"select-{engine}"
        started = time.perf_counter()
        sel = api.select(ds, SELECT, out, params={"n": str(SELECT_N)}, overwrite=True, engine=session or "local")
        times["select"] = time.perf_counter() - started
        times["select_shards"] = sel.shards
    finally:
        if session is not None:
            import ray

            ray.shutdown()
    times["driver_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return times


def _run_child(engine: str, ds: Path, cpus: int) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, __file__, "--child", engine, "--ds", str(ds), "--cpus", str(cpus)],
        check=True,
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def _source(rows: int) -> Path:
    src = WORK / f"dedup_{rows}_s0_d0.15_v1.jsonl"
    if not src.exists():
        subprocess.run([sys.executable, str(ROOT / "bench" / "dedup_corpus.py"), "--rows", str(rows)], check=True)
    return src


def _head(src: Path, rows: int) -> Path:
    out = WORK / f"{src.stem}_head{rows}.jsonl"
    if not out.exists():
        with src.open() as f, out.open("w") as g:
            for _, line in zip(range(rows), f, strict=False):
                g.write(line)
    return out


def _projection(med: dict[str, dict[str, float]], rows: int, parts: int, cpus: int) -> list[str]:
    """100M rows on W one-CPU workers, from the Ray run's measured costs.

    Assumptions: the selection's map/reduce splits over W like exact dedup's; partition tasks cost what they cost here (CPU-seconds = wall x CPUs / partitions) and run
    in waves of W; exact dedup's map and reduce both split over W workers; near dedup's global step does
    not shrink with W (each reduce shard reads its candidates' text from every partition, and the
    union-find runs on the driver), so it grows with rows from the 2-CPU figure; Ray start-up and
    scheduling are ignored (Ray schedules ~thousands of tasks/s).
    """
    target = 100_000_000
    scale = target / rows
    target_parts = math.ceil(target / (rows / parts))
    lines = []
    for workers in (8, 64):
        waves = math.ceil(target_parts / workers)
        total, glob_total = 0.0, 0.0
        for name in STAGES:
            glob = med["ray"].get(f"{name} global", 0.0)
            task_s = (med["ray"][name] - glob) * cpus / parts
            glob_s = glob * scale * (cpus / workers if name == "exact_dedup" else 1.0)
            total += waves * task_s + glob_s
            glob_total += glob_s
        # the selection: one map task per partition and one reduce per shard, all splitting over W
        select_s = med["ray"]["select"] * scale * cpus / workers
        total += select_s
        glob_total += select_s
        lines.append(
            f"100M rows, {workers} workers: ~{total / 60:.0f} min, of which global steps ~{glob_total / 60:.0f} min "
            f"({target_parts} partitions of {rows // parts:,} rows, {waves} waves)"
        )
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=2_000_000)
    ap.add_argument("--partition-rows", type=int, default=125_000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--cpus", type=int, default=2)
    ap.add_argument("--memory-rows", default="500000,1000000", help="smaller sizes for the driver's peak RSS")
    ap.add_argument("--child", choices=["local", "ray"], help=argparse.SUPPRESS)
    ap.add_argument("--ds", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    if args.child:
        print(json.dumps(child(args.child, args.ds, args.cpus)))
        return

    from engine import api

    src = _source(args.rows)
    base = WORK / f"scale-{args.rows}"
    local, remote = base / "local", base / "ray"
    if not (local / "manifest.json").exists():
        api.ingest([src], local, partition_rows=args.partition_rows, overwrite=True)
    manifest = (local / "manifest.json").read_bytes()
    shutil.rmtree(remote, ignore_errors=True)
    shutil.copytree(local, remote)

    runs: dict[str, list[dict[str, float]]] = {"local": [], "ray": []}
    for i in range(args.repeats):
        for engine, ds in (("local", local), ("ray", remote)):
            _reset(ds, manifest)
            runs[engine].append(_run_child(engine, ds, args.cpus))
            print(f"run {i + 1}/{args.repeats} {engine}: {json.dumps(runs[engine][-1])}", file=sys.stderr)
    same = _hashes(local) == _hashes(remote)

    med = {e: {k: statistics.median(r[k] for r in rs) for k in rs[0]} for e, rs in runs.items()}
    parts = len(list(local.glob("part-*.parquet")))
    print(
        f"{args.rows:,} rows in {parts} partitions, {args.cpus} CPUs, medians of {args.repeats} runs (fresh processes)"
    )
    print(f"{'step':<22}{'local s':>10}{'ray s':>10}{'ray/local':>11}")
    steps = ["ray_start", *[x for n in STAGES for x in ((n, f"{n} global") if n in GLOBAL else (n,))], "select"]
    for step in steps:
        loc = med["local"].get(step, 0.0)
        ray_s = med["ray"][step]
        ratio = f"{ray_s / loc:>10.2f}x" if loc else f"{'':>11}"
        print(f"{step:<22}{loc:>10.2f}{ray_s:>10.2f}{ratio}")
    tot_l = statistics.median(sum(r[s] for s in (*STAGES, "select")) for r in runs["local"])
    tot_r = statistics.median(sum(r[s] for s in ("ray_start", *STAGES, "select")) for r in runs["ray"])
    print(f"{'total':<22}{tot_l:>10.2f}{tot_r:>10.2f}{tot_r / tot_l:>10.2f}x  (ray includes start-up)")
    print(f"stage files byte-identical: {same} ({len(_hashes(local))} files)")
    picked = [
        {
            str(p.relative_to(base / f"select-{e}")): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted((base / f"select-{e}").rglob("*.parquet"))
        }
        for e in ("local", "ray")
    ]
    print(
        f"select {' -> '.join(SELECT)} (n={SELECT_N:,}) on Ray as map/reduce with P = {med['ray']['select_shards']:.0f}; "
        f"selection files byte-identical: {picked[0] == picked[1]} ({len(picked[0])} files)"
    )

    rss = {args.rows: med["ray"]["driver_rss_mb"]}
    for n in (int(x) for x in args.memory_rows.split(",") if x):
        ds = WORK / f"scale-{n}" / "ray"
        if not (ds / "manifest.json").exists():
            api.ingest([_head(src, n)], ds, partition_rows=args.partition_rows, overwrite=True)
        _reset(ds, _fresh_manifest(ds))
        rss[n] = _run_child("ray", ds, args.cpus)["driver_rss_mb"]
    print("driver peak RSS on Ray: " + ", ".join(f"{n:,} rows {mb:.0f} MB" for n, mb in sorted(rss.items())))
    print(f"local runner peak RSS at {args.rows:,} rows: {med['local']['driver_rss_mb']:.0f} MB")
    for line in _projection(med, args.rows, parts, args.cpus):
        print(line)


def _fresh_manifest(ds: Path) -> bytes:
    """The manifest as ingest left it: the stage log emptied."""
    doc = json.loads((ds / "manifest.json").read_text())
    doc["stages"] = []
    return json.dumps(doc, indent=2).encode()


if __name__ == "__main__":
    main()
