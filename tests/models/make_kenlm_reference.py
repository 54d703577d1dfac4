"""Regenerate the lmplz oracle for tests/models/test_kenlm_lm.py (not run by the tests).

Needs lmplz from the kenlm 0.3.0 sdist (`pip download kenlm==0.3.0 --no-deps --no-binary kenlm
--no-build-isolation`, then `apt-get install libboost-program-options-dev libboost-system-dev
libboost-thread-dev libboost-test-dev zlib1g-dev` and `cmake .. && make lmplz` in its build dir):

    python tests/models/make_kenlm_reference.py /path/to/lmplz

Writes kenlm_reference_corpus.txt (150 normalised sentences of ../shared/data/wiki_demo.txt) and
kenlm_reference_o4.arpa.gz (lmplz -o 4 on it).
"""

from __future__ import annotations

import gzip
import subprocess
import sys
from pathlib import Path

from engine.models.kenlm_lm import read_corpus
from engine.stages.kenlm import normalize_texts

HERE = Path(__file__).resolve().parent
WIKI = HERE.parents[2] / "shared" / "data" / "wiki_demo.txt"
SENTENCES = 150


def main(lmplz: str) -> None:
    text = " ".join(normalize_texts(read_corpus([WIKI])[:2]))
    sentences = [s.strip() + " ." for s in text.split(" . ") if s.strip()][:SENTENCES]
    corpus = HERE / "kenlm_reference_corpus.txt"
    corpus.write_text("\n".join(sentences) + "\n")
    arpa = subprocess.run(
        [lmplz, "-o", "4", "-S", "10%", "-T", "/tmp"], input=corpus.read_bytes(), capture_output=True, check=True
    ).stdout
    (HERE / "kenlm_reference_o4.arpa.gz").write_bytes(gzip.compress(arpa, mtime=0))


if __name__ == "__main__":
    main(sys.argv[1])
