"""Semantic dedup benchmark: embeddings/s and dedup rows/s on >= 10K real rows, beside peers, as ratios.

    python bench/semantic.py [--rows 12000] [--minilm-rows 300] [--peer-python PATH]

The corpus is every row of the real files in ../shared/data (alpaca, gsm8k, c4, dpo, glaive, seed
tasks; ~9.5K texts), plus planted near copies (5-15% of words dropped) of random rows up to --rows.
Printed, each beside its peer:
- static embeddings (`minilm-static`, ours: tokenizers + a numba mean) vs model2vec's StaticModel on
  the very same table and tokenizer (when model2vec is installed);
- full MiniLM (`minilm`, ours: numpy + numba) on --minilm-rows rows vs the same encoder one row at a
  time, and vs sentence-transformers (PyTorch) run by --peer-python, a Python that has it;
- semantic dedup's global step (k-means + within-cluster links) vs brute force over all pairs
  (blocked numpy products), with the recall of the planted copies;
- both stages end to end through the runner (ingest excluded).
Timings are medians of --repeats runs; no timing is asserted anywhere.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engine import api  # noqa: E402
from engine.models.embeddings import load_encoder, model_dir  # noqa: E402
from engine.stages.semantic_dedup import SemanticDedupConfig, components  # noqa: E402

DATA = ROOT.parent / "shared" / "data"


def real_texts() -> list[str]:
    """One text per real row, as the embed stage's per-kind defaults would build it."""
    out = [
        f"{r['instruction']}\n{r['input']}\n{r['output']}"
        for r in json.loads((DATA / "alpaca_en_demo.json").read_text())
    ]
    for line in (DATA / "gsm8k_train.jsonl").read_text().splitlines():
        r = json.loads(line)
        out.append(f"{r['question']}\n{r['answer']}")
    out += [json.loads(x)["text"] for x in (DATA / "c4_demo.jsonl").read_text().splitlines() if x.strip()]
    for name in ("dpo_en_demo.json", "glaive_toolcall_en_demo.json"):
        for r in json.loads((DATA / name).read_text()):
            out.append("\n".join(f"{t['from']}: {t['value']}" for t in r["conversations"]))
    for line in (DATA / "alpaca_seed_tasks.jsonl").read_text().splitlines():
        r = json.loads(line)
        out.append(r["instruction"] + "\n" + "\n".join(i["input"] + "\n" + i["output"] for i in r["instances"]))
    return out


def corpus(rows: int, seed: int = 0) -> tuple[list[str], list[tuple[int, int]]]:
    """Real texts plus planted near copies up to `rows`; returns the texts and the (original, copy) pairs."""
    texts = real_texts()
    rng = random.Random(seed)
    planted = []
    while len(texts) < rows:
        src = rng.randrange(len(texts))
        rate = rng.uniform(0.05, 0.15)
        planted.append((src, len(texts)))
        texts.append(" ".join(w for w in texts[src].split() if rng.random() >= rate))
    return texts, planted


def timed(fn, repeats: int) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), out


def brute_force(emb: np.ndarray, cosine: float, block: int = 2048) -> np.ndarray:
    """Component roots from every pair: blocked products, then the same union-find over the pairs found."""
    parent = np.arange(len(emb))

    def root(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for lo in range(0, len(emb), block):
        sims = emb[lo : lo + block] @ emb[: lo + block].T
        rows, cols = np.nonzero(sims >= np.float32(cosine))
        for i, j in zip(rows + lo, cols, strict=True):
            if j < i:
                a, b = root(i), root(j)
                if a != b:
                    parent[max(a, b)] = min(a, b)
    return np.array([root(i) for i in range(len(emb))])


PEER_ST = """
import json, sys, time, torch
torch.set_num_threads(int(sys.argv[2]))
from sentence_transformers import SentenceTransformer
texts = json.load(open(sys.argv[1]))
m = SentenceTransformer(sys.argv[3], device="cpu")
m.encode(texts[:8])
t = time.perf_counter(); m.encode(texts, batch_size=32); print(time.perf_counter() - t)
"""


def line(label: str, rows: int, seconds: float, peer: float | None = None) -> None:
    ratio = f"   x{peer / seconds:6.1f} vs peer" if peer else ""
    print(f"  {label:58s} {rows / seconds:>10,.0f} rows/s  ({seconds:7.3f} s){ratio}", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=12_000)
    ap.add_argument("--minilm-rows", type=int, default=300)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--cosine", type=float, default=0.95)
    ap.add_argument(
        "--peer-python", default="", help="a Python with sentence-transformers + torch, for the MiniLM peer"
    )
    args = ap.parse_args()

    texts, planted = corpus(args.rows)
    print(
        f"corpus: {len(texts):,} rows ({len(texts) - len(planted):,} real, {len(planted):,} planted copies), {os.cpu_count()} cores"
    )

    print("static embeddings (minilm-static, 256 dims, max 256 tokens)")
    static = load_encoder("minilm-static")
    static.encode(texts[:100])
    ours_s, emb = timed(lambda: static.encode(texts), args.repeats)
    peer_s = None
    try:
        from model2vec import StaticModel

        m2v = StaticModel(vectors=static.table, tokenizer=static.tokenizer, normalize=True, max_length=256)
        m2v.encode(texts[:100])
        peer_s, theirs = timed(lambda: m2v.encode(texts, max_length=256, use_multiprocessing=False), args.repeats)
        agree = float(np.median((emb * theirs).sum(axis=1)))
        line(f"model2vec StaticModel, same table (median cos to ours {agree:.4f})", len(texts), peer_s)
    except ImportError:
        print("  model2vec not installed: no static peer")
    line("distill minilm-static", len(texts), ours_s, peer_s)

    n = min(args.minilm_rows, len(texts))
    sub = texts[:: max(1, len(texts) // n)][:n]
    print(f"full MiniLM (minilm, 384 dims, max 256 tokens) on {len(sub)} rows")
    full = load_encoder("minilm")
    full.encode(sub[:8])
    ours_f, _ = timed(lambda: full.encode(sub), 1)
    loop_f, _ = timed(lambda: [full.encode([t]) for t in sub], 1)
    line("distill minilm, one row per call (peer: per-row loop)", len(sub), loop_f)
    st_f = None
    if args.peer_python:
        with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
            json.dump(sub, f)
        cmd = [args.peer_python, "-c", PEER_ST, f.name, str(os.cpu_count() or 1), str(model_dir())]
        st_f = float(subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.split()[-1])
        line("sentence-transformers + PyTorch (peer)", len(sub), st_f)
    line("distill minilm, batched by token budget", len(sub), ours_f, st_f or loop_f)

    print(f"semantic dedup global step on {len(texts):,} static embeddings, cosine {args.cosine}")
    cfg = SemanticDedupConfig(cosine=args.cosine)
    brute_s, oracle = timed(lambda: brute_force(emb, args.cosine), 1)
    line("brute force, all pairs (peer)", len(texts), brute_s)
    ours_d, found = timed(lambda: components(emb, cfg), args.repeats)
    line("distill k-means (k = sqrt(n)) + within-cluster links", len(texts), ours_d, brute_s)
    hit = sum(found[a] == found[b] for a, b in planted)
    hit_all = sum(oracle[a] == oracle[b] for a, b in planted)
    dup_rows = int((np.bincount(found)[found] > 1).sum())
    missed = sum(found[i] != found[oracle[i]] for i in range(len(found)))
    print(
        f"  planted copies linked: {hit}/{len(planted)} (all pairs: {hit_all}); rows in duplicate components: "
        f"{dup_rows:,}; rows whose all-pairs link k-means missed: {missed}"
    )

    print("end to end through the runner (embed, then semantic_dedup; ingest not timed)")
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "x.jsonl"
        src.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))
        api.ingest([src], Path(tmp) / "ds", partition_rows=100_000)
        for stage in ("embed", "semantic_dedup"):
            t = time.perf_counter()
            report = api.score(stage, Path(tmp) / "ds")
            line(f"stage {stage}", report.rows, time.perf_counter() - t)


if __name__ == "__main__":
    main()
