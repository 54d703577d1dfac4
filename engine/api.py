"""The Python API: one function per user verb. The CLI is a thin layer over these.

Examples
--------
>>> import tempfile, pathlib
>>> d = pathlib.Path(tempfile.mkdtemp())
>>> _ = (d / "q.jsonl").write_text('{"question": "1+1?", "answer": "#### 2"}\\n')
>>> ingest([d / "q.jsonl"], d / "ds").kept
1
>>> score("length", d / "ds").written
1
>>> verify(d / "ds").ok
True
"""

from __future__ import annotations

import json
import os
import time
import tomllib
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import polars as pl
import pyarrow as pa
import xxhash

from engine import config as cfgmod
from engine.errors import ConfigError, InputError, StoreError, did_you_mean
from engine.experiment import verdict as exp_verdict
from engine.experiment.jobs import EvalSet, Job, run_jobs
from engine.experiment.plan import Arm, load_experiment
from engine.experiment.rows import read_rows, save_rows
from engine.export.export import ExportReport, export_dataset
from engine.generate.budget import Budget, Limits
from engine.generate.cache import ResponseCache, default_cache_path
from engine.generate.chunk import check_sizes, write_chunk_source
from engine.generate.client import ChatClient
from engine.generate.judge import JudgeReport, run_judge
from engine.generate.prices import parse_prices
from engine.generate.prompts import ROW_DOMAIN, template
from engine.generate.regenerate import RegenerateTally, regenerate_rejected
from engine.generate.teach import GenerateTally, generate_sources
from engine.generate.teachers import parse_endpoint, parse_teachers
from engine.io.ingest import IngestReport, SourceSpec
from engine.io.ingest import ingest as _ingest
from engine.models import kenlm_lm, smollm2
from engine.models.causal_lm import PairEncoder, model_hash, resolve_model
from engine.models.finetune import spec_dict, special_ids
from engine.progress import OnProgress, ignore
from engine.report.build import ReportResult, write_report
from engine.report.experiment import write_experiment_report
from engine.schema import KINDS, dataset_polars_schema, load_kind
from engine.select.mix import read_mix
from engine.select.queries import load_query
from engine.select.run import run_selection
from engine.select.scored import scored_view
from engine.select.shards import select_on_ray
from engine.select.write import input_fingerprint, selection_record, write_selection
from engine.stages import gate as gate_stage
from engine.stages import get_stage
from engine.stages.base import Stage
from engine.stages.dedup_summary import DedupSummary, summarize
from engine.stages.kenlm import normalize_texts
from engine.stages.numba_registries import preload
from engine.stages.views import count_tokens, prompt_text, response_text
from engine.store.dataset import open_dataset
from engine.store.location import Where, location
from engine.store.manifest import read_manifest, write_manifest
from engine.store.partitions import Codec
from engine.store.ray_runner import RayEngine, ray_session, run_stage_ray
from engine.store.runner import StageReport, run_stage, side_path


def parse_map(pairs: Sequence[str]) -> dict[str, str]:
    """`canonical=source_field` pairs from the command line."""
    out: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip() or not value.strip():
            msg = f"--map {pair!r}: expected CANONICAL=SOURCE_FIELD, e.g. --map response=answer"
            raise ConfigError(msg)
        out[key.strip()] = value.strip()
    return out


def ingest(
    sources: Sequence[str | Path],
    out: str | Path,
    *,
    format: str = "auto",
    mapping: Mapping[str, str] | None = None,
    domain: str | None = None,
    source: str | None = None,
    partition_rows: int = 100_000,
    text_unit: str = "auto",
    codec: Codec | None = None,
    overwrite: bool = False,
    on_progress: OnProgress = ignore,
) -> IngestReport:
    """Ingest files into a dataset dir (see `engine.io.ingest`)."""
    if text_unit not in ("auto", "line", "paragraph", "file"):
        msg = f"--text-unit {text_unit!r}: expected auto|line|paragraph|file"
        raise ConfigError(msg)
    specs = [SourceSpec(Path(s), format, dict(mapping or {}), domain, source, text_unit) for s in sources]  # type: ignore[arg-type]
    return _ingest(specs, out, partition_rows=partition_rows, codec=codec, overwrite=overwrite, on_progress=on_progress)


EngineArg = str | RayEngine
"""Where stages run: "local", "ray" (with `address`), or a `RayEngine`."""


def resolve_engine(engine: EngineArg, address: str | None = None) -> RayEngine | None:
    """None for the local runner, else the Ray engine to use; a one-line error for anything else.

    Examples
    --------
    >>> resolve_engine("local") is None, resolve_engine("ray", "auto")
    (True, RayEngine(address='auto', cpus_per_task=None, shards=0))
    >>> resolve_engine("local", "auto")
    Traceback (most recent call last):
    engine.errors.ConfigError: --address 'auto' needs --engine ray
    """
    if isinstance(engine, RayEngine):
        if address is not None:
            msg = f"--address {address!r}: give the address in RayEngine(address=...)"
            raise ConfigError(msg)
        return engine
    if engine == "ray":
        return RayEngine(address=address)
    if engine != "local":
        msg = f"--engine {engine!r}: expected local|ray"
        raise ConfigError(msg)
    if address is not None:
        msg = f"--address {address!r} needs --engine ray"
        raise ConfigError(msg)
    return None


@contextmanager
def engine_session(ray: RayEngine | None) -> Iterator[None]:
    """One Ray connection for every stage of a command (started and stopped here when not already up)."""
    if ray is None:
        yield
        return
    with ray_session(ray.address):
        yield


def _run_stage(
    path: str | Path,
    stage: Stage,
    cfg: Any,
    ray: RayEngine | None,
    on_progress: OnProgress,
    shard: tuple[int, int] | None = None,
) -> StageReport:
    if ray is None:
        return run_stage(path, stage, cfg, on_progress=on_progress, shard=shard)
    if shard is not None:
        msg = "--shard splits work by hand between machines; with --engine ray the cluster does that, drop --shard"
        raise ConfigError(msg)
    return run_stage_ray(path, stage, cfg, engine=ray, on_progress=on_progress).report


def score(
    stage: str,
    path: str | Path,
    *,
    settings: Mapping[str, Any] | None = None,
    engine: EngineArg = "local",
    address: str | None = None,
    on_progress: OnProgress = ignore,
) -> StageReport:
    """Run one registered stage over a dataset, appending its columns; up-to-date partitions are skipped.

    `engine="ray"` (or a `RayEngine`) runs one Ray task per partition: the same files, bytes, skips and
    manifest as the local runner, so a run started on one engine resumes on the other.
    """
    ray = resolve_engine(engine, address)
    spec = get_stage(stage)
    cfg = cfgmod.from_mapping(spec.config, settings or {}, where=stage)
    with engine_session(ray):
        return _run_stage(path, spec, cfg, ray, on_progress)


# ---------------------------------------------------------------- dedup


@dataclass(frozen=True, slots=True)
class DedupReport:
    path: Where
    stages: tuple[StageReport, ...]
    summary: DedupSummary


_BANDING = ("threshold", "fp_weight", "fn_weight", "bands", "rows")


def dedup(
    path: str | Path,
    *,
    exact: bool = True,
    near: bool = True,
    semantic: bool = False,
    threshold: float = 0.8,
    num_perm: int = 128,
    ngram: int = 5,
    unit: str = "word",
    keep: str = "first",
    cosine: float = 0.95,
    settings: Mapping[str, Mapping[str, Any]] | None = None,
    examples: int = 3,
    engine: EngineArg = "local",
    address: str | None = None,
    on_progress: OnProgress = ignore,
) -> DedupReport:
    """Flag exact, near and (optionally) semantic duplicates and summarise them.

    Runs the stages exact_dedup; minhash + near_dedup; embed + semantic_dedup. Each flags, none drops.

    `settings` holds further options per stage name, e.g. {"near_dedup": {"verify": False}}.

    Examples
    --------
    >>> import tempfile, pathlib, json
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> rows = [{"text": "the quick brown fox jumps over the lazy dog " * 3 + str(i % 2)} for i in range(4)]
    >>> _ = (d / "t.jsonl").write_text("".join(json.dumps(r) + "\\n" for r in rows))
    >>> _ = ingest([d / "t.jsonl"], d / "ds")
    >>> s = dedup(d / "ds").summary
    >>> (s.exact_dups, s.near_clusters, s.kept)
    (2, 1, 1)
    """
    extra = {k: dict(v) for k, v in (settings or {}).items()}
    plan: list[tuple[str, dict[str, Any]]] = []
    shingling: dict[str, Any] = {}
    if exact:
        plan.append(("exact_dedup", {"keep": keep}))
    if near:
        # near_dedup verifies with the minhash stage's shingling and groups the band hashes it wrote, so
        # both get the same options (banding ones set for near_dedup alone included)
        banding = {k: v for k, v in extra.get("near_dedup", {}).items() if k in _BANDING}
        shingling = {"num_perm": num_perm, "ngram": ngram, "unit": unit, "threshold": threshold, **banding}
        shingling.update(extra.pop("minhash", {}))
        plan.append(("minhash", shingling))
        plan.append(("near_dedup", {**shingling, "keep": keep}))
    if semantic:
        plan.append(("embed", {}))
        plan.append(("semantic_dedup", {"cosine": cosine, "keep": keep}))
    if not plan:
        msg = "dedup: nothing to do; choose --exact, --near and/or --semantic"
        raise ConfigError(msg)
    ray = resolve_engine(engine, address)
    if ray is None:  # every stage's kernels load on a side thread while the first stage reads its input
        preload(tuple(k for name, _ in plan for k in get_stage(name).kernels))
    with engine_session(ray):
        reports = tuple(
            score(name, path, settings={**opts, **extra.get(name, {})}, engine=ray or "local", on_progress=on_progress)
            for name, opts in plan
        )
    ds = open_dataset(path)
    mh = None
    if near:
        mh = cfgmod.from_mapping(get_stage("minhash").config, shingling, where="minhash")
    # only the stages the summary reads: Polars reads a column of every file of a horizontal concat, and
    # an array-only file (embed's sem_emb) whole (see engine.store.runner.scanned_stages)
    summary_stages = [s for s in ("exact_dedup", "near_dedup", "semantic_dedup") if s in ds.stage_names]
    side = None
    if near:
        side_file = side_path(ds.root, "near_dedup")
        side = pl.scan_parquet(str(side_file)) if side_file.exists() else None
    return DedupReport(ds.root, reports, summarize(ds.scan(summary_stages), mh, examples, side))


# ---------------------------------------------------------------- sql and select


@dataclass(frozen=True, slots=True)
class SqlResult:
    columns: tuple[str, ...]
    rows: list[tuple[Any, ...]]
    truncated: bool


def sql(path: str | Path, query: str, *, by: str | None = None, limit: int = 50) -> SqlResult:
    """Run one SQL statement over the dataset's `scored` view (see `engine.select.scored`).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (d / "q.jsonl").write_text('{"question": "1+1?", "answer": "#### 2"}\\n')
    >>> _ = ingest([d / "q.jsonl"], d / "ds")
    >>> sql(d / "ds", "select kind, count(*) as n from scored group by kind").rows
    [('rlvr', 1)]
    """
    view = scored_view(open_dataset(path), by=by)
    try:
        cur = view.con.execute(query)
    except duckdb.Error as exc:
        msg = f"sql: {exc}".replace("\n", " ")
        raise ConfigError(msg) from exc
    if cur.description is None:
        return SqlResult((), [], False)
    rows = cur.fetchmany(limit + 1)
    return SqlResult(tuple(d[0] for d in cur.description), rows[:limit], len(rows) > limit)


@dataclass(frozen=True, slots=True)
class SelectReport:
    out: Path
    rows: int
    pool: int
    by: str | None
    steps: tuple[str, ...]
    mix: list[dict[str, Any]] | None
    seconds: float
    shards: int = 1  # P of the map/reduce the chain ran as (1: DuckDB over the whole dataset, here)


def select(
    path: str | Path,
    queries: Sequence[str],
    out: str | Path,
    *,
    params: Mapping[str, str] | None = None,
    by: str | None = None,
    ascending: bool = False,
    all_rows: bool = False,
    mix: str | Path | None = None,
    overwrite: bool = False,
    engine: EngineArg = "local",
    address: str | None = None,
) -> SelectReport:
    """Run selection queries (a chain: each reads the rows the last one chose) and write the rows as a dataset.

    With `engine="ray"` the chain runs as map/reduce over the narrow scored columns (see
    `engine.select.shards`): the same rows as the local run, which is its one-shard case.

    `by` is the score column queries rank by (default: quality_composite, else heur_score); `ascending`
    ranks low values first (e.g. kenlm_ppl). Flagged rows (duplicates, failed gate, ...) never qualify
    unless `all_rows`. `mix` is a TOML/CSV mix table for the `mix` query (default: queries/mix_default.toml).

    Examples
    --------
    >>> import tempfile, pathlib, json
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> rows = [{"instruction": f"say {i}", "output": "x" * i} for i in range(1, 6)]
    >>> _ = (d / "a.json").write_text(json.dumps(rows))
    >>> _ = ingest([d / "a.json"], d / "ds")
    >>> _ = score("length", d / "ds")
    >>> r = select(d / "ds", ["top_n"], d / "top", params={"n": "2"}, by="len_response_chars")
    >>> r.rows, sql(d / "top", "select max(len_response_chars) from scored").rows
    (2, [(5,)])
    """
    started = time.perf_counter()
    ds = open_dataset(path)
    uses_mix = any("mix" in Path(q).stem for q in queries)
    shares = read_mix(mix) if (uses_mix or mix is not None) else None
    options: dict[str, Any] = {"by": by, "ascending": ascending, "all_rows": all_rows, "mix": shares}
    ray = resolve_engine(engine, address)
    if ray is None:
        result = run_selection(ds, queries, params or {}, **options)
    else:
        result = select_on_ray(ds, queries, params or {}, engine=ray, **options)
    record = selection_record(ds, result, fingerprint=input_fingerprint(ds))
    write_selection(ds, result, Path(out), record=record, overwrite=overwrite)
    return SelectReport(
        Path(out),
        result.rows.num_rows,
        result.pool,
        result.view.sort_column,
        tuple(s.query for s in result.steps),
        record["mix"],
        time.perf_counter() - started,
        result.shards,
    )


# ---------------------------------------------------------------- info and verify


@dataclass(frozen=True, slots=True)
class ColumnInfo:
    name: str
    dtype: str
    nulls: int
    stat: str


@dataclass(frozen=True, slots=True)
class DatasetInfo:
    path: Path
    kind: str
    kinds: dict[str, int]
    rows: int
    rejected: int
    partitions: int
    rejects_by_reason: dict[str, int]
    columns: tuple[ColumnInfo, ...]
    stages: tuple[dict[str, Any], ...]


def _column_stat(s: pl.Series) -> str:
    if s.dtype.is_numeric():
        nn = s.drop_nulls()
        return f"min {nn.min():.4g}  mean {nn.mean():.4g}  max {nn.max():.4g}" if len(nn) else "all null"
    if s.dtype == pl.String:
        lens = s.drop_nulls().str.len_chars()
        return f"mean {lens.mean():.1f} chars, {s.n_unique()} distinct" if len(lens) else "all null"
    if s.dtype == pl.Boolean:
        return f"{int(s.sum())} true"
    if isinstance(s.dtype, pl.List):
        lens = s.drop_nulls().list.len()
        return f"mean {lens.mean():.2f} items" if len(lens) else "all null"
    return ""


def info(path: str | Path) -> DatasetInfo:
    """Kind, counts, columns with simple stats, and the stage log of a dataset."""
    ds = open_dataset(path)
    m = ds.manifest
    df = ds.scan().collect()
    columns = tuple(ColumnInfo(c, str(df.schema[c]), df[c].null_count(), _column_stat(df[c])) for c in df.columns)
    rej = ds.scan_rejects()
    by_reason: dict[str, int] = {}
    if rej is not None:
        counts = rej.group_by("reject_reason").len().sort("reject_reason").collect()
        by_reason = dict(zip(counts["reject_reason"].to_list(), counts["len"].to_list(), strict=True))
    return DatasetInfo(
        ds.root,
        m["kind"],
        m["kinds"],
        m["rows"],
        m["rejected"],
        len(ds.partitions),
        by_reason,
        columns,
        tuple(m.get("stages", [])),
    )


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    ok: bool
    detail: str


@dataclass(frozen=True, slots=True)
class VerifyReport:
    path: Where
    checks: tuple[Check, ...]
    stats: dict[str, float | int | None] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)


_REQUIRED_BY_KIND = {k: list(load_kind(k).required) for k in KINDS}


def verify(path: str | Path, *, max_dup_rate: float | None = None) -> VerifyReport:
    """Check a dataset's consistency and summarise it; `ok` is false when any check fails.

    Checks: partition row counts match the manifest; every partition has the canonical schema; every
    row has its kind's required fields (non-empty text); kept + rejected = rows read; every stage file
    has its partition's row count; the duplicate-id rate is at most `max_dup_rate` (when given).
    """
    ds = open_dataset(path)
    m = ds.manifest
    checks: list[Check] = []
    want = dataset_polars_schema()

    actual_rows = 0
    schema_bad: list[str] = []
    stage_bad: list[str] = []
    for part in m["partitions"]:
        lf = pl.scan_parquet(str(ds.root / part["name"]))
        n = lf.select(pl.len()).collect().item()
        actual_rows += n
        if dict(lf.collect_schema()) != dict(want):
            schema_bad.append(part["name"])
        for stage in ds.stage_names:
            f = ds.root / "stages" / stage / part["name"]
            if f.exists() and pl.scan_parquet(str(f)).select(pl.len()).collect().item() != n:
                stage_bad.append(f"{stage}/{part['name']}")
    checks.append(
        Check("row count", actual_rows == m["rows"], f"{actual_rows} rows on disk, manifest says {m['rows']}")
    )
    checks.append(
        Check(
            "schema",
            not schema_bad,
            "every partition has the canonical schema" if not schema_bad else f"off in {', '.join(schema_bad[:3])}",
        )
    )
    rej = ds.scan_rejects()
    n_rej = rej.select(pl.len()).collect().item() if rej is not None else 0
    read = sum(s["rows_read"] for s in m["sources"])
    checks.append(
        Check(
            "kept + rejected = read", actual_rows + n_rej == read, f"{actual_rows} kept + {n_rej} rejected, {read} read"
        )
    )
    checks.append(
        Check(
            "stage files",
            not stage_bad,
            "every stage file matches its partition"
            if not stage_bad
            else f"row counts off in {', '.join(stage_bad[:3])}",
        )
    )

    lf = ds.scan()
    missing = []
    for kind, required in _REQUIRED_BY_KIND.items():
        conds = [
            pl.col(c).is_null() | (pl.col(c).cast(pl.String, strict=False).str.strip_chars() == "")
            if want[c] == pl.String
            else pl.col(c).is_null()
            for c in required
        ]
        n_bad = lf.filter((pl.col("kind") == kind) & pl.any_horizontal(conds)).select(pl.len()).collect().item()
        if n_bad:
            missing.append(f"{n_bad} {kind} rows")
    bad_kind = lf.filter(~pl.col("kind").is_in(list(KINDS))).select(pl.len()).collect().item()
    if bad_kind:
        missing.append(f"{bad_kind} rows of unknown kind")
    checks.append(
        Check(
            "required fields",
            not missing,
            "every row has its kind's required fields" if not missing else "missing in " + ", ".join(missing),
        )
    )

    stats_df = lf.select(
        rows=pl.len(),
        distinct_ids=pl.col("id").n_unique(),
        bad_ids=(~pl.col("id").str.contains(r"^[0-9a-f]{32}$")).sum(),
        prompt_chars=prompt_text().str.len_chars().mean(),
        response_chars=response_text().str.len_chars().mean(),
        prompt_tokens=count_tokens(prompt_text()).mean(),
        response_tokens=count_tokens(response_text()).mean(),
    ).collect()
    stats: dict[str, float | int | None] = dict(stats_df.row(0, named=True))
    rows = stats["rows"] or 0
    dup_rate = 1 - (stats["distinct_ids"] or 0) / rows if rows else 0.0
    stats["dup_id_rate"] = dup_rate
    checks.append(Check("ids", stats["bad_ids"] == 0, f"{stats['bad_ids']} ids are not 32 hex chars"))
    if max_dup_rate is not None:
        checks.append(Check("duplicate ids", dup_rate <= max_dup_rate, f"{dup_rate:.4f} (max {max_dup_rate})"))
    base = set(want.names())
    # identifiers (hashes, cluster ordinals) are numeric but have no meaningful mean
    score_cols = [
        c
        for c, t in lf.collect_schema().items()
        if c not in base and t.is_numeric() and not c.endswith(("_hash", "_cluster"))
    ]
    flags = [c for c, t in lf.collect_schema().items() if c not in base and t == pl.Boolean]
    if flags:
        stats.update({f"share {c}": v for c, v in lf.select(pl.col(flags).mean()).collect().row(0, named=True).items()})
    if score_cols:
        stats.update(
            {f"mean {c}": v for c, v in lf.select(pl.col(score_cols).mean()).collect().row(0, named=True).items()}
        )
    return VerifyReport(ds.root, tuple(checks), stats)


# ---------------------------------------------------------------- pipelines


@dataclass(frozen=True, slots=True)
class PipelineReport:
    out: Where
    ingest: IngestReport
    stages: tuple[StageReport, ...]
    select: SelectReport | None = None
    export: Any = None
    report: Any = None


_INGEST_KEYS = ("sources", "out", "partition_rows", "codec", "format", "domain", "source", "map", "text_unit")
_SOURCE_KEYS = ("path", "format", "domain", "source", "map", "text_unit")
_TABLES = ("ingest", "stage", "select", "export", "report")
_SELECT_KEYS = ("out", "query", "params", "by", "ascending", "all_rows", "mix")
_EXPORT_KEYS = ("out", "format", "style", "train_frac", "valid_frac", "name", "skip_unsupported", "of")
_REPORT_KEYS = ("out", "bins")


def _check_keys(path: Path, table: str, given: Mapping[str, Any], keys: tuple[str, ...]) -> None:
    for key in given:
        if key not in keys:
            msg = f"{path}: [{table}] unknown key {key!r}{did_you_mean(key, keys)} (known: {', '.join(keys)})"
            raise ConfigError(msg)


def _check_table(path: Path, doc: dict[str, Any], table: str, keys: tuple[str, ...]) -> None:
    t = doc.get(table)
    if t is None:
        return
    if not isinstance(t, dict) or "out" not in t:
        msg = f'{path}: [{table}] needs out = "PATH"'
        raise ConfigError(msg)
    _check_keys(path, table, t, keys)


def load_pipeline(path: str | Path) -> dict[str, Any]:
    """Read and check a pipeline file: [ingest], [[stage]] tables in order, then optional [select], [export], [report]."""
    path = Path(path)
    if not path.exists():
        msg = f"{path}: no such pipeline file"
        raise InputError(msg)
    try:
        doc = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        msg = f"{path}: not valid TOML ({exc})"
        raise ConfigError(msg) from exc
    for key in doc:
        if key not in _TABLES:
            msg = f"{path}: unknown table [{key}]{did_you_mean(key, _TABLES)}; expected [ingest], [[stage]], [select], [export], [report]"
            raise ConfigError(msg)
    _check_table(path, doc, "select", _SELECT_KEYS)
    _check_table(path, doc, "export", _EXPORT_KEYS)
    _check_table(path, doc, "report", _REPORT_KEYS)
    if doc.get("export", {}).get("of", "selection") not in ("selection", "dataset"):
        msg = f"{path}: [export] of = {doc['export']['of']!r}: expected 'selection' or 'dataset'"
        raise ConfigError(msg)
    ing = doc.get("ingest")
    if not isinstance(ing, dict) or "sources" not in ing:
        msg = f'{path}: needs an [ingest] table with sources = [...] and out = "DIR"'
        raise ConfigError(msg)
    _check_keys(path, "ingest", ing, _INGEST_KEYS)
    for i, st in enumerate(doc.get("stage", [])):
        if "name" not in st:
            msg = f"{path}: [[stage]] #{i + 1} has no name; known stages are listed by `distill score --help`"
            raise ConfigError(msg)
        spec = get_stage(st["name"])
        cfgmod.from_mapping(
            spec.config, {k: v for k, v in st.items() if k != "name"}, where=f"{path}: [[stage]] {st['name']}"
        )
    return doc


def run(
    pipeline: str | Path,
    *,
    out: str | Path | None = None,
    engine: EngineArg = "local",
    address: str | None = None,
    on_progress: OnProgress = ignore,
) -> PipelineReport:
    """Ingest, run each [[stage]] in order, then [select], [export] and [report] when present.

    `engine` says where the stages and the selection run (see `score`, `select`); ingest, export and report
    run here, reading only the narrow columns they need.

    A rerun skips the stages that are up to date; the selection, export and report are rewritten (they take
    seconds). Paths in the file are relative to it; `out` moves the dataset, and puts the selection, export
    and report beside it under the names the file gives them. The export reads the selection when there is one
    (`of = "dataset"` exports every row); the report covers the whole dataset and shows the selection's mix.
    """
    pipeline = Path(pipeline)
    ray = resolve_engine(engine, address)
    doc = load_pipeline(pipeline)
    base = pipeline.resolve().parent
    ing = doc["ingest"]
    target = location(out) if out is not None else Path(os.path.relpath(base / ing.get("out", "out")))
    specs: list[SourceSpec] = []
    for src in ing["sources"]:
        entry = {"path": src} if isinstance(src, str) else dict(src)
        for key in entry:
            if key not in _SOURCE_KEYS:
                msg = f"{pipeline}: source {entry.get('path')!r}: unknown key {key!r}{did_you_mean(key, _SOURCE_KEYS)}"
                raise ConfigError(msg)
        specs.append(
            SourceSpec(
                path=Path(os.path.relpath(base / entry["path"])),
                format=entry.get("format", ing.get("format", "auto")),
                mapping=dict(entry.get("map", ing.get("map", {}))),
                domain=entry.get("domain", ing.get("domain")),
                source=entry.get("source", ing.get("source")),
                text_unit=entry.get("text_unit", ing.get("text_unit", "auto")),
            )
        )
    report_ = _ingest(
        specs,
        target,
        partition_rows=int(ing.get("partition_rows", 100_000)),
        codec=ing.get("codec"),
        overwrite=True,
        on_progress=on_progress,
    )

    def rel(p: str) -> Path:
        # with a local --out, the selection, export and report land beside the dataset under their own names;
        # with an object-store --out they stay where the file puts them (they are small, and written locally)
        if isinstance(target, Path) and out is not None:
            return target.parent / Path(p).name
        return Path(os.path.relpath(base / p))

    selected = None
    with engine_session(ray):  # one Ray connection for the stages and the selection
        stages = tuple(
            score(
                st["name"],
                target,
                settings={k: v for k, v in st.items() if k != "name"},
                engine=ray or "local",
                on_progress=on_progress,
            )
            for st in doc.get("stage", [])
        )
        if (sel := doc.get("select")) is not None:
            selected = select(
                target,
                list(sel.get("query", ["mix", "split"])),
                rel(sel["out"]),
                params={k: str(v) for k, v in sel.get("params", {}).items()},
                by=sel.get("by"),
                ascending=bool(sel.get("ascending", False)),
                all_rows=bool(sel.get("all_rows", False)),
                mix=Path(os.path.relpath(base / sel["mix"])) if "mix" in sel else None,
                overwrite=True,
                engine=ray or "local",
            )
    exported = None
    if (ex := doc.get("export")) is not None:
        opts = {k: v for k, v in ex.items() if k not in ("out", "of")}
        src = selected.out if selected is not None and ex.get("of", "selection") == "selection" else target
        exported = export(src, out=rel(ex["out"]), overwrite=True, on_progress=on_progress, **opts)
    reported = None
    if (rp := doc.get("report")) is not None:
        sel_dir = selected.out if selected is not None else None
        reported = report(target, out=rel(rp["out"]), bins=int(rp.get("bins", 40)), selection=sel_dir)
    return PipelineReport(target, report_, stages, selected, exported, reported)


# ---------------------------------------------------------------- export and report


def export(
    path: str | Path,
    *,
    format: str,
    out: str | Path,
    style: str = "chat",
    train_frac: float = 0.9,
    valid_frac: float = 0.05,
    name: str | None = None,
    skip_unsupported: bool = False,
    overwrite: bool = False,
    on_progress: OnProgress = ignore,
) -> ExportReport:
    """Write a dataset or selection in a trainer's format, one file per group and split (`engine.export`).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (d / "a.jsonl").write_text('{"instruction": "Say hi", "output": "hi"}\\n')
    >>> _ = ingest([d / "a.jsonl"], d / "ds")
    >>> r = export(d / "ds", format="mlx-lm", out=d / "mlx")
    >>> sorted(p.name for p in (d / "mlx").iterdir()), r.rows
    (['export.json', 'test.jsonl', 'train.jsonl', 'valid.jsonl'], 1)
    """
    return export_dataset(
        path,
        out,
        format=format,
        style=style,
        train_frac=train_frac,
        valid_frac=valid_frac,
        name=name,
        skip_unsupported=skip_unsupported,
        overwrite=overwrite,
        on_progress=on_progress,
    )


def report(
    path: str | Path, *, out: str | Path = "report.html", bins: int = 40, selection: str | Path | None = None
) -> ReportResult:
    """Write one self-contained HTML page of the dataset's scores, funnel, mix, duplicates and lengths.

    `selection` is a dir written by `select` whose mix (target vs achieved) the page shows; by default the
    dataset's own selection.json, if it is one.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (d / "a.jsonl").write_text('{"instruction": "Say hi", "output": "hi"}\\n')
    >>> _ = ingest([d / "a.jsonl"], d / "ds")
    >>> report(d / "ds", out=d / "r.html").summary["rows"]
    1
    """
    return write_report(path, out, bins=bins, selection=selection)


# ---------------------------------------------------------------- ifd and models


def parse_shard(shard: str | None) -> tuple[int, int] | None:
    """`i/n` (0 <= i < n) from the command line, or None.

    Examples
    --------
    >>> parse_shard("1/4")
    (1, 4)
    >>> parse_shard("4/4")
    Traceback (most recent call last):
    engine.errors.ConfigError: --shard '4/4': expected I/N with 0 <= I < N, e.g. --shard 0/4
    """
    if not shard:
        return None
    i, sep, n = shard.partition("/")
    if not (sep and i.strip().isdigit() and n.strip().isdigit() and int(i) < int(n)):
        msg = f"--shard {shard!r}: expected I/N with 0 <= I < N, e.g. --shard 0/4"
        raise ConfigError(msg)
    return int(i), int(n)


def ifd(
    path: str | Path,
    *,
    model: str = "smollm2",
    backend: str = "auto",
    batch_tokens: int = 4096,
    max_length: int = 1024,
    template: str = "auto",
    chunk_rows: int = 1000,
    shard: str | None = None,
    engine: EngineArg = "local",
    address: str | None = None,
    on_progress: OnProgress = ignore,
) -> StageReport:
    """Score IFD (Cherry_LLM) per row, resumable per chunk of `chunk_rows` rows and shardable by partition.

    Each finished chunk is kept in `DIR/stages/ifd/_chunks/` until the stage is complete, so a killed run
    resumes mid-partition, on either engine (on object storage, at the last whole partition). `shard="i/n"` scores partitions i, i+n, ...; copy every shard's
    `stages/ifd/` into one dataset dir and run once more without a shard to merge (nothing is rescored).

    Examples
    --------
    >>> ifd("no-such-dir", shard="2/2")
    Traceback (most recent call last):
    engine.errors.ConfigError: --shard '2/2': expected I/N with 0 <= I < N, e.g. --shard 0/4
    """
    parts = parse_shard(shard)
    ray = resolve_engine(engine, address)
    settings = {
        "model": model,
        "backend": backend,
        "batch_tokens": batch_tokens,
        "max_length": max_length,
        "template": template,
        "chunk_rows": chunk_rows,
    }
    spec = get_stage("ifd")
    cfg = cfgmod.from_mapping(spec.config, settings, where="ifd")
    with engine_session(ray):
        return _run_stage(path, spec, cfg, ray, on_progress, shard=parts)


def prepare_model(name: str, *, out: str | Path | None = None, force: bool = False) -> Path:
    """Make a packaged model ready offline (no download); returns its HF-layout dir.

    Examples
    --------
    >>> prepare_model("gpt-5")
    Traceback (most recent call last):
    engine.errors.ConfigError: models prepare: unknown model 'gpt-5' (known: smollm2)
    """
    known = {smollm2.NAME: smollm2.prepare}
    if name not in known:
        msg = f"models prepare: unknown model {name!r}{did_you_mean(name, known)} (known: {', '.join(known)})"
        raise ConfigError(msg)
    return known[name](Path(out) if out is not None else None, force=force)


# ---------------------------------------------------------------- gate and preference checks


@dataclass(frozen=True, slots=True)
class FunnelStep:
    rule: str
    failed: int
    remaining: int
    dropped: int


@dataclass(frozen=True, slots=True)
class LengthBias:
    """dpo pairs: how often the chosen answer is longer than the rejected one (a known reward-model bias)."""

    pairs: int
    chosen_longer: int
    share_chosen_longer: float | None
    median_len_ratio: float | None


@dataclass(frozen=True, slots=True)
class GateReport:
    path: Path
    stage: StageReport
    rows: int
    passed: int
    funnel: tuple[FunnelStep, ...]
    length_bias: LengthBias | None


def length_bias(path: str | Path) -> LengthBias:
    """Length bias of a dataset's dpo pairs: share of pairs whose chosen text is longer, median chars ratio.

    Examples
    --------
    >>> import tempfile, pathlib, json
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> pairs = [{"prompt": "Hi?", "chosen": "Hello there!", "rejected": "Hi"}, {"prompt": "2+2?", "chosen": "4", "rejected": "It is 4"}]
    >>> _ = (d / "p.jsonl").write_text("".join(json.dumps(p) + "\\n" for p in pairs))
    >>> _ = ingest([d / "p.jsonl"], d / "ds", format="dpo")
    >>> length_bias(d / "ds").chosen_longer
    1
    """
    row = gate_stage.length_bias(open_dataset(path).scan()).collect().row(0, named=True)
    return LengthBias(**row)


def gate(
    path: str | Path,
    *,
    settings: Mapping[str, Any] | None = None,
    engine: EngineArg = "local",
    address: str | None = None,
    on_progress: OnProgress = ignore,
) -> GateReport:
    """Run the rule gate over a dataset (flags, never drops) and compute its retention funnel per rule.

    Examples
    --------
    >>> import tempfile, pathlib, json
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> rows = [{"instruction": "Name a colour.", "output": "Blue."}, {"instruction": "Cite it.", "output": "As shown [1]."}]
    >>> _ = (d / "a.jsonl").write_text("".join(json.dumps(r) + "\\n" for r in rows))
    >>> _ = ingest([d / "a.jsonl"], d / "ds", format="alpaca")
    >>> r = gate(d / "ds", settings={"min_chars": {"response": 3}})
    >>> (r.rows, r.passed, [(s.rule, s.failed) for s in r.funnel])
    (2, 1, [('rows in', 0), ('min_chars:response', 0), ('citation', 1), ('code_fence', 0)])
    """
    spec = get_stage("gate")
    cfg = cfgmod.from_mapping(spec.config, settings or {}, where="gate")
    ray = resolve_engine(engine, address)
    with engine_session(ray):
        stage_report = _run_stage(path, spec, cfg, ray, on_progress)
    lf = open_dataset(path).scan()
    names = gate_stage.rule_names(cfg, lf.collect_schema().names())
    steps = gate_stage.funnel(lf, names).collect()
    funnel = tuple(FunnelStep(**row) for row in steps.iter_rows(named=True))
    bias = length_bias(path)
    return GateReport(
        Path(path),
        stage_report,
        funnel[0].remaining,
        funnel[-1].remaining,
        funnel,
        bias if bias.pairs else None,
    )


# ---------------------------------------------------------------- kenlm


def kenlm_train(corpus: Sequence[str | Path], out: str | Path, *, order: int = 5) -> kenlm_lm.TrainReport:
    """Train a KenLM-loadable n-gram model (interpolated modified Kneser-Ney, ARPA) on text files.

    Each non-blank line is one sentence; lines are normalised as the `kenlm` stage scores them.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (d / "c.txt").write_text("The cat sat on the mat.\\nThe dog sat on the log.\\nA cat and a dog.\\n")
    >>> r = kenlm_train([d / "c.txt"], d / "m.arpa", order=3)
    >>> (r.sentences, r.tokens, r.ngrams)
    (3, 20, (13, 18, 19))
    """
    return kenlm_lm.train(corpus, out, order=order, normalize=normalize_texts)


# ---------------------------------------------------------------- ray


def score_on_ray(
    stage: str,
    path: str | Path,
    *,
    address: str | None = None,
    settings: Mapping[str, Any] | None = None,
    cpus_per_task: float | None = None,
    shards: int = 0,
    on_progress: OnProgress = ignore,
) -> StageReport:
    """`score` with one Ray task per partition: the same files, bytes, skips and manifest as a local run.

    `address` None starts a local Ray; "auto" or "HOST:PORT" joins a cluster (the dataset dir must be
    on a path every node sees). `shards` is P for a global step that splits by key (exact dedup).

    Examples
    --------
    >>> import tempfile, pathlib, json
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (d / "t.jsonl").write_text("".join(json.dumps({"text": f"row {i} " * 5}) + "\\n" for i in range(6)))
    >>> _ = ingest([d / "t.jsonl"], d / "ds", partition_rows=2)
    >>> r = score_on_ray("length", d / "ds")  # doctest: +SKIP
    >>> (r.written, r.rows)  # doctest: +SKIP
    (3, 6)
    """
    engine = RayEngine(address=address, cpus_per_task=cpus_per_task, shards=shards)
    return score(stage, path, settings=settings, engine=engine, on_progress=on_progress)


# ---------------------------------------------------------------- chunk, generate and judge


def _prepare_generated_out(out: Path, overwrite: bool) -> Path:
    """`out/source/` for a dataset made from a generated source; refuses a dir that holds something else."""
    work = out / "source"
    if out.exists() and any(out.iterdir()) and not work.is_dir() and not overwrite:
        msg = f"{out}: is not empty and was not written by chunk/generate; choose a new --out or pass --overwrite"
        raise StoreError(msg)
    if work.is_dir():
        for p in work.glob("*.jsonl"):
            p.unlink()
    work.mkdir(parents=True, exist_ok=True)
    return work


def chunk(
    files: Sequence[str | Path],
    out: str | Path,
    *,
    chunk_size: int = 800,
    overlap: int = 100,
    domain: str | None = None,
    partition_rows: int = 100_000,
    overwrite: bool = False,
    on_progress: OnProgress = ignore,
) -> IngestReport:
    """Cut txt/markdown documents into chunks (a text dataset: chunk_id, doc, char_start, char_end in meta).

    Examples
    --------
    >>> import tempfile, pathlib, json
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (d / "doc.txt").write_text("One sentence here. " * 30)
    >>> chunk([d / "doc.txt"], d / "ch", chunk_size=200, overlap=20).kept
    4
    >>> row = sql(d / "ch", "select text, meta from scored order by _ord limit 1").rows[0]
    >>> m = json.loads(row[1]); (m["chunk_id"], m["char_start"], len(row[0]) == m["char_end"])
    ('doc#0', 0, True)
    """
    check_sizes(chunk_size, overlap)
    out = Path(out)
    work = _prepare_generated_out(out, overwrite)
    specs = []
    for i, f in enumerate(Path(p) for p in files):
        src = work / f"{i:03d}-{f.stem}.jsonl"
        if write_chunk_source(f, src, size=chunk_size, overlap=overlap):
            specs.append(SourceSpec(src, "text", {}, domain, f.stem))
    if not specs:
        msg = f"chunk: {', '.join(map(str, files))}: no text to chunk (the documents are empty)"
        raise InputError(msg)
    return _ingest(specs, out, partition_rows=partition_rows, overwrite=True, on_progress=on_progress)


@dataclass(frozen=True, slots=True)
class GenerateReport:
    out: Path
    ingest: IngestReport | None
    tally: GenerateTally
    budget_exhausted: bool
    spent: dict[str, Any]  # requests, tokens, cost (US$), by_model, limits
    client: dict[str, Any]


NO_LIMITS = Limits()
"""No request, token or money limit, and no price table."""


def _client(cache: str | Path | None, concurrency: int, limits: Limits, models: Sequence[str]) -> ChatClient:
    """One client per run: its cache, budget (requests, tokens, US$ at the price table) and concurrency."""
    budget = Budget(
        max_requests=limits.max_requests,
        max_tokens=limits.max_tokens,
        max_cost=limits.max_cost,
        prices=parse_prices(limits.price, limits.prices),
    )
    budget.check_models(models)
    return ChatClient(ResponseCache(cache or default_cache_path()), budget, concurrency=concurrency)


def generate(
    path: str | Path,
    *,
    teacher: Sequence[str],
    out: str | Path,
    pairs: int = 3,
    domain: str = ROW_DOMAIN,
    limits: Limits = NO_LIMITS,
    concurrency: int = 64,
    max_repairs: int = 2,
    temperature: float = 0.0,
    answer_tokens: int = 1024,
    cache: str | Path | None = None,
    overwrite: bool = False,
    on_progress: OnProgress = ignore,
) -> GenerateReport:
    """Ask teachers for Q&A pairs per text row and for the response of each sft row without one.

    The answers are ingested as an sft dataset at `out`; rejected answers land in
    `out/source/rejects.parquet` with a reason; usage and cost go in the manifest.

    Examples
    --------
    >>> generate("no-such-dir", teacher=["t=m@localhost"], out="x")
    Traceback (most recent call last):
    engine.errors.ConfigError: --teacher 't=m@localhost': expected NAME=MODEL@BASE_URL[:SHARE], e.g. --teacher big=qwen2.5-72b@http://127.0.0.1:8000/v1:40
    """
    teachers, shares = parse_teachers(teacher)
    template(domain)
    if pairs < 1:
        msg = f"--pairs {pairs}: expected at least 1"
        raise ConfigError(msg)
    ds = open_dataset(path)
    out = Path(out)
    client = _client(cache, concurrency, limits, [t.model for t in teachers])
    work = _prepare_generated_out(out, overwrite)
    params = {"temperature": temperature, "max_tokens": answer_tokens}
    try:
        tally, files = generate_sources(
            ds,
            work,
            teachers,
            shares,
            client,
            pairs=pairs,
            domain=domain,
            params=params,
            max_repairs=max_repairs,
            on_progress=on_progress,
        )
    finally:
        client.cache.close()
    specs = [SourceSpec(f.path, "alpaca", {}, f.domain, f.teacher) for f in files]
    usage = client.budget.usage()
    ingested = None
    if specs:
        ingested = _ingest(specs, out, overwrite=True, on_progress=on_progress)
        manifest = read_manifest(out)
        manifest["generate"] = {
            "input": str(path),
            "domain": domain,
            "tally": tally.as_dict(),
            "usage": usage,
            "teachers": [
                {"name": t.name, "model": t.model, "base_url": t.base_url, "share": s}
                for t, s in zip(teachers, shares, strict=True)
            ],
        }
        write_manifest(out, manifest)
    return GenerateReport(out, ingested, tally, client.budget.exhausted, usage, asdict(client.stats))


@dataclass(frozen=True, slots=True)
class RegenerateReport:
    path: str
    tally: RegenerateTally
    budget_exhausted: bool
    spent: dict[str, Any]
    client: dict[str, Any]


def regenerate(
    path: str | Path,
    *,
    teacher: Sequence[str],
    limits: Limits = NO_LIMITS,
    concurrency: int = 64,
    max_repairs: int = 2,
    temperature: float = 0.0,
    answer_tokens: int = 1024,
    cache: str | Path | None = None,
    on_progress: OnProgress = ignore,
) -> RegenerateReport:
    """Re-ask teachers for the rows a reviewer rejected (`distill review`); answers become `regenerated` edits.

    Examples
    --------
    >>> regenerate("no-such-dir", teacher=[])
    Traceback (most recent call last):
    engine.errors.ConfigError: generate: give at least one --teacher NAME=MODEL@BASE_URL[:SHARE]
    """
    teachers, shares = parse_teachers(teacher)
    ds = open_dataset(path)
    client = _client(cache, concurrency, limits, [t.model for t in teachers])
    try:
        tally = regenerate_rejected(
            ds,
            teachers,
            shares,
            client,
            params={"temperature": temperature, "max_tokens": answer_tokens},
            max_repairs=max_repairs,
            on_progress=on_progress,
        )
    finally:
        client.cache.close()
    usage = client.budget.usage()
    if tally.rejected:
        manifest = read_manifest(ds.root)
        manifest.setdefault("regenerate", []).append(
            {
                "at": datetime.now(UTC).isoformat(timespec="seconds"),
                "tally": tally.as_dict(),
                "usage": usage,
                "teachers": [{"name": t.name, "model": t.model, "base_url": t.base_url} for t in teachers],
            }
        )
        write_manifest(ds.root, manifest)
    return RegenerateReport(str(path), tally, client.budget.exhausted, usage, asdict(client.stats))


def judge(
    path: str | Path,
    *,
    judge: str,
    sample: float = 1.0,
    limits: Limits = NO_LIMITS,
    concurrency: int = 64,
    max_repairs: int = 2,
    answer_tokens: int = 256,
    cache: str | Path | None = None,
    on_progress: OnProgress = ignore,
) -> JudgeReport:
    """Score rows 1-10 with an LLM judge; appends judge_* columns (`engine.generate.judge`).

    Examples
    --------
    >>> judge("no-such-dir", judge="m@http://127.0.0.1:1/v1", sample=1.5)
    Traceback (most recent call last):
    engine.errors.ConfigError: --sample 1.5: expected a fraction in (0, 1]
    """
    endpoint, _ = parse_endpoint(judge, option="--judge", name="judge")
    if not 0 < sample <= 1:
        msg = f"--sample {sample}: expected a fraction in (0, 1]"
        raise ConfigError(msg)
    ds = open_dataset(path)
    client = _client(cache, concurrency, limits, [endpoint.model])
    try:
        return run_judge(
            ds,
            endpoint,
            client,
            sample=sample,
            params={"temperature": 0.0, "max_tokens": answer_tokens},
            max_repairs=max_repairs,
            on_progress=on_progress,
        )
    finally:
        client.cache.close()


# ---------------------------------------------------------------- experiment


@dataclass(frozen=True, slots=True)
class ExperimentReport:
    out: Path
    arms: dict[str, int]  # arm -> rows trained on
    holdout: int
    runs: int
    resumed: int  # runs that continued from a checkpoint
    verdicts: list[dict[str, Any]]
    report: Path
    seconds: float


def _arm_rows(ds: Any, arm: Arm, rows: int | None, exclude: pa.Table) -> pl.DataFrame:
    """The arm's selected `_ord`s in rank order (sel_rank when the chain gives one, else by id: a fixed shuffle)."""
    params = dict(arm.params)
    if rows is not None and "n" not in params and any("n" in load_query(q).params for q in arm.queries):
        params["n"] = str(rows)
    uses_mix = any("mix" in Path(q).stem for q in arm.queries)
    shares = read_mix(arm.mix) if (uses_mix or arm.mix is not None) else None
    result = run_selection(
        ds,
        arm.queries,
        params,
        by=arm.by,
        ascending=arm.ascending,
        all_rows=arm.all_rows,
        mix=shares,
        exclude_ids=exclude,
    )
    sel = pl.from_arrow(result.rows)
    assert isinstance(sel, pl.DataFrame)
    ids = result.view.con.sql("select _ord, id from scored_all").pl()
    sel = sel.join(ids, on="_ord", how="left")
    return sel.sort("sel_rank") if "sel_rank" in sel.columns else sel.sort("id", "_ord")


def _external_eval(path: Path, out: Path, on_progress: OnProgress) -> Any:
    if (path / "manifest.json").exists():
        return open_dataset(path)
    target = out / "external" / path.stem
    ingest([path], target, overwrite=True, on_progress=on_progress)
    return open_dataset(target)


def experiment(
    path: str | Path, *, out: str | Path | None = None, workers: int | None = None, on_progress: OnProgress = ignore
) -> ExperimentReport:
    """Train the same model on each arm's selection (same size, same budget, every seed) and judge each arm.

    Eval rows are held out of the pool (by a hash of id) before any arm is drawn, and their ids are removed from
    every arm; external eval sets are used whole. Results go to `out` (default: beside the pool,
    `experiment-NAME/`): curves.parquet, metrics.parquet, verdicts.parquet, experiment.json and report.html.
    A rerun skips finished runs and resumes unfinished ones from their last checkpoint.

    Examples
    --------
    >>> experiment("no-such.toml")
    Traceback (most recent call last):
    engine.errors.ConfigError: experiment: no-such.toml: no such file; see experiments/ for examples
    """
    started = time.perf_counter()
    plan = load_experiment(path)
    if not (plan.pool / "manifest.json").exists():
        if plan.pipeline is None:
            msg = f"{plan.path}: [pool] dir {plan.pool} is not a dataset; run its pipeline or set [pool] pipeline"
            raise ConfigError(msg)
        run(plan.pipeline, out=plan.pool, on_progress=on_progress)
    ds = open_dataset(plan.pool)
    target = Path(out) if out is not None else plan.pool.parent / f"experiment-{plan.name}"
    (target / "data").mkdir(parents=True, exist_ok=True)
    model_dir = resolve_model(plan.model)
    encoder = PairEncoder(model_dir, plan.template)  # type: ignore[arg-type]
    held = run_selection(ds, ["holdout"], {"n": str(plan.eval.holdout), "salt": plan.eval.salt})
    held_rows = read_rows(ds, held.rows["_ord"].to_numpy())
    exclude = pa.table({"id": held_rows["id"].unique().to_arrow()})

    drawn = {arm.name: _arm_rows(ds, arm, plan.rows, exclude) for arm in plan.arms}
    size = plan.rows or min(d.height for d in drawn.values())
    short = {name: d.height for name, d in drawn.items() if d.height < size}
    if (short and plan.equal_size) or size == 0 or any(d.height == 0 for d in drawn.values()):
        msg = f"{plan.path}: arms {short or {n: d.height for n, d in drawn.items()}} selected fewer than rows = {size}; lower `rows` or widen those arms"
        raise ConfigError(msg)
    arm_pairs, arm_rows = {}, {}
    for name, d in drawn.items():
        take = d["_ord"].head(size) if plan.equal_size else d["_ord"]
        arm_rows[name] = take.len()
        arm_pairs[name] = save_rows(read_rows(ds, take.to_numpy()), encoder, target / "data" / name)

    evals: list[EvalSet] = []
    sets = [("holdout", held_rows)] + [
        (f"external:{p.stem}", read_rows(_external_eval(p, target, on_progress))) for p in plan.eval.external
    ]
    eval_hash = []
    for name, rows in sets:
        file = target / "data" / f"eval-{name.replace(':', '-')}"
        pairs = save_rows(rows, encoder, file)
        has_answers = rows["final"].is_not_null().any()
        accuracy = plan.eval.accuracy == "on" or (plan.eval.accuracy == "auto" and has_answers)
        evals.append(EvalSet(name, file.with_suffix(".npz"), file.with_suffix(".parquet"), accuracy))
        eval_hash.append(f"{name}:{pairs.digest()}:{accuracy}")

    eos, pad = special_ids(model_dir)
    identity = {"spec": spec_dict(plan.spec), "model": model_hash(model_dir), "template": encoder.template}
    common = xxhash.xxh64_hexdigest(json.dumps({**identity, "evals": eval_hash}, sort_keys=True).encode())
    jobs = [
        Job(
            arm=arm.name,
            seed=seed,
            run_dir=target / "runs" / arm.name / f"seed-{seed}",
            model_dir=model_dir,
            spec=plan.spec,
            train=target / "data" / f"{arm.name}.npz",
            evals=tuple(evals),
            key=f"{common}:{arm_pairs[arm.name].digest()}:{seed}:{plan.eval.generate_tokens}",
            eos=eos,
            pad=pad,
            generate_tokens=plan.eval.generate_tokens,
            max_accuracy_rows=plan.eval.max_accuracy_rows,
        )
        for arm in plan.arms
        for seed in plan.seeds
    ]
    results = run_jobs(jobs, workers or plan.workers, on_progress)
    curve_df, metric_df = exp_verdict.curves(results), exp_verdict.metrics(results)
    order = {a.name: i for i, a in enumerate(plan.arms)}
    verdict_df = exp_verdict.verdicts(metric_df, plan.baseline, plan.draws_of_baseline()).sort(
        "eval", "metric", pl.col("arm").replace_strict(order, return_dtype=pl.Int64)
    )
    for name, df in (("curves", curve_df), ("metrics", metric_df), ("verdicts", verdict_df)):
        df.write_parquet(target / f"{name}.parquet")
    arms_info = [
        {
            "name": a.name,
            "rows": arm_rows[a.name],
            "queries": " → ".join(a.queries),
            "params": json.dumps(a.params),
            "by": a.by or "",
        }
        for a in plan.arms
    ]
    data = {
        "name": plan.name,
        "pool": str(plan.pool),
        "holdout": held_rows.height,
        "model": plan.model,
        "method": plan.spec.method if plan.spec.init == "pretrained" else "random proxy (cannot judge data quality)",
        "seeds": list(plan.seeds),
        "baseline": plan.baseline,
        "spec": spec_dict(plan.spec),
        "arms": arms_info,
        "verdicts": verdict_df.to_dicts(),
        "metrics": metric_df.to_dicts(),
        "curves": curve_df.select("arm", "seed", "step", "tokens", "loss").to_dicts(),
    }
    (target / "experiment.json").write_text(json.dumps({k: v for k, v in data.items() if k != "curves"}, indent=1))
    page = write_experiment_report(data, target / "report.html")
    return ExperimentReport(
        target,
        arm_rows,
        held_rows.height,
        len(results),
        sum(1 for r in results if r.get("resumed_at")),
        data["verdicts"],
        page,
        time.perf_counter() - started,
    )
