"""Plotly figures from the report summary (pre-binned bars: the page carries counts, never rows)."""

from __future__ import annotations

import itertools
from typing import Any

import plotly.graph_objects as go

_LAYOUT: dict[str, Any] = {
    "template": "plotly_white",
    "height": 280,
    "margin": {"l": 50, "r": 20, "t": 40, "b": 40},
    "font": {"size": 11},
}


def _fig(title: str, **layout: Any) -> go.Figure:
    return go.Figure(layout={**_LAYOUT, "title": {"text": title}, **layout})


def histogram(h: dict[str, Any], *, log_y: bool = False) -> go.Figure:
    """A histogram from (edges, counts), bars centred on their bins."""
    edges, counts = h["edges"], h["counts"]
    centres = [(a + b) / 2 for a, b in itertools.pairwise(edges)]
    fig = _fig(f"{h['column']} (n={h['count']:,}, mean {h['mean']:.4g})", bargap=0.02)
    fig.add_bar(x=centres, y=counts, width=edges[1] - edges[0], marker_color="#4c78a8", name=h["column"])
    if log_y:
        fig.update_yaxes(type="log")
    return fig


def funnel(steps: list[dict[str, Any]]) -> go.Figure:
    fig = _fig("Retention by stage (rows left after each stage's flags)", height=120 + 40 * len(steps))
    fig.add_trace(
        go.Funnel(y=[s["step"] for s in steps], x=[s["rows"] for s in steps], textinfo="value+percent initial")
    )
    return fig


def reasons(rows: list[dict[str, Any]]) -> go.Figure:
    labels = [f"{r['column']}: {r['reason']}" for r in rows]
    fig = _fig("Rows per reason code", height=120 + 28 * len(rows))
    fig.add_bar(y=labels, x=[r["rows"] for r in rows], orientation="h", marker_color="#e45756")
    return fig


def flags(rows: list[dict[str, Any]]) -> go.Figure:
    fig = _fig("Boolean columns", barmode="stack", height=120 + 40 * len(rows))
    names = [r["column"] for r in rows]
    for key, colour in (("true", "#54a24b"), ("false", "#e45756"), ("null", "#bab0ac")):
        fig.add_bar(y=names, x=[r[key] for r in rows], name=key, orientation="h", marker_color=colour)
    return fig


def mix(m: dict[str, Any]) -> go.Figure:
    rows = m["rows"]
    domains = [r["domain"] for r in rows]
    fig = _fig(f"Mix composition ({m['source']})", barmode="group")
    if any("target_share" in r for r in rows):
        fig.add_bar(x=domains, y=[r.get("target_share", 0) for r in rows], name="target share", marker_color="#bab0ac")
    fig.add_bar(x=domains, y=[r["achieved_share"] for r in rows], name="achieved share", marker_color="#4c78a8")
    fig.update_yaxes(tickformat=".0%")
    return fig


def cluster_sizes(sizes: list[dict[str, Any]]) -> go.Figure:
    fig = _fig("Near-duplicate clusters by size")
    fig.add_bar(x=[s["size"] for s in sizes], y=[s["clusters"] for s in sizes], marker_color="#f58518")
    fig.update_xaxes(title_text="rows in cluster", dtick=1)
    fig.update_yaxes(title_text="clusters")
    return fig
