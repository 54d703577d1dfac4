"""`distill gate DIR`: run the rule gate and print its retention funnel per rule."""

from __future__ import annotations

from typing import Annotated

import typer

from engine import api
from engine.cli.params import Address, DatasetDir, Engine, Quiet, Settings
from engine.cli.progress import progress_bars
from engine.config import parse_sets

app = typer.Typer()

Report = Annotated[bool, typer.Option("--report", help="Print the retention funnel per rule and the dpo length bias.")]


def format_report(r: api.GateReport) -> list[str]:
    """The funnel as aligned lines: rule, rows failing it, rows left after it and every earlier rule."""
    lines = [f"{'rule':<24} {'failed':>9} {'remaining':>10} {'dropped':>9} {'kept':>7}"]
    for step in r.funnel:
        kept = step.remaining / r.rows if r.rows else 0.0
        lines.append(f"{step.rule:<24} {step.failed:>9,} {step.remaining:>10,} {step.dropped:>9,} {kept:>7.1%}")
    b = r.length_bias
    if b is not None and b.share_chosen_longer is not None:
        ratio = f"{b.median_len_ratio:.2f}" if b.median_len_ratio is not None else "n/a"
        lines.append(
            f"length bias: chosen longer than rejected in {b.share_chosen_longer:.1%} of {b.pairs:,} pairs "
            f"(median chosen/rejected chars {ratio})"
        )
    return lines


@app.command(
    epilog=("Example:\n\n  distill gate out/sample --set min_words=response=5 --set safety_words=kill,bomb --report")
)
def gate(
    path: DatasetDir,
    set: Settings = None,
    report: Report = False,
    engine: Engine = "local",
    address: Address = None,
    quiet: Quiet = False,
) -> None:
    """Flag rows that fail the gate's rules (gate_pass, gate_reasons); rows are never dropped."""
    with progress_bars(quiet) as on_progress:
        r = api.gate(path, settings=parse_sets(set or []), engine=engine, address=address, on_progress=on_progress)
    failed = r.rows - r.passed
    typer.echo(f"gate: {r.passed:,} of {r.rows:,} rows pass, {failed:,} flagged ({r.stage.seconds:.2f}s)")
    if report:
        for line in format_report(r):
            typer.echo(line)
