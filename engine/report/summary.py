"""The numbers behind the report, aggregated columnarly: nothing row-sized reaches the page.

Every histogram is (edges, counts) over [min, max] in equal bins computed by Polars group-bys, so a
million rows cost a few narrow scans. The funnel walks the stage log in order: a row leaves at the first
stage that flags it (a `*_reason` set, `exact_dup_of` set, or a `*_keep`/`*_pass`/`*_valid` false).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import polars as pl

from engine.schema import dataset_polars_schema
from engine.stages.views import prompt_text, response_text
from engine.store.dataset import Dataset

SELECTION = "selection.json"
_ID_SUFFIXES = ("_hash", "_cluster", "_ord", "src_line")
_FLAG_BOOL_SUFFIXES = ("_keep", "_pass", "_valid")


def score_columns(schema: pl.Schema) -> tuple[list[str], list[str]]:
    """(numeric score columns, boolean columns) among the appended (non-canonical) columns."""
    base = set(dataset_polars_schema().names()) | {"split"}
    numeric = [c for c, t in schema.items() if c not in base and t.is_numeric() and not c.endswith(_ID_SUFFIXES)]
    flags = [c for c, t in schema.items() if c not in base and t == pl.Boolean]
    return numeric, flags


def histograms(lf: pl.LazyFrame, exprs: dict[str, pl.Expr], bins: int) -> list[dict[str, Any]]:
    """Equal-width histograms of several expressions: two passes over only the columns they read."""
    if not exprs:
        return []
    finite = {k: e.cast(pl.Float64).filter(e.cast(pl.Float64).is_finite()) for k, e in exprs.items()}
    stats = (
        lf.select(
            *[e.min().alias(f"{k}\x1fmin") for k, e in finite.items()],
            *[e.max().alias(f"{k}\x1fmax") for k, e in finite.items()],
            *[e.mean().alias(f"{k}\x1fmean") for k, e in finite.items()],
            *[e.len().alias(f"{k}\x1fn") for k, e in finite.items()],
        )
        .collect()
        .row(0, named=True)
    )
    parts = []
    for k, e in finite.items():
        lo, hi = stats[f"{k}\x1fmin"], stats[f"{k}\x1fmax"]
        if lo is None:
            continue
        width = (hi - lo) / bins if hi > lo else 1.0
        idx = ((e - lo) / width).floor().clip(0, bins - 1).cast(pl.Int64)
        parts.append((k, lo, width, idx.alias("b").value_counts(name="n").implode().alias(k)))
    counted = lf.select([p[3] for p in parts]).collect().row(0, named=True) if parts else {}
    out = []
    for k, lo, width, _ in parts:
        counts = [0] * bins
        for item in counted[k]:
            counts[item["b"]] = item["n"]
        out.append(
            {
                "column": k,
                "count": stats[f"{k}\x1fn"],
                "min": lo,
                "max": stats[f"{k}\x1fmax"],
                "mean": stats[f"{k}\x1fmean"],
                "edges": [lo + i * width for i in range(bins + 1)],
                "counts": counts,
            }
        )
    return out


def flag_expr(column: str, dtype: pl.DataType) -> pl.Expr | None:
    """True where `column` marks a row as dropped by a stage; None when the column is no such flag."""
    if column == "exact_dup_of" or (column.endswith("_reason") and dtype == pl.String):
        return pl.col(column).is_not_null()
    if dtype == pl.Boolean and column.endswith(_FLAG_BOOL_SUFFIXES):
        return pl.col(column).not_().fill_null(False)
    return None


def funnel(lf: pl.LazyFrame, ds: Dataset, schema: pl.Schema) -> list[dict[str, Any]]:
    """Rows left after each stage, in stage-log order, and how many each stage flags on its own."""
    steps: list[tuple[str, pl.Expr]] = []
    for entry in ds.manifest.get("stages", []):
        cols = [c for c in entry.get("columns", []) if c in schema]
        flags = [(c, f) for c in cols if (f := flag_expr(c, schema[c])) is not None]
        if flags:
            steps.append(
                (f"{entry['stage']} ({', '.join(c for c, _ in flags)})", pl.any_horizontal([f for _, f in flags]))
            )
    if not steps:
        return [{"step": "input", "flagged": 0, "rows": ds.manifest["rows"]}]
    row = (
        lf.select(
            pl.len().alias("input"),
            *[e.sum().alias(f"flag{i}") for i, (_, e) in enumerate(steps)],
            *[(~pl.any_horizontal([e for _, e in steps[: i + 1]])).sum().alias(f"left{i}") for i in range(len(steps))],
        )
        .collect()
        .row(0, named=True)
    )
    out = [{"step": "input", "flagged": 0, "rows": row["input"]}]
    out += [{"step": name, "flagged": row[f"flag{i}"], "rows": row[f"left{i}"]} for i, (name, _) in enumerate(steps)]
    return out


def reasons(lf: pl.LazyFrame, schema: pl.Schema) -> list[dict[str, Any]]:
    """Rows per reason code: every `*_reason` column, and each entry of a `gate_reasons` list."""
    out: list[dict[str, Any]] = []
    for c, t in schema.items():
        if c.endswith("_reason") and t == pl.String:
            vc = lf.select(pl.col(c).alias("reason")).drop_nulls().group_by("reason").len()
        elif c.endswith("_reasons") and t == pl.List(pl.String):
            vc = lf.select(pl.col(c).explode().alias("reason")).drop_nulls().group_by("reason").len()
        else:
            continue
        for reason, n in vc.sort("len", "reason", descending=[True, False]).collect().iter_rows():
            out.append({"column": c, "reason": reason, "rows": n})
    return out


def mix(lf: pl.LazyFrame, root: Path, rows: int) -> dict[str, Any]:
    """Target vs achieved from selection.json's mix; else the domain counts as achieved shares."""
    sel_path = root / SELECTION
    sel = json.loads(sel_path.read_text()) if sel_path.exists() else None
    if sel and sel.get("mix"):
        total = sum(m["achieved_rows"] for m in sel["mix"]) or 1
        return {
            "source": SELECTION,
            "rows": [{**m, "achieved_share": m["achieved_rows"] / total} for m in sel["mix"]],
        }
    # the domain stage's label, where it ran, is the domain the mix queries see
    domain = pl.coalesce("domain_name", "domain") if "domain_name" in lf.collect_schema() else pl.col("domain")
    counts = (
        lf.select(domain.fill_null("(none)").alias("domain"))
        .group_by("domain")
        .len()
        .sort("len", "domain", descending=[True, False])
        .collect()
    )
    return {
        "source": "domain counts",
        "rows": [
            {"domain": d, "achieved_rows": n, "achieved_share": n / rows if rows else 0.0}
            for d, n in counts.iter_rows()
        ],
    }


def duplicates(lf: pl.LazyFrame, schema: pl.Schema) -> dict[str, Any]:
    """Exact groups, near-duplicate clusters (with their size distribution) and rows each dedup drops."""
    out: dict[str, Any] = {}
    if "exact_dup_of" in schema:
        r = lf.select(
            dups=pl.col("exact_dup_of").is_not_null().sum(), groups=pl.col("exact_dup_of").drop_nulls().n_unique()
        ).collect()
        out["exact"] = {"duplicate_rows": r["dups"][0], "groups": r["groups"][0]}
    if "mh_cluster" in schema and "mh_cluster_size" in schema:
        clusters = (
            lf.filter(pl.col("mh_cluster_size") > 1)
            .group_by("mh_cluster")
            .agg(size=pl.col("mh_cluster_size").first())
            .group_by("size")
            .agg(clusters=pl.len())
            .sort("size")
            .collect()
        )
        out["near"] = {
            "clusters": int(clusters["clusters"].sum()),
            "rows_in_clusters": int((clusters["size"].cast(pl.Int64) * clusters["clusters"]).sum()),
            "sizes": [{"size": s, "clusters": n} for s, n in clusters.iter_rows()],
        }
    for col, key in (("dup_keep", "near"), ("sem_keep", "semantic")):
        if col in schema:
            dropped = lf.select(pl.col(col).not_().fill_null(False).sum()).collect().item()
            out.setdefault(key, {})["flagged_rows"] = dropped
    return out


def lengths(lf: pl.LazyFrame, bins: int) -> list[dict[str, Any]]:
    """Chars and words of the per-kind prompt and response views."""
    exprs = {}
    for view, text in (("prompt", prompt_text()), ("response", response_text())):
        exprs[f"{view} chars"] = text.str.len_chars()
        exprs[f"{view} words"] = text.str.count_matches(r"\S+")
    return histograms(lf, exprs, bins)


def summarize(ds: Dataset, *, bins: int = 40, selection: Path | None = None) -> dict[str, Any]:
    """Every number the page shows, as plain JSON-able values."""
    lf = ds.scan()
    schema = lf.collect_schema()
    numeric, flags = score_columns(schema)
    rows = lf.select(pl.len()).collect().item()
    kinds = lf.group_by("kind").len().sort("kind").collect()
    flag_rows = []
    if flags:
        r = (
            lf.select(
                *[pl.col(c).sum().alias(f"{c}\x1ft") for c in flags],
                *[pl.col(c).not_().sum().alias(f"{c}\x1ff") for c in flags],
                *[pl.col(c).null_count().alias(f"{c}\x1fn") for c in flags],
            )
            .collect()
            .row(0, named=True)
        )
        flag_rows = [
            {"column": c, "true": r[f"{c}\x1ft"], "false": r[f"{c}\x1ff"], "null": r[f"{c}\x1fn"]} for c in flags
        ]
    sel_root = selection if selection is not None else ds.root
    sel_path = sel_root / SELECTION
    return {
        "dataset": str(ds.root),
        "rows": rows,
        "kinds": dict(kinds.iter_rows()),
        "stages": [s["stage"] for s in ds.manifest.get("stages", [])],
        "selection": json.loads(sel_path.read_text()) if sel_path.exists() else None,
        "scores": histograms(lf, {c: pl.col(c) for c in numeric}, bins),
        "flags": flag_rows,
        "funnel": funnel(lf, ds, schema),
        "reasons": reasons(lf, schema),
        "mix": mix(lf, sel_root, rows),
        "duplicates": duplicates(lf, schema),
        "lengths": lengths(lf, bins),
    }
