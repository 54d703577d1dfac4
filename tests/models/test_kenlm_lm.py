"""The KenLM estimator: lmplz's numbers on the same corpus, a model kenlm loads, sane perplexities."""

from __future__ import annotations

import gzip
import math
import random
import re
from pathlib import Path

import numpy as np
import pytest

from engine.errors import ConfigError, InputError
from engine.models import kenlm_lm
from engine.stages.kenlm import normalize_texts
from tests.conftest import DATA

HERE = Path(__file__).resolve().parent
WIKI = DATA / "wiki_demo.txt"
HELD_OUT = 5  # the last articles of wiki_demo.txt, never trained on


def _read_arpa(text: str) -> dict[str, tuple[float, float | None]]:
    out = {}
    for line in text.splitlines():
        parts = line.split("\t")
        if len(parts) >= 2:
            out[parts[1]] = (float(parts[0]), float(parts[2]) if len(parts) > 2 else None)
    return out


@pytest.fixture(scope="module")
def wiki_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    lines = kenlm_lm.read_corpus([WIKI])[:-HELD_OUT]
    corpus = tmp_path_factory.mktemp("kenlm") / "train.txt"
    corpus.write_text("\n".join(lines) + "\n")
    out = corpus.with_name("wiki.arpa")
    kenlm_lm.train([corpus], out, order=5, normalize=normalize_texts)
    return out


def test_estimate_matches_lmplz_on_the_same_corpus(tmp_path: Path) -> None:
    # oracle: lmplz 0.3.0 -o 4 on 150 normalised wiki sentences (tests/models/make_kenlm_reference.py)
    sentences = (HERE / "kenlm_reference_corpus.txt").read_text().splitlines()
    report = kenlm_lm.train_sentences(sentences, tmp_path / "ours.arpa", order=4)
    ours = _read_arpa((tmp_path / "ours.arpa").read_text())
    ref = _read_arpa(gzip.decompress((HERE / "kenlm_reference_o4.arpa.gz").read_bytes()).decode())
    assert ours.keys() == ref.keys()
    assert report.ngrams == (1115, 2881, 3488, 3523) and not report.fallback_orders
    keys = sorted(ref)
    prob = np.array([ours[k][0] - ref[k][0] for k in keys])
    backoff = np.array([(ours[k][1] or 0.0) - (ref[k][1] or 0.0) for k in keys])
    assert np.abs(prob).max() < 2e-6  # lmplz computes in float32
    assert np.abs(backoff).max() < 2e-6
    assert all((ours[k][1] is None) == (ref[k][1] is None) for k in keys)


def test_trained_arpa_loads_and_its_unigrams_sum_to_one(wiki_model: Path) -> None:
    model = kenlm_lm.load(wiki_model)
    assert model.order == 5
    unigrams = re.search(r"\\1-grams:\n(.*?)\n\n", wiki_model.read_text(), re.S)
    assert unigrams is not None
    probs = [float(line.split("\t")[0]) for line in unigrams.group(1).splitlines() if "\t<s>\t" not in line]
    assert math.isclose(sum(10**p for p in probs), 1.0, abs_tol=1e-4)
    # a sentence's score is the sum of its n-gram log probabilities, as kenlm reports them
    sentence = "the state is a political philosophy ."
    assert math.isclose(model.score(sentence), sum(p for p, _, _ in model.full_scores(sentence)), abs_tol=1e-5)


def test_held_out_wiki_scores_lower_perplexity_than_shuffled_words(wiki_model: Path) -> None:
    model = kenlm_lm.load(wiki_model)
    articles = kenlm_lm.read_corpus([WIKI])[-HELD_OUT:]
    # wiki_demo.txt runs paragraphs together ("...socialism.Humans lived..."): split them there
    paragraphs = [p for a in articles for p in re.split(r"(?<=[a-z][.!?])(?=[A-Z])", a) if len(p.split()) >= 30]
    assert len(paragraphs) >= 50
    rng = random.Random(0)
    shuffled = [" ".join(rng.sample(p.split(), len(p.split()))) for p in paragraphs]
    real = np.array([model.perplexity(t) for t in normalize_texts(paragraphs)])
    mixed = np.array([model.perplexity(t) for t in normalize_texts(shuffled)])
    assert np.mean(real < mixed) >= 0.95
    assert np.median(mixed / real) > 1.5
    assert 50 < np.median(real) < 2000  # a small wiki model (160K words) on unseen wiki text


def test_small_corpora_fall_back_to_lmplz_default_discounts(tmp_path: Path) -> None:
    report = kenlm_lm.train_sentences(["a b c", "a b d"], tmp_path / "tiny.arpa", order=3)
    assert report.fallback_orders and report.discounts[-1] == kenlm_lm.FALLBACK_DISCOUNTS
    assert kenlm_lm.load(tmp_path / "tiny.arpa").perplexity("a b c") > 1


def test_bad_inputs_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"missing\.txt: no such corpus file"):
        kenlm_lm.read_corpus([tmp_path / "missing.txt"])
    with pytest.raises(ConfigError, match=r"order must be in 1\.\.6"):
        kenlm_lm.train_sentences(["a b"], tmp_path / "m.arpa", order=7)
    (tmp_path / "empty.txt").write_text("\n \n")
    with pytest.raises(InputError, match="no words"):
        kenlm_lm.train([tmp_path / "empty.txt"], tmp_path / "m.arpa", normalize=normalize_texts)
    (tmp_path / "not.arpa").write_text("hello\n")
    with pytest.raises(ConfigError, match="is not a model kenlm can load"):
        kenlm_lm.load(tmp_path / "not.arpa")
