"""`distill dedup DIR`: flag exact, near and semantic duplicates, then print what was found."""

from __future__ import annotations

from typing import Annotated

import typer

from engine import api
from engine.cli.params import Address, DatasetDir, Engine, Quiet, Settings
from engine.cli.progress import progress_bars
from engine.config import parse_sets
from engine.errors import ConfigError

app = typer.Typer()

EXAMPLE = """Example:

  distill dedup out/sample                          # exact + near (MinHash/LSH, Jaccard 0.8)

  distill dedup out/sample --near --threshold 0.7 --keep longest

  distill dedup out/sample --near --set near_dedup.verify=estimate --set minhash.unit=char

  distill dedup out/big --engine ray --address auto     # LSH buckets as Ray map/reduce tasks
"""


def _stage_sets(pairs: list[str]) -> dict[str, dict[str, str]]:
    out: dict[str, dict[str, str]] = {}
    for key, value in parse_sets(pairs).items():
        stage, dot, option = key.partition(".")
        if not dot or not option:
            msg = f"--set {key}={value}: expected STAGE.OPTION=VALUE, e.g. --set near_dedup.verify=false"
            raise ConfigError(msg)
        out.setdefault(stage, {})[option] = value
    return out


@app.command(epilog=EXAMPLE)
def dedup(
    path: DatasetDir,
    exact: Annotated[bool, typer.Option("--exact", help="Exact duplicates of the normalised text.")] = False,
    near: Annotated[bool, typer.Option("--near", help="Near duplicates by MinHash/LSH.")] = False,
    semantic: Annotated[bool, typer.Option("--semantic", help="Semantic duplicates by embedding cosine.")] = False,
    threshold: Annotated[float, typer.Option(help="Near: Jaccard similarity that makes two rows duplicates.")] = 0.8,
    num_perm: Annotated[int, typer.Option(help="Near: MinHash permutations per signature.")] = 128,
    ngram: Annotated[int, typer.Option(help="Near: words (or characters) per shingle.")] = 5,
    cosine: Annotated[float, typer.Option(help="Semantic: cosine similarity that makes two rows duplicates.")] = 0.95,
    keep: Annotated[
        str, typer.Option(help="Which row of a group is kept: first (smallest id), longest, score:COL.")
    ] = "first",
    examples: Annotated[int, typer.Option(help="Example near-duplicate pairs to print.")] = 3,
    set: Settings = None,
    engine: Engine = "local",
    address: Address = None,
    quiet: Quiet = False,
) -> None:
    """Flag duplicates (never drops rows). With no --exact/--near/--semantic, runs exact and near.

    Adds exact_hash/exact_dup_of, mh_sig/mh_band/mh_cluster/mh_cluster_size/dup_keep and sem_cluster/sem_keep.
    A rerun with the same options skips what is up to date.
    """
    if not (exact or near or semantic):
        exact = near = True
    with progress_bars(quiet) as on_progress:
        report = api.dedup(
            path,
            exact=exact,
            near=near,
            semantic=semantic,
            threshold=threshold,
            num_perm=num_perm,
            ngram=ngram,
            keep=keep,
            cosine=cosine,
            settings=_stage_sets(set or []),
            examples=examples,
            engine=engine,
            address=address,
            on_progress=on_progress,
        )
    s = report.summary
    seconds = sum(r.seconds for r in report.stages)
    typer.echo(f"{s.rows} rows in {seconds:.2f}s: {s.kept} kept, {s.rows - s.kept} flagged as duplicates")
    if s.exact_dups is not None:
        typer.echo(f"  exact: {s.exact_dups} rows duplicate an earlier kept row")
    if s.near_clusters is not None:
        typer.echo(f"  near:  {s.near_clusters} clusters, {s.near_dups} rows not kept (threshold {threshold})")
        if s.size_histogram:
            sizes = ", ".join(f"{k}: {v}" for k, v in s.size_histogram.items())
            typer.echo(f"  cluster sizes (members: clusters): {sizes}")
    if s.semantic_dups is not None:
        typer.echo(f"  semantic: {s.semantic_dups} rows not kept (cosine {cosine})")
    for ex in s.examples:
        typer.echo(f"  pair {ex.kept_id[:12]} ~ {ex.dup_id[:12]}  true Jaccard {ex.jaccard:.3f}")
        typer.echo(f"    kept: {_clip(ex.kept_text)}")
        typer.echo(f"    dup:  {_clip(ex.dup_text)}")


def _clip(text: str, width: int = 100) -> str:
    one = " ".join(text.split())
    return one if len(one) <= width else one[: width - 1] + "…"
