"""Heuristic scoring benchmark: the columnar `heuristic` stage vs the same scorer per row in Python with textstat.

Why: the issue's baseline is the usual per-row loop (textstat per row, regexes per row). This script
times both on the same real rows and prints them side by side, with how closely they agree.

    python bench/score.py [--rows 200000] [--python-rows 3000] [--repeats 3]

- Input: the 999 alpaca rows of ../shared/data/alpaca_en_demo.json replicated to --rows; copy k
  prefixes instruction and output with "[k] " so no two rows are byte-equal (textstat's LRU caches and
  Parquet's dictionary encoding cannot shortcut repeats). Ingested with engine.api.ingest (untimed) into
  bench/_work/score-<rows> (git-ignored) on the first run and reused after.
- `stage transform`: `heuristic.transform(df.lazy(), cfg).collect()` on the ingested rows in memory.
- `stage via run_stage`: `engine.store.runner.run_stage(dir, STAGE, cfg)` on a fresh copy of the dataset
  dir each repeat: partition reads, the transform, atomic Parquet writes and the manifest.
- `per-row python`: `score_row` below, one call per row, on the first --python-rows rows; its rows/s is
  extrapolated to --rows (it is linear in rows). It uses textstat's Flesch, word and sentence counts
  (textstat 0.7.4, unrounded) and Python's `re` for the rest, with the stage's constants, so it computes
  the same dimensions; the agreement of the two is printed last.
Timings are medians of --repeats and are not asserted. Other work on the machine skews them: the load
average is printed first, and POLARS_MAX_THREADS (default: all cores) sets the stage's threads.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import itertools
import json
import os
import re
import resource
import shutil
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import polars as pl
import textstat

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engine import api  # noqa: E402
from engine.stages import heuristic as H  # noqa: E402
from engine.stages import quality_kernels as Q  # noqa: E402
from engine.store.dataset import open_dataset  # noqa: E402
from engine.store.runner import run_stage  # noqa: E402

DATA = ROOT.parent / "shared" / "data"
WORK = ROOT / "bench" / "_work"
DIMS = ("heur_clarity", "heur_response", "heur_diversity", "heur_complexity", "heur_score", "heur_flesch")


# ---------------------------------------------------------------- the per-row reference


def _py(pattern: str) -> re.Pattern[str]:
    """The stage's Rust pattern for Python's `re` (which has no `(?-u:...)`)."""
    return re.compile(pattern.replace("(?-u:\\b)", "\\b"))


ASKS, WHY_HOW = _py(H.ASKS), _py(H.WHY_HOW)
BLANK_LINES = re.compile(r"\n(?:[ \t]*\n)+")
LIST_ITEM = re.compile(r"(?m)^[ \t]*(?:[-*•+]|\d{1,3}[.)])[ \t]+\S")
STEP_LINE = re.compile(r"(?m)^[ \t]*(?:\d{1,3}[.)][ \t]|[sS]tep[ \t]*\d+)")
_NOT_AFTER_WORD = r"(?<![A-Za-z0-9_])"
STEP_WORD = re.compile(
    _NOT_AFTER_WORD + "(?:" + "|".join(f"[{w[0]}{w[0].upper()}]{w[1:]}" for w in Q.STEP_WORDS) + r")(?![A-Za-z0-9_])"
)
CODE = re.compile("|".join((_NOT_AFTER_WORD if m[0].isalnum() else "") + re.escape(m) for m in Q.CODE_MARKERS))
SENTENCE_ENDS = re.compile(rb"[.!?] |\n")
VOWEL = re.compile("[aeiouy]")


def _band(x: float, b: H.Band) -> float:
    lo0, lo1, hi1, hi0 = (float(v) for v in b)
    return min(max(min((x - lo0) / max(lo1 - lo0, 1e-9), (hi0 - x) / max(hi0 - hi1, 1e-9), 1.0), 0.0), 1.0)


def _readability(text: str, cfg: H.HeuristicConfig) -> float:
    words = textstat.remove_punctuation(text.lower()).split()  # textstat's own words
    voweled = sum(1 for w in words if VOWEL.search(w)) / len(words) if words else 0.0
    return _band(textstat.flesch_reading_ease(text), cfg.readable_flesch) * voweled


def score_row(prompt: str | None, response: str, cfg: H.HeuristicConfig) -> dict[str, float]:
    """The heuristic scorer for one row, the way a per-row Python pipeline writes it."""
    c = response if prompt is None else prompt
    if prompt is None:
        clarity = _readability(response, cfg)
    else:
        asks = 1.0 if "?" in prompt or ASKS.search(prompt) else 0.0
        p_words = textstat.lexicon_count(prompt)
        clarity = (_band(p_words, cfg.instruction_words) + asks + _readability(prompt, cfg)) / 3

    words, sentences = textstat.lexicon_count(response), textstat.sentence_count(response)
    paragraphs = len(BLANK_LINES.findall(response)) + 1
    structure = max(
        0.5 if sentences >= 3 else 0.0, min(max(paragraphs - 1, 0), 2) / 2, min(len(LIST_ITEM.findall(response)), 3) / 3
    )
    raw = response.encode()
    bounds = [0, *(m.start() for m in SENTENCE_ENDS.finditer(raw)), len(raw)]
    spans = [b - a for a, b in itertools.pairwise(bounds) if b - a >= Q.SPAN_MIN_BYTES]
    cv = statistics.stdev(spans) / statistics.mean(spans) if len(spans) >= 2 else 0.0
    quality = (_band(words, cfg.response_words) + structure + min(cv / cfg.cv_target, 1.0)) / 3

    head = response[: cfg.diversity_window * Q.CHARS_PER_WORD].lower().replace("\n", " ")
    toks = head.split(" ")[: cfg.diversity_window]
    ttr = len(set(toks)) / len(toks)
    bigrams = len(set(itertools.pairwise(toks))) / (len(toks) - 1) if len(toks) > 1 else 0.0
    common = any(t in c.lower() for t in cfg.common_topics)
    diversity = (ttr + bigrams) / 2 * (1.0 - cfg.topic_penalty * common) if words else 0.0

    steps = min((len(STEP_LINE.findall(response)) + len(STEP_WORD.findall(response))) / 3, 1.0)
    code = 1.0 if CODE.search(response) else 0.0
    why = 1.0 if WHY_HOW.search(c) else 0.0
    complexity = (steps + code + why) / 3

    w = [x / sum(cfg.weights) for x in cfg.weights]
    return {
        "heur_clarity": clarity,
        "heur_response": quality,
        "heur_diversity": diversity,
        "heur_complexity": complexity,
        "heur_score": w[0] * clarity + w[1] * quality + w[2] * diversity + w[3] * complexity,
        "heur_flesch": textstat.flesch_reading_ease(response),
    }


def score_rows(rows: list[dict[str, str]], cfg: H.HeuristicConfig) -> list[dict[str, float]]:
    out = []
    for r in rows:
        prompt = r["instruction"] if not r["input"] else f"{r['instruction']}\n\n{r['input']}"
        out.append(score_row(prompt, r["response"], cfg))
    return out


# ---------------------------------------------------------------- inputs and timing


def _dataset(rows: int) -> Path:
    """Ingest --rows alpaca rows (copy k tagged "[k] ") into bench/_work/score-<rows>, once."""
    out = WORK / f"score-{rows}"
    if (out / "manifest.json").exists():
        return out
    WORK.mkdir(parents=True, exist_ok=True)
    base = json.loads((DATA / "alpaca_en_demo.json").read_text(encoding="utf-8"))
    src = WORK / f"score_alpaca_{rows}.jsonl"
    with src.open("w", encoding="utf-8") as f:
        for i in range(rows):
            r, k = base[i % len(base)], i // len(base)
            tag = f"[{k}] " if k else ""
            rec = {"instruction": tag + r["instruction"], "input": r["input"], "output": tag + r["output"]}
            f.write(json.dumps(rec, ensure_ascii=False) + "\n")
    api.ingest([src], out, format="alpaca", overwrite=True)
    src.unlink()  # the ingested dataset is the cache
    return out


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _median_seconds(
    fn: Callable[[], object], repeats: int, setup: Callable[[], object] | None = None
) -> tuple[float, float]:
    """Median wall and CPU seconds (all threads) of `fn`."""
    walls, cpus = [], []
    for _ in range(repeats):
        if setup is not None:
            setup()
        cpu, started = _cpu_seconds(), time.perf_counter()
        fn()
        walls.append(time.perf_counter() - started)
        cpus.append(_cpu_seconds() - cpu)
    return statistics.median(walls), statistics.median(cpus)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=200_000, help="rows the stage scores (default 200000)")
    ap.add_argument("--python-rows", type=int, default=3000, help="rows the per-row loop scores (default 3000)")
    ap.add_argument("--repeats", type=int, default=3, help="runs per engine; medians are printed (default 3)")
    args = ap.parse_args()
    cfg = H.STAGE.default_config()
    print(f"load average before the runs: {os.getloadavg()[0]:.2f} (other work on the machine skews timings)")
    version = importlib.metadata.version("textstat")
    print(f"polars {pl.__version__} on {pl.thread_pool_size()} threads; textstat {version}")
    textstat.set_rounding(False)  # its syllables per word are otherwise rounded to 0.1

    pristine = _dataset(args.rows)
    df = open_dataset(pristine).scan().collect()
    stage_s = _median_seconds(lambda: H.transform(df.lazy(), cfg).collect(), args.repeats)

    scratch = WORK / f"score-{args.rows}-run"

    def fresh_copy() -> None:
        shutil.rmtree(scratch, ignore_errors=True)
        shutil.copytree(pristine, scratch)

    runner_s = _median_seconds(lambda: run_stage(scratch, H.STAGE, cfg), args.repeats, setup=fresh_copy)
    shutil.rmtree(scratch, ignore_errors=True)

    sample = df.head(args.python_rows).select("instruction", "input", "response").to_dicts()
    textstat.flesch_reading_ease("Load the pronunciation dictionary before timing.")
    python_s = _median_seconds(lambda: score_rows(sample, cfg), args.repeats)

    python_rps = len(sample) / python_s[0]
    row = "{:<28} {:>10} {:>12} {:>10} {:>16}"
    print()
    print(row.format("engine", "rows", "rows/s", "vs python", "cpu us/row"))
    print("-" * 80)
    for name, rows, (wall, cpu) in (
        ("stage transform", df.height, stage_s),
        ("stage via run_stage", df.height, runner_s),
        ("per-row python + textstat", len(sample), python_s),
    ):
        rps = rows / wall
        print(row.format(name, f"{rows:,}", f"{rps:,.0f}", f"{rps / python_rps:.1f}x", f"{cpu / rows * 1e6:.1f}"))
    print(
        f"(per-row python ran on {len(sample):,} rows; at {python_rps:,.0f} rows/s it would take "
        f"{df.height / python_rps:,.0f} s for {df.height:,}; cpu us/row counts every thread)"
    )

    ours = H.transform(df.head(len(sample)).lazy(), cfg).collect()
    ref = pl.DataFrame(score_rows(sample, cfg))
    print()
    print(f"agreement on those {len(sample):,} rows (stage vs per-row): Pearson r, mean |difference|")
    for col in DIMS:
        a, b = ours[col].to_numpy(), ref[col].to_numpy()
        r = np.corrcoef(a, b)[0, 1] if a.std() and b.std() else float("nan")
        print(f"  {col:<16} r {r:.4f}   mean |diff| {np.abs(a - b).mean():.4f}")


if __name__ == "__main__":
    main()
