"""EXP.toml -> `Experiment`: the pool, the arms (selections from queries/), one training spec, seeds, evaluation.

Every mistake is a ConfigError naming the file and the key, before anything trains.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from engine.errors import ConfigError, did_you_mean
from engine.models.finetune import TrainSpec

TOP_KEYS = ("name", "seeds", "rows", "equal_size", "baseline", "workers", "pool", "model", "train", "eval", "arm")
ARM_KEYS = ("name", "query", "params", "by", "ascending", "all_rows", "mix")
EVAL_KEYS = ("holdout", "salt", "external", "accuracy", "generate_tokens", "max_accuracy_rows")
POOL_KEYS = ("dir", "pipeline")
MODEL_KEYS = ("name", "template")
SPEC_KEYS = tuple(f.name for f in fields(TrainSpec))


@dataclass(frozen=True, slots=True)
class Arm:
    name: str
    queries: tuple[str, ...]
    params: dict[str, str]
    by: str | None = None
    ascending: bool = False
    all_rows: bool = False
    mix: Path | None = None  # a mix table for the `mix` query (default: queries/mix_default.toml)

    @property
    def is_random(self) -> bool:
        return "random_n" in self.queries


@dataclass(frozen=True, slots=True)
class EvalPlan:
    holdout: int = 200  # rows of the pool held out before any arm is drawn
    salt: str = "experiment"
    external: tuple[Path, ...] = ()  # dataset dirs or raw files (ingested into the output dir)
    accuracy: str = "auto"  # auto: exact-match by greedy decoding when the pool has rlvr rows; on|off
    generate_tokens: int = 256
    max_accuracy_rows: int = 200


@dataclass(frozen=True, slots=True)
class Experiment:
    path: Path
    name: str
    pool: Path
    pipeline: Path | None
    arms: tuple[Arm, ...]
    seeds: tuple[int, ...]
    rows: int | None  # each arm's size; None: the smallest arm's
    equal_size: bool  # false: every arm keeps all the rows it selected (e.g. a whole-pool arm)
    baseline: str
    workers: int
    model: str
    template: str
    spec: TrainSpec
    eval: EvalPlan

    def draws_of_baseline(self) -> list[str]:
        """Arms that differ from the baseline only in `seed`: other random draws of the same rows."""
        base = next(a for a in self.arms if a.name == self.baseline)
        same = {k: v for k, v in base.params.items() if k != "seed"}
        return [
            a.name
            for a in self.arms
            if a.queries == base.queries
            and a.by == base.by
            and {k: v for k, v in a.params.items() if k != "seed"} == same
        ]


def _fail(path: Path, where: str, what: str) -> ConfigError:
    return ConfigError(f"{path}: {where}: {what}")


def _check_keys(path: Path, where: str, table: dict[str, Any], allowed: tuple[str, ...]) -> None:
    for key in table:
        if key not in allowed:
            raise _fail(
                path, where, f"unknown key {key!r}{did_you_mean(key, list(allowed))} (keys: {', '.join(allowed)})"
            )


def _table(path: Path, doc: dict[str, Any], key: str, allowed: tuple[str, ...]) -> dict[str, Any]:
    table = doc.get(key, {})
    if not isinstance(table, dict):
        raise _fail(path, f"[{key}]", "expected a table")
    _check_keys(path, f"[{key}]", table, allowed)
    return table


def _arm(path: Path, i: int, raw: Any) -> Arm:
    where = f"[[arm]] #{i + 1}"
    if not isinstance(raw, dict):
        raise _fail(path, where, "expected a table")
    _check_keys(path, where, raw, ARM_KEYS)
    name = raw.get("name")
    if not isinstance(name, str) or not name.replace("_", "").replace("-", "").isalnum():
        raise _fail(path, where, f"name must be letters, digits, '_' or '-', got {name!r}")
    query = raw.get("query")
    queries = (query,) if isinstance(query, str) else tuple(query or ())
    if not queries or not all(isinstance(q, str) for q in queries):
        raise _fail(path, f"{where} ({name})", "query: give a query name or a list of them (a chain), e.g. 'top_n'")
    params = raw.get("params", {})
    if not isinstance(params, dict):
        raise _fail(path, f"{where} ({name})", "params must be a table, e.g. { n = 400 }")
    return Arm(
        name,
        queries,
        {str(k): str(v).lower() if isinstance(v, bool) else str(v) for k, v in params.items()},
        raw.get("by"),
        bool(raw.get("ascending", False)),
        bool(raw.get("all_rows", False)),
        (path.parent / raw["mix"]).resolve() if raw.get("mix") else None,
    )


def load_experiment(path: str | Path) -> Experiment:
    path = Path(path)
    if not path.is_file():
        msg = f"experiment: {path}: no such file; see experiments/ for examples"
        raise ConfigError(msg)
    try:
        doc = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as e:
        raise _fail(path, "TOML", str(e)) from None
    _check_keys(path, "top level", doc, TOP_KEYS)
    base = path.parent

    pool = _table(path, doc, "pool", POOL_KEYS)
    if "dir" not in pool:
        raise _fail(path, "[pool]", "dir is required: a scored dataset dir (relative to this file)")
    pipeline = (base / pool["pipeline"]).resolve() if pool.get("pipeline") else None
    if pipeline is not None and not pipeline.is_file():
        raise _fail(path, "[pool] pipeline", f"{pipeline}: no such file")

    arms = tuple(_arm(path, i, a) for i, a in enumerate(doc.get("arm", [])))
    if len(arms) < 2:
        raise _fail(path, "[[arm]]", f"an experiment compares at least 2 arms, got {len(arms)}")
    names = [a.name for a in arms]
    if len(set(names)) != len(names):
        raise _fail(path, "[[arm]]", f"arm names must be unique, got {names}")

    seeds = doc.get("seeds", [0, 1])
    if not isinstance(seeds, list) or len(seeds) < 2 or len(set(seeds)) != len(seeds):
        raise _fail(path, "seeds", f"give at least 2 distinct seeds (the seed spread needs 2), got {seeds!r}")
    baseline = doc.get("baseline") or next((a.name for a in arms if a.is_random), arms[0].name)
    if baseline not in names:
        raise _fail(path, "baseline", f"{baseline!r} is not an arm{did_you_mean(baseline, names)}")
    rows = doc.get("rows")
    if rows is not None and (not isinstance(rows, int) or rows < 1):
        raise _fail(path, "rows", f"expected a positive row count per arm, got {rows!r}")
    workers = doc.get("workers", 0)
    if not isinstance(workers, int) or workers < 0:
        raise _fail(path, "workers", f"expected processes >= 0 (0: one per core), got {workers!r}")

    model = _table(path, doc, "model", (*MODEL_KEYS, *SPEC_KEYS))
    train = _table(path, doc, "train", SPEC_KEYS)
    both = set(model) & set(train)
    if both:
        raise _fail(path, "[model]/[train]", f"{sorted(both)[0]!r} is given twice")
    spec_args = {k: v for k, v in {**model, **train}.items() if k not in MODEL_KEYS}
    try:
        spec = TrainSpec(**spec_args)
    except TypeError as e:
        raise _fail(path, "[train]", str(e)) from None
    except ConfigError as e:
        raise _fail(path, "[model]/[train]", str(e).removeprefix("experiment: ")) from None

    ev = _table(path, doc, "eval", EVAL_KEYS)
    external = ev.get("external", [])
    external = [external] if isinstance(external, str) else external
    accuracy = ev.get("accuracy", "auto")
    if accuracy not in ("auto", "on", "off"):
        raise _fail(path, "[eval] accuracy", f"expected auto|on|off, got {accuracy!r}")
    holdout = ev.get("holdout", 200)
    if not isinstance(holdout, int) or holdout < 1:
        raise _fail(path, "[eval] holdout", f"expected rows >= 1, got {holdout!r}")
    plan_eval = EvalPlan(
        holdout,
        str(ev.get("salt", "experiment")),
        tuple((base / e).resolve() for e in external),
        accuracy,
        int(ev.get("generate_tokens", 256)),
        int(ev.get("max_accuracy_rows", 200)),
    )
    for e in plan_eval.external:
        if not e.exists():
            raise _fail(path, "[eval] external", f"{e}: no such file or dataset dir")
    return Experiment(
        path=path,
        name=str(doc.get("name", path.stem)),
        pool=(base / pool["dir"]).resolve(),
        pipeline=pipeline,
        arms=arms,
        seeds=tuple(int(s) for s in seeds),
        rows=rows,
        equal_size=bool(doc.get("equal_size", True)),
        baseline=baseline,
        workers=workers or min(os.cpu_count() or 1, len(arms) * len(seeds)),
        model=str(model.get("name", "smollm2")),
        template=str(model.get("template", "auto")),
        spec=spec,
        eval=plan_eval,
    )
