"""A pool of real alpaca rows plus the same rows with the words of each response shuffled, and a tiny model."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from engine import api
from tests.conftest import DATA
from tests.models.test_ifd_tiny import build_tiny_llama

EXPERIMENT = """
name = "real_vs_shuffled"
seeds = [0, 1]
rows = {rows}
baseline = "real"
workers = {workers}

[pool]
dir = "pool"

[model]
name = "{model}"
init = "proxy"
method = "full"
proxy_hidden = 64
proxy_layers = 2
dtype = "fp32"

[train]
steps = {steps}
batch_size = 8
lr = 1e-2
max_length = 192
checkpoint_every = {checkpoint_every}

[eval]
holdout = 40
external = ["trusted.json"]

[[arm]]
name = "real"
query = ["from_source", "random_n"]
params = {{ source = "real", seed = 0 }}

[[arm]]
name = "shuffled"
query = ["from_source", "random_n"]
params = {{ source = "shuffled", seed = 0 }}
{extra}"""

SECOND_RANDOM = """
[[arm]]
name = "real_draw2"
query = ["from_source", "random_n"]
params = { source = "real", seed = 1 }
"""


def shuffle_words(text: str, rng: random.Random) -> str:
    words = text.split()
    rng.shuffle(words)
    return " ".join(words)


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_llama(tmp_path_factory.mktemp("exp-model"))


@pytest.fixture(scope="session")
def pool_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`real` = 300 alpaca rows, `shuffled` = the same rows with each response's words shuffled; a trusted eval
    set of 100 other real alpaca rows."""
    d = tmp_path_factory.mktemp("exp-pool")
    rows = json.loads((DATA / "alpaca_en_demo.json").read_text())
    rng = random.Random(0)
    real = rows[:300]
    shuffled = [{**r, "output": shuffle_words(r["output"], rng)} for r in real]
    (d / "real.json").write_text(json.dumps(real))
    (d / "shuffled.json").write_text(json.dumps(shuffled))
    (d / "trusted.json").write_text(json.dumps(rows[800:900]))
    api.ingest([d / "real.json", d / "shuffled.json"], d / "pool")
    return d


def write_experiment(
    where: Path,
    model: Path,
    *,
    rows: int = 200,
    steps: int = 120,
    workers: int = 2,
    checkpoint_every: int = 20,
    second_random: bool = True,
) -> Path:
    text = EXPERIMENT.format(
        rows=rows,
        workers=workers,
        model=model,
        steps=steps,
        checkpoint_every=checkpoint_every,
        extra=SECOND_RANDOM if second_random else "",
    )
    path = where / f"exp-{steps}-{workers}-{int(second_random)}.toml"
    path.write_text(text)
    return path
