"""Near-dedup benchmark corpus: >= 1M rows spliced from real text, with planted near-duplicates.

Why: a near-dedup engine is judged on real prose (real 5-gram statistics, real sentence lengths) at a
scale where speed matters, and on duplicates whose edit distance is known. ../shared/data holds only
~1.4M words of real text (~80K sentences), so a 1M-row corpus of ~120-word rows must reuse each
sentence ~80 times. Rows are therefore *splices*: each base row joins 2-4 windows of consecutive
sentences, each window starting at a random sentence of the pooled real documents. Two base rows
share a sentence now and then, but sharing most of their 5-grams needs the same windows drawn for
every segment, so base rows are near-duplicates of each other only by (very rare) chance. The
accuracy benchmark does not trust that: it measures exact Jaccard by brute force.

A `--dup-frac` share of rows are copies of a random base row with a known edit rate: 0 (verbatim),
1, 2, 3, 5, 10, 20 or 30 % of the words edited (k = max(1, round(rate * words)) edits at distinct
random positions, each a substitution, deletion or insertion of a random real word). A base row can
receive several copies, which makes clusters of 3 and more. Rows are shuffled, so a copy may come
before its source.

    python bench/dedup_corpus.py [--rows 1000000] [--seed 0] [--dup-frac 0.15]

Output, cached by parameters: bench/_work/dedup_<rows>_s<seed>_d<dup_frac>_v<version>.jsonl, one
{"text", "dup_of", "edit_rate", "edits"} per line; dup_of is the 0-based line of the source row
(null for a base row), edits the number of word edits applied.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
WORK = ROOT / "bench" / "_work"
VERSION = 1  # bump when the same parameters would give different bytes
EDIT_RATES = (0.0, 0.01, 0.02, 0.03, 0.05, 0.10, 0.20, 0.30)
MEAN_WORDS = 115  # target mean row length in words (PERF-NOTES' corpus: 117)
MAX_SENTENCE_WORDS = 60  # longer "sentences" (tables, code, tool-call JSON) are cut into 40-word pieces

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|\s*\n\s*")


def _documents() -> list[str]:
    """Every real document in ../shared/data, as one string each."""
    docs: list[str] = []
    for line in (DATA / "c4_demo.jsonl").read_text(encoding="utf-8").splitlines():
        if line.strip():
            docs.append(json.loads(line)["text"])
    docs += [p for p in (DATA / "wiki_demo.txt").read_text(encoding="utf-8").splitlines() if p.strip()]
    for r in json.loads((DATA / "alpaca_en_demo.json").read_text(encoding="utf-8")):
        docs.append("\n".join([r["instruction"], r["input"], r["output"]]))
    for line in (DATA / "gsm8k_train.jsonl").read_text(encoding="utf-8").splitlines():
        if line.strip():
            r = json.loads(line)
            docs.append(r["question"] + "\n" + r["answer"])
    for line in (DATA / "alpaca_seed_tasks.jsonl").read_text(encoding="utf-8").splitlines():
        if line.strip():
            r = json.loads(line)
            docs.append("\n".join([r["instruction"], *(f"{i['input']}\n{i['output']}" for i in r["instances"])]))
    for r in json.loads((DATA / "dpo_en_demo.json").read_text(encoding="utf-8")):
        docs.append(
            "\n".join([*(t["value"] for t in r["conversations"]), r["chosen"]["value"], r["rejected"]["value"]])
        )
    for r in json.loads((DATA / "glaive_toolcall_en_demo.json").read_text(encoding="utf-8")):
        docs.append("\n".join(t["value"] for t in r["conversations"]))
    return docs


def sentence_pool() -> tuple[list[str], np.ndarray]:
    """All sentences of all documents in document order, each whitespace-collapsed, and their word counts."""
    sentences: list[str] = []
    for doc in _documents():
        for s in _SENTENCE_END.split(doc):
            words = s.split()
            if not words:
                continue
            if len(words) <= MAX_SENTENCE_WORDS:
                sentences.append(" ".join(words))
            else:
                sentences += [" ".join(words[i : i + 40]) for i in range(0, len(words), 40)]
    counts = np.fromiter((s.count(" ") + 1 for s in sentences), dtype=np.int64, count=len(sentences))
    return sentences, counts


def _base_rows(n: int, sentences: list[str], counts: np.ndarray, rng: np.random.Generator) -> list[str]:
    """`n` splices of 2-4 sentence windows, ~MEAN_WORDS words on average (lognormal lengths, 20..600)."""
    cum = np.concatenate([[0], np.cumsum(counts)])
    total = len(sentences)
    # each window overshoots its target by about half a sentence; aim lower so the mean lands near MEAN_WORDS
    overshoot = 0.5 * float(np.average(counts, weights=counts))
    k = rng.integers(2, 5, size=n)
    target = np.clip(rng.lognormal(np.log(MEAN_WORDS) - 0.15, 0.55, size=n), 20, 600)
    per_window = np.maximum(1.0, target / k - overshoot)
    window_row = np.repeat(np.arange(n), k)
    start = rng.integers(0, total, size=len(window_row))
    end = np.searchsorted(cum, cum[start] + per_window[window_row], side="left")
    end = np.clip(np.maximum(end, start + 1), 1, total)
    bounds = np.concatenate([[0], np.cumsum(k)])
    out: list[str] = []
    s_list, e_list = start.tolist(), end.tolist()
    for r in range(n):
        lo, hi = bounds[r], bounds[r + 1]
        out.append(" ".join(" ".join(sentences[s_list[w] : e_list[w]]) for w in range(lo, hi)))
    return out


def edit_words(text: str, rate: float, vocab: list[str], rnd: random.Random) -> tuple[str, int]:
    """`text` with k = max(1, round(rate * words)) random word edits (0 when rate is 0), and k."""
    words = text.split()
    if rate <= 0 or not words:
        return text, 0
    k = min(len(words), max(1, round(rate * len(words))))
    for pos in sorted(rnd.sample(range(len(words)), k), reverse=True):
        op = rnd.randrange(3)
        if op == 0:
            words[pos] = vocab[rnd.randrange(len(vocab))]
        elif op == 1:
            del words[pos]
        else:
            words.insert(pos, vocab[rnd.randrange(len(vocab))])
    return " ".join(words), k


def corpus_path(rows: int, seed: int, dup_frac: float) -> Path:
    return WORK / f"dedup_{rows}_s{seed}_d{dup_frac:g}_v{VERSION}.jsonl"


def build_corpus(rows: int, seed: int = 0, dup_frac: float = 0.15, quiet: bool = False) -> Path:
    """Write (or reuse) the corpus for these parameters; returns its path."""
    path = corpus_path(rows, seed, dup_frac)
    if path.exists():
        return path
    started = time.perf_counter()
    rng = np.random.default_rng(seed)
    rnd = random.Random(seed)
    sentences, counts = sentence_pool()
    n_dup = round(rows * dup_frac)
    n_base = rows - n_dup
    texts = _base_rows(n_base, sentences, counts, rng)
    vocab = " ".join(sentences).split()
    src = rng.integers(0, n_base, size=n_dup).tolist()
    rates = rng.choice(np.array(EDIT_RATES), size=n_dup).tolist()
    edits: list[int | None] = [None] * n_base
    for s, rate in zip(src, rates, strict=True):
        text, k = edit_words(texts[s], rate, vocab, rnd)
        texts.append(text)
        edits.append(k)
    line_of = rng.permutation(rows)  # item i (bases first, then copies) goes to line line_of[i]
    item_at = np.argsort(line_of).tolist()
    dup_of = [None] * n_base + line_of[src].tolist()
    rate_of = [None] * n_base + rates
    WORK.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with tmp.open("w", encoding="utf-8") as fh:
        for i in item_at:
            rec = {"text": texts[i], "dup_of": dup_of[i], "edit_rate": rate_of[i], "edits": edits[i]}
            fh.write(json.dumps(rec, ensure_ascii=False) + "\n")
    os.replace(tmp, path)
    if not quiet:
        words = np.fromiter((t.count(" ") + 1 for t in texts), dtype=np.int64, count=rows)
        print(
            f"built {path.relative_to(ROOT)}: {rows:,} rows ({n_base:,} base, {n_dup:,} planted copies at rates "
            f"{', '.join(f'{r:g}' for r in EDIT_RATES)}), mean {words.mean():.1f} words (median "
            f"{np.median(words):.0f}), {path.stat().st_size / (1 << 20):.0f} MB, from {len(sentences):,} real "
            f"sentences ({int(counts.sum()):,} words), in {time.perf_counter() - started:.1f}s",
            flush=True,
        )
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--dup-frac", type=float, default=0.15, help="share of rows that are edited copies")
    args = ap.parse_args()
    path = build_corpus(args.rows, args.seed, args.dup_frac)
    print(path)


if __name__ == "__main__":
    main()
