"""Ingest loads no module it does not use: pandas (pyarrow imports it for some calls) and scipy.linalg (numba's
first kernel would). Each import costs ~0.13 s holding the GIL, in every ingest process; a fresh interpreter
shows whether they happened.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.conftest import DATA

ROOT = Path(__file__).resolve().parents[2]


def test_ingest_imports_neither_pandas_nor_scipy_linalg(tmp_path: Path) -> None:
    lines = (DATA / "gsm8k_train.jsonl").read_text(encoding="utf-8").splitlines()[:50]
    src = tmp_path / "gsm8k_bad.jsonl"
    src.write_text("\n".join([*lines, '{"question": "no answer"', '{"question": 3, "answer": "#### 4"}']) + "\n")
    code = f"""
import json, sys
from engine import api
r = api.ingest([{str(DATA / "alpaca_en_demo.json")!r}, {str(src)!r}], {str(tmp_path / "ds")!r})
print(json.dumps({{"kept": r.kept, "rejected": r.rejected, "loaded": sorted(m for m in ("pandas", "scipy.linalg") if m in sys.modules)}}))
"""
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out == {"kept": 999 + 50, "rejected": 2, "loaded": []}
