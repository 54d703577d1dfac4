"""Selection benchmark (the issue's `bench/select.py`, renamed: a `select.py` in bench/ would shadow the
standard library's `select` module for every script run from this folder): the `mix` query in DuckDB over a 1.4M-row scored dataset vs the same selection in pandas.

Why: a typical general pool is ~1.4M rows, and the mix ("n rows at these domain shares, best-scored first,
shortfalls redistributed") is usually a pandas notebook. Both sides start from the same dataset dir on
disk and end with the same chosen row ordinals (checked), so the figure is the whole selection.

    python bench/selection.py [--rows 1400000] [--n 100000] [--repeats 3] [--shards 2] [--cpus 2]

- Input: bench/ingest.py's real rows (half alpaca sft, half gsm8k rlvr, each copy tagged so rows are
  distinct), ingested into bench/_work/select-<rows> with 100K-row partitions and scored by the stages
  length, exact_dedup, heuristic and domain (untimed, cached: a rerun skips what is up to date).
- `distill mix query`: `engine.select.run.run_selection(ds, ["mix"], {"n": N}, mix=default recipe)`:
  the scored view (positional joins of each partition's files), mix_plan and mix, to the chosen ordinals.
- `distill select (writes rows)`: `engine.api.select(...)`, the same plus writing the chosen rows with
  every column as a new dataset dir.
- `map/reduce, P shards` (issue 9): `engine.select.shards`: one map task per partition reads the narrow
  scored columns and splits them by domain into P shards; mix_available per shard, mix_plan on the driver,
  mix per shard. Run in this process (tasks one after another), then as Ray tasks on a local Ray with
  --cpus CPUs (start-up timed apart). The chosen ordinals are checked against the one-machine query's.
- `pandas`: `pd.read_parquet` of the same narrow columns from the same files, eligibility, the same
  water-filling quotas, a sort by (score desc, id, ordinal) and `groupby().cumcount()` ranks.
Timings are medians of --repeats, each in a fresh process state for DuckDB (a new connection), with the
files in the OS page cache for both (a warm-up run first). Not asserted anywhere.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import statistics
import sys
import time
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ingest import build_inputs  # noqa: E402  (bench/ is on the path: this script's folder)

from engine import api  # noqa: E402
from engine.select.mix import read_mix  # noqa: E402
from engine.select.run import run_selection  # noqa: E402
from engine.select.shards import run_sharded  # noqa: E402
from engine.store.dataset import open_dataset  # noqa: E402

WORK = ROOT / "bench" / "_work"
STAGES = ("length", "exact_dedup", "heuristic", "domain")


def prepare(rows: int) -> Path:
    out = WORK / f"select-{rows}" / "ds"
    if not (out / "manifest.json").exists():
        started = time.perf_counter()
        api.ingest(build_inputs(rows), out, partition_rows=100_000)
        print(f"ingested {rows} rows in {time.perf_counter() - started:.1f}s")
    for stage in STAGES:
        r = api.score(stage, out)
        if r.written:
            print(f"scored {stage} in {r.seconds:.1f}s")
    return out


def _fill(avail: dict[str, int], shares: dict[str, float], n: int) -> dict[str, int]:
    """Water-filling quotas with largest-remainder rounding (what mix_plan.sql computes)."""

    def rounded(x: dict[str, float], total: int) -> dict[str, int]:
        out = {d: math.floor(v + 1e-9) for d, v in x.items()}
        for d in sorted(x, key=lambda d: (-(x[d] - math.floor(x[d] + 1e-9)), d))[: total - sum(out.values())]:
            out[d] += 1
        return out

    s = {d: v / sum(shares.values()) for d, v in shares.items() if v > 0}
    remaining, active, quota = min(n, sum(avail.get(d, 0) for d in s)), set(s), {}
    while active:
        level = remaining / sum(s[d] for d in active)
        full = {d for d in active if avail.get(d, 0) <= level * s[d]}
        if not full:
            break
        for d in full:
            quota[d] = avail.get(d, 0)
            remaining -= quota[d]
        active -= full
    if active:
        level = remaining / sum(s[d] for d in active)
        quota |= rounded({d: level * s[d] for d in active}, remaining)
    return quota


def pandas_mix(root: Path, n: int, shares: dict[str, float], by: str) -> list[int]:
    manifest = json.loads((root / "manifest.json").read_text())
    want = {"exact_dedup": ["exact_dup_of"], "length": ["len_reason"], "heuristic": [by], "domain": ["domain_name"]}
    frames = []
    for part in manifest["partitions"]:
        cols = [pd.read_parquet(root / part["name"], columns=["id", "domain"])]
        cols += [pd.read_parquet(root / "stages" / s / part["name"], columns=c) for s, c in want.items()]
        frames.append(pd.concat(cols, axis=1))
    df = pd.concat(frames, ignore_index=True)
    df["_ord"] = df.index
    df["domain"] = df["domain_name"].fillna(df["domain"])
    pool = df[df["exact_dup_of"].isna() & df["len_reason"].isna() & df[by].notna()]
    quota = _fill(pool.groupby("domain").size().to_dict(), shares, n)
    pool = pool[pool["domain"].isin(list(quota))].sort_values([by, "id", "_ord"], ascending=[False, True, True])
    rank = pool.groupby("domain").cumcount() + 1
    chosen = pool[rank <= pool["domain"].map(quota)]
    return sorted(chosen["_ord"].tolist())


def ours(root: Path, n: int, shares: dict[str, float], by: str) -> list[int]:
    res = run_selection(open_dataset(root), ["mix"], {"n": str(n)}, by=by, mix=shares)
    return res.rows.column("_ord").to_pylist()


def sharded(root: Path, n: int, shares: dict[str, float], by: str, shards: int, executor: object = None) -> list[int]:
    res = run_sharded(open_dataset(root), ["mix"], {"n": str(n)}, by=by, mix=shares, shards=shards, executor=executor)
    assert res is not None
    return res.rows.column("_ord").to_pylist()


def ours_written(root: Path, n: int, by: str) -> int:
    out = root.parent / "mix-out"
    r = api.select(root, ["mix"], out, params={"n": str(n)}, by=by, overwrite=True)
    shutil.rmtree(out)
    return r.rows


def timed(fn, repeats: int) -> tuple[float, object]:
    fn()  # warm-up: files into the page cache, imports done
    times, result = [], None
    for _ in range(repeats):
        t = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=1_400_000)
    ap.add_argument("--n", type=int, default=100_000, help="rows in the mix")
    ap.add_argument("--by", default="heur_score")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--shards", type=int, default=2, help="P for the map/reduce runs")
    ap.add_argument("--cpus", type=int, default=2, help="CPUs of the local Ray (0: skip the Ray run)")
    args = ap.parse_args()
    print(f"load average {os.getloadavg()[0]:.2f}, {os.cpu_count()} cores, duckdb + pandas {pd.__version__}")
    root = prepare(args.rows)
    shares = read_mix(None)
    t_ours, got = timed(lambda: ours(root, args.n, shares, args.by), args.repeats)
    t_write, _ = timed(lambda: ours_written(root, args.n, args.by), args.repeats)
    t_pd, want = timed(lambda: pandas_mix(root, args.n, shares, args.by), args.repeats)
    t_mr, got_mr = timed(lambda: sharded(root, args.n, shares, args.by, args.shards), args.repeats)
    t_ray, got_ray, t_start = None, got_mr, 0.0
    if args.cpus:
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        import ray

        from engine.stages.base import Resources
        from engine.store.ray_runner import RayTasks

        started = time.perf_counter()
        ray.init(num_cpus=args.cpus, include_dashboard=False, logging_level="ERROR")
        t_start = time.perf_counter() - started
        tasks = RayTasks(ray, Resources())
        t_ray, got_ray = timed(lambda: sharded(root, args.n, shares, args.by, args.shards, tasks), args.repeats)
        ray.shutdown()
    assert isinstance(got, list) and isinstance(want, list)
    print(f"\nmix of {args.n} rows at the default recipe over {args.rows} scored rows (median of {args.repeats})")
    print(f"{'distill mix query':<34} {t_ours:7.2f} s")
    print(f"{'distill select (writes rows)':<34} {t_write:7.2f} s")
    print(f"{'pandas':<34} {t_pd:7.2f} s   ({t_pd / t_ours:.1f}x the query's time)")
    mr = f"map/reduce, {args.shards} shards"
    print(f"{mr + ', in process':<34} {t_mr:7.2f} s   ({t_mr / t_ours:.2f}x the query's time)")
    if t_ray is not None:
        print(
            f"{mr + ', on Ray':<34} {t_ray:7.2f} s   ({t_ray / t_ours:.2f}x the query's time; "
            f"Ray start-up {t_start:.1f} s apart, {args.cpus} CPUs)"
        )
    print(f"same rows chosen: {got == want == got_mr == got_ray} ({len(got)} rows)")


if __name__ == "__main__":
    main()
