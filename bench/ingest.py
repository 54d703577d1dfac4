"""Ingest benchmark: distill vs bare Polars on >= 1M real rows, wall time and peak memory.

Why: ingest must stay competitive with the obvious one-liner `pl.read_ndjson(f).write_parquet(out)`
while doing more (validation, rejects, ids, canonical schema), and its memory must be bounded by the
partition size, not the input size. This script measures both, each job in its own process so that
peak RSS (ru_maxrss from wait4) belongs to that job alone.

    python bench/ingest.py [--rows 1000000] [--partition-rows 100000] [--repeats 3]

Inputs are real rows from ../shared/data (alpaca_en_demo.json, gsm8k_train.jsonl) replicated to
--rows, cached under bench/_work/ (git-ignored). Timings are medians; no timing is asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
WORK = ROOT / "bench" / "_work"
ENGINES = ("distill", "polars", "polars-lazy")
LABELS = {
    "distill": "distill ingest",
    "polars": "polars read_ndjson->write_parquet",
    "polars-lazy": "polars scan_ndjson->sink_parquet",
    "imports": "python + imports only",
}


# ---------------------------------------------------------------- inputs


_MARK = "\x00copy\x00"  # json.dumps escapes it, so it cannot clash with real text


def _templates() -> dict[str, list[list[bytes]]]:
    """Real records as JSON lines split where each non-empty string starts, so a copy tag can go there.

    alpaca_en_demo.json is a JSON array (re-emitted one object per line); gsm8k_train.jsonl is JSONL.
    """
    alpaca = json.loads((DATA / "alpaca_en_demo.json").read_text(encoding="utf-8"))
    lines = (DATA / "gsm8k_train.jsonl").read_bytes().splitlines()
    gsm8k = [json.loads(line) for line in lines if line.strip()]
    mark = json.dumps(_MARK)[1:-1].encode()

    def split(rec: dict[str, object]) -> list[bytes]:
        tagged = {k: _MARK + v if isinstance(v, str) and v else v for k, v in rec.items()}
        return json.dumps(tagged, ensure_ascii=False).encode().split(mark)

    return {"alpaca": [split(r) for r in alpaca], "gsm8k": [split(r) for r in gsm8k]}


def _replicate(templates: list[list[bytes]], rows: int, path: Path, verbatim: bool) -> None:
    """Write `rows` lines cycling through the records, atomically (a killed build leaves no half file).

    Copy k prefixes every non-empty string with "[k] " so that rows are distinct, as in real data:
    verbatim copies collapse under Parquet dictionary encoding and zstd (1M alpaca rows -> 2 MB), which
    makes writing several times cheaper than on real data and flatters every engine's write side.
    """
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with tmp.open("wb") as fh:
        for k in range(-(-rows // len(templates))):
            tag = b"" if verbatim else f"[{k}] ".encode()
            take = templates[: rows - k * len(templates)]
            fh.write(b"".join(tag.join(parts) + b"\n" for parts in take))
    os.replace(tmp, path)


def build_inputs(rows: int, verbatim: bool = False) -> list[Path]:
    """Two files, half alpaca (sft) and half gsm8k (rlvr), cached by row count."""
    WORK.mkdir(parents=True, exist_ok=True)
    half, suffix = rows // 2, "_verbatim" if verbatim else ""
    want = {
        "alpaca": (WORK / f"alpaca_{rows}{suffix}.jsonl", half),
        "gsm8k": (WORK / f"gsm8k_{rows}{suffix}.jsonl", rows - half),
    }
    missing = [k for k, (p, _) in want.items() if not p.exists()]
    if missing:
        started = time.perf_counter()
        src = _templates()
        for k in missing:
            path, n = want[k]
            _replicate(src[k], n, path, verbatim)
        print(
            f"built {', '.join(str(want[k][0].relative_to(ROOT)) for k in missing)} "
            f"in {time.perf_counter() - started:.1f}s"
        )
    return [p for p, _ in want.values()]


# ---------------------------------------------------------------- worker (runs in the measured process)


def worker(kind: str, files: list[Path], out: Path, partition_rows: int) -> None:
    """Do one job and print {"seconds", "rows"} as JSON; imports happen before the clock starts."""
    import polars as pl

    import engine.api as api

    started = time.perf_counter()
    if kind == "distill":
        report = api.ingest(files, out, partition_rows=partition_rows, overwrite=True)
        rows = report.rows_read
    elif kind == "polars":
        out.mkdir(parents=True, exist_ok=True)
        rows = 0
        for i, f in enumerate(files):
            df = pl.read_ndjson(f)
            df.write_parquet(out / f"{i}.parquet")
            rows += df.height
            del df
    elif kind == "polars-lazy":
        out.mkdir(parents=True, exist_ok=True)
        for i, f in enumerate(files):
            pl.scan_ndjson(f).sink_parquet(out / f"{i}.parquet")
        rows = -1
    elif kind == "imports":
        rows = 0
    else:
        msg = f"unknown engine {kind!r}; expected one of {', '.join(ENGINES)}"
        raise SystemExit(msg)
    seconds = time.perf_counter() - started
    if rows < 0:  # counted after the clock stops: sink_parquet reports nothing
        rows = sum(pl.scan_parquet(p).select(pl.len()).collect().item() for p in out.glob("*.parquet"))
    print(json.dumps({"seconds": seconds, "rows": rows}))


# ---------------------------------------------------------------- parent


@dataclass(frozen=True, slots=True)
class Run:
    engine: str
    seconds: float
    rows: int
    rss_mb: float
    cpu_s: float

    @property
    def rows_per_s(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else 0.0


def measure(engine: str, files: list[Path], partition_rows: int, tag: str = "") -> Run:
    """Run one job in a fresh interpreter; peak RSS and CPU come from wait4 on that process alone."""
    out = WORK / "out" / f"{engine}{tag}"
    shutil.rmtree(out, ignore_errors=True)
    cmd = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--worker",
        engine,
        "--out",
        str(out),
        "--partition-rows",
        str(partition_rows),
        *map(str, files),
    ]
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, cwd=ROOT) as proc:
        assert proc.stdout is not None
        stdout = proc.stdout.read()
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
    shutil.rmtree(out, ignore_errors=True)
    if proc.returncode != 0:
        msg = f"{engine} worker failed with exit status {proc.returncode}"
        raise SystemExit(msg)
    res = json.loads(stdout.decode().strip().splitlines()[-1])
    return Run(engine, res["seconds"], res["rows"], usage.ru_maxrss / 1024, usage.ru_utime + usage.ru_stime)


def _median(runs: list[Run]) -> Run:
    return Run(
        runs[0].engine,
        statistics.median(r.seconds for r in runs),
        runs[0].rows,
        statistics.median(r.rss_mb for r in runs),
        statistics.median(r.cpu_s for r in runs),
    )


def _k(x: float) -> str:
    return f"{x / 1e6:.2f}M" if x >= 1e6 else f"{x / 1e3:.0f}K"


def _size_mb(files: list[Path]) -> float:
    return sum(f.stat().st_size for f in files) / (1 << 20)


def compare(files: list[Path], partition_rows: int, repeats: int) -> dict[str, Run]:
    """Each engine `repeats` times, alternating the order, then medians."""
    runs: dict[str, list[Run]] = {e: [] for e in ENGINES}
    for r in range(repeats):
        order = ENGINES if r % 2 == 0 else tuple(reversed(ENGINES))
        for engine in order:
            run = measure(engine, files, partition_rows)
            runs[engine].append(run)
            print(
                f"  repeat {r + 1}/{repeats}  {LABELS[engine]:<36} {run.seconds:7.2f}s  "
                f"{run.rss_mb:7.0f} MB  {run.rows:,} rows",
                flush=True,
            )
    return {e: _median(v) for e, v in runs.items()}


_ROW = "{:<36} {:>8} {:>9} {:>7} {:>8} {:>7} {:>6}"


def print_table(med: dict[str, Run], imports: Run) -> None:
    base = med["polars"]
    print()
    print(_ROW.format("engine", "wall s", "rows/s", "cpu s", "peak MB", "time x", "mem x"))
    print("-" * 87)
    for e in ENGINES:
        m = med[e]
        ratios = f"{m.seconds / base.seconds:.2f}", f"{m.rss_mb / base.rss_mb:.2f}"
        print(
            _ROW.format(LABELS[e], f"{m.seconds:.2f}", _k(m.rows_per_s), f"{m.cpu_s:.1f}", f"{m.rss_mb:.0f}", *ratios)
        )
    print(_ROW.format(LABELS["imports"], "-", "-", f"{imports.cpu_s:.1f}", f"{imports.rss_mb:.0f}", "", ""))
    print(
        "(wall s: the job only, imports excluded; cpu s and peak MB: the whole process; "
        "x: relative to read_ndjson->write_parquet)"
    )


def scaling(files: list[Path], partition_rows: int, at_n: Run, multiples: int) -> None:
    """Peak RSS of distill at N, 2N, ... rows (the same files listed k times) and at P/2 and 2P.

    Bounded memory means the peak tracks the partition size and stays flat as the input grows.
    """
    print()
    print("distill peak memory vs input size and partition size (one run each; first row: medians above)")
    fmt = "{:>12} {:>15} {:>8} {:>8}"
    print(fmt.format("input rows", "partition rows", "wall s", "peak MB"))
    print("-" * 46)
    by_size = [at_n]
    print(fmt.format(f"{at_n.rows:,}", f"{partition_rows:,}", f"{at_n.seconds:.2f}", f"{at_n.rss_mb:.0f}"))
    for k in range(2, multiples + 1):
        run = measure("distill", files * k, partition_rows, tag=f"-{k}n")
        by_size.append(run)
        print(fmt.format(f"{run.rows:,}", f"{partition_rows:,}", f"{run.seconds:.2f}", f"{run.rss_mb:.0f}"), flush=True)
    for p in (max(1, partition_rows // 2), partition_rows * 2):
        run = measure("distill", files, p, tag=f"-p{p}")
        print(fmt.format(f"{run.rows:,}", f"{p:,}", f"{run.seconds:.2f}", f"{run.rss_mb:.0f}"), flush=True)
    if len(by_size) > 1:
        first, last = by_size[0], by_size[-1]
        per_n = (last.rss_mb - first.rss_mb) / (len(by_size) - 1)
        print(
            f"peak RSS {first.rss_mb:.0f} MB at {first.rows:,} rows -> {last.rss_mb:.0f} MB at {last.rows:,} rows: "
            f"{per_n:+.0f} MB per extra {first.rows:,} rows (~0 if bounded by the partition size)"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000, help="input rows (half alpaca, half gsm8k)")
    ap.add_argument("--partition-rows", type=int, default=100_000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--no-scaling", action="store_true", help="skip the memory-vs-size runs")
    ap.add_argument("--multiples", type=int, default=3, help="scaling runs at N, 2N, ... up to this many N")
    ap.add_argument(
        "--verbatim",
        action="store_true",
        help="replicate rows byte for byte (unrealistically compressible; see _replicate)",
    )
    ap.add_argument("--worker", choices=[*ENGINES, "imports"], help=argparse.SUPPRESS)
    ap.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("files", nargs="*", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        worker(args.worker, args.files, args.out, args.partition_rows)
        return

    files = build_inputs(args.rows, args.verbatim)
    print(
        f"input: {args.rows:,} rows, {_size_mb(files):.0f} MB in {len(files)} files "
        f"({', '.join(f.name for f in files)}); partition_rows={args.partition_rows:,}; "
        f"{os.cpu_count()} CPUs; python {sys.version.split()[0]}"
    )
    print(f"load average before the runs: {os.getloadavg()[0]:.2f} (other work on the machine skews timings)")
    imports = measure("imports", files, args.partition_rows)
    med = compare(files, args.partition_rows, args.repeats)
    print_table(med, imports)
    d, p = med["distill"], med["polars"]
    print()
    print(
        f"ingest {d.rows:,} rows: distill {d.seconds:.1f}s ({_k(d.rows_per_s)} rows/s, "
        f"{d.rss_mb:.0f} MB peak) vs polars read_ndjson->write_parquet {p.seconds:.1f}s "
        f"({_k(p.rows_per_s)} rows/s, {p.rss_mb:.0f} MB peak): "
        f"{d.seconds / p.seconds:.2f}x time, {d.rss_mb / p.rss_mb:.2f}x memory"
    )
    if d.rows != p.rows:
        print(f"note: distill read {d.rows:,} rows, polars {p.rows:,}")
    if not args.no_scaling:
        scaling(files, args.partition_rows, d, args.multiples)


if __name__ == "__main__":
    main()
