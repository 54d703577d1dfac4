"""The page of `distill experiment`: train-loss curves per arm and seed, eval metrics with their seed spread,
and the verdict of each arm against the baseline; same machinery (offline plotly.js, embedded JSON) as the
dataset report."""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

import plotly.graph_objects as go

from engine.report.build import figure_div, html_page, html_table, write_page

_COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf")
VERDICT_COLS = ["eval", "metric", "arm", "mean", "spread", "diff", "base_spread", "draw_spread", "verdict"]


def _curves(curves: list[dict[str, Any]], arms: list[str]) -> go.Figure:
    fig = go.Figure()
    for a, arm in enumerate(arms):
        seeds = sorted({c["seed"] for c in curves if c["arm"] == arm})
        for s in seeds:
            pts = [c for c in curves if c["arm"] == arm and c["seed"] == s]
            fig.add_trace(
                go.Scatter(
                    x=[p["step"] for p in pts],
                    y=[p["loss"] for p in pts],
                    mode="lines",
                    name=f"{arm} seed {s}",
                    line={"color": _COLORS[a % len(_COLORS)], "dash": "solid" if s == seeds[0] else "dot"},
                )
            )
    fig.update_layout(title="train loss (answer tokens)", xaxis_title="step", yaxis_title="loss", height=380)
    return fig


def _metric(verdicts: list[dict[str, Any]], metrics: list[dict[str, Any]], ev: str, metric: str) -> go.Figure:
    rows = [v for v in verdicts if v["eval"] == ev and v["metric"] == metric]
    fig = go.Figure()
    fig.add_trace(
        go.Bar(
            x=[r["arm"] for r in rows],
            y=[r["mean"] for r in rows],
            marker_color=[_COLORS[i % len(_COLORS)] for i in range(len(rows))],
            name="mean over seeds",
        )
    )
    pts = [m for m in metrics if m["eval"] == ev and m.get(metric) is not None]
    fig.add_trace(
        go.Scatter(
            x=[p["arm"] for p in pts],
            y=[p[metric] for p in pts],
            mode="markers",
            name="each seed",
            marker={"color": "#222"},
        )
    )
    values = [p[metric] for p in pts]
    if values:
        lo, hi = min(values), max(values)
        pad = (hi - lo) * 0.5 or abs(hi) * 0.01 or 0.01
        fig.update_yaxes(range=[lo - pad, hi + pad])
    fig.update_layout(title=f"{ev}: {metric} (lower is better)" if metric == "loss" else f"{ev}: {metric}", height=380)
    return fig


def render_experiment(data: dict[str, Any]) -> str:
    arms = [a["name"] for a in data["arms"]]
    parts = [
        f"<h1>distill experiment: {html.escape(data['name'])}</h1>",
        f'<p class="note">pool {html.escape(data["pool"])} · {data["holdout"]} eval rows held out before any arm '
        f"was drawn · model {html.escape(data['model'])} ({html.escape(data['method'])}) · seeds {data['seeds']} · "
        f"baseline arm <b>{html.escape(data['baseline'])}</b></p>",
        "<h2>Verdicts</h2>",
        '<p class="note">better/worse: every seed\'s paired difference with the baseline has one sign and the mean '
        "difference exceeds the seed spread (max - min) of both arms. draw_spread: how far apart the random arms "
        "are (a different random draw alone).</p>",
        html_table(data["verdicts"], VERDICT_COLS, "verdicts"),
        "<h2>Arms</h2>",
        html_table(data["arms"], ["name", "rows", "queries", "params", "by"], "arms"),
        "<h2>Training</h2>",
        figure_div(_curves(data["curves"], arms)),
        "<h2>Evaluation</h2>",
        '<div class="grid">',
    ]
    for ev in sorted({v["eval"] for v in data["verdicts"]}):
        for metric in ("loss", "accuracy"):
            if any(v["eval"] == ev and v["metric"] == metric for v in data["verdicts"]):
                parts.append(figure_div(_metric(data["verdicts"], data["metrics"], ev, metric)))
    parts.append("</div>")
    parts.append(
        html_table(data["metrics"], ["arm", "seed", "eval", "loss", "ppl", "accuracy", "train_seconds"], "runs")
    )
    return html_page("distill experiment", "".join(parts), "distill-experiment", data)


def write_experiment_report(data: dict[str, Any], out: Path) -> Path:
    write_page(out, render_experiment(data))
    return out
