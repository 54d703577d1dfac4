"""Work loads no module it does not use: pandas (pyarrow imports it to convert some Python values) and
scipy.linalg (numba's first kernel call would import it). Each costs ~0.13 s holding the GIL in every process
that loads it; a fresh interpreter shows whether one was loaded.
"""

from __future__ import annotations

from pathlib import Path

from tests.conftest import DATA, fresh_json

UNUSED = ("pandas", "scipy.linalg")


def _fresh(code: str) -> dict[str, object]:
    """Run `code` (which sets `out`) in a new interpreter, then report which of UNUSED it loaded."""
    tail = f"\nprint(json.dumps({{**out, 'loaded': sorted(m for m in {UNUSED!r} if m in sys.modules)}}))"
    return fresh_json("import json, sys\n" + code + tail)


def test_ingest_with_rejects_loads_neither(tmp_path: Path) -> None:
    lines = (DATA / "gsm8k_train.jsonl").read_text(encoding="utf-8").splitlines()[:50]
    src = tmp_path / "gsm8k_bad.jsonl"
    src.write_text("\n".join([*lines, '{"question": "no answer"', '{"question": 3, "answer": "#### 4"}']) + "\n")
    out = _fresh(
        f"""
from engine import api
r = api.ingest([{str(DATA / "alpaca_en_demo.json")!r}, {str(src)!r}], {str(tmp_path / "ds")!r})
out = {{"kept": r.kept, "rejected": r.rejected}}
"""
    )
    assert out == {"kept": 999 + 50, "rejected": 2, "loaded": []}


def test_kernel_stages_load_neither(tmp_path: Path) -> None:
    """Stages whose kernels read string buffers with nulls (the prompt of a text row, a missing rejected)."""
    out = _fresh(
        f"""
from engine import api
kept = api.ingest([{str(DATA / "dpo_en_demo.json")!r}, {str(DATA / "c4_demo.jsonl")!r}], {str(tmp_path / "ds")!r}).kept
r = [api.score(s, {str(tmp_path / "ds")!r}).rows for s in ("heuristic", "exact_dedup", "minhash", "near_dedup")]
out = {{"rows": r, "kept": kept}}
"""
    )
    rows, kept = out.pop("rows"), out.pop("kept")
    assert rows == [kept] * 4 and kept == 600
    assert out == {"loaded": []}
