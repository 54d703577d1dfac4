"""`distill experiment EXP.toml`: train the same small model on each selection and say whether it beats random."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from engine import api
from engine.cli.params import Quiet
from engine.cli.progress import progress_bars

app = typer.Typer()

EXAMPLE = """Example:

  distill experiment experiments/smoke.toml               # ~2 min: random proxy model, checks the wiring

  distill experiment experiments/ifd_vs_random.toml       # ~1 h on 2 cores: SmolLM2-135M LoRA, 3 arms x 2 seeds
"""


def _fmt(v: object, signed: bool = False) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:+.4f}" if signed and v != 0 else f"{v:.4f}"
    return str(v)


@app.command(epilog=EXAMPLE)
def experiment(
    exp: Annotated[Path, typer.Argument(help="The experiment file: pool, arms, model, training budget, seeds, eval.")],
    out: Annotated[
        Path | None, typer.Option(help="Where results go (default: experiment-NAME beside the pool).")
    ] = None,
    workers: Annotated[
        int | None, typer.Option(help="Training processes at once (default: the file's `workers`, else one per core).")
    ] = None,
    quiet: Quiet = False,
) -> None:
    """Hold out eval rows, draw each arm, train every arm with every seed, evaluate, and print the verdicts.

    A rerun skips finished runs and resumes a killed one from its last checkpoint.
    """
    with progress_bars(quiet) as on_progress:
        report = api.experiment(exp, out=out, workers=workers, on_progress=on_progress)
    typer.echo(
        f"experiment: {len(report.arms)} arms x {report.runs // len(report.arms)} seeds, "
        f"{next(iter(report.arms.values()))} rows per arm, {report.holdout} eval rows held out, "
        f"{report.resumed} run(s) resumed, {report.seconds:.1f}s"
    )
    cols = ("eval", "metric", "arm", "mean", "spread", "diff", "base_spread", "draw_spread", "verdict")
    rows = [[str(v["eval"]), str(v["metric"]), str(v["arm"])] for v in report.verdicts]
    for r, v in zip(rows, report.verdicts, strict=True):
        r += [f"{v['mean']:.4f}", f"{v['spread']:.4f}", _fmt(v["diff"], signed=True), _fmt(v["base_spread"])]
        r += [_fmt(v["draw_spread"]), str(v["verdict"])]
    widths = [max(len(c), *(len(r[i]) for r in rows)) for i, c in enumerate(cols)]
    typer.echo("  ".join(c.ljust(w) for c, w in zip(cols, widths, strict=True)))
    for r in rows:
        typer.echo("  ".join(x.ljust(w) for x, w in zip(r, widths, strict=True)))
    typer.echo(f"report: {report.report}")
