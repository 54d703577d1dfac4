"""`distill report`: one self-contained HTML page (plotly.js inlined once, so it opens offline).

Plotly over Altair: its wheel carries plotly.js, so an offline page needs no extra package (Altair
needs vl-convert or three CDN scripts to inline Vega). plotly.js (~4.8 MB) goes in one <script>; each
chart is a few KB of JSON. The summary the charts come from is embedded as JSON
(`<script id="distill-summary">`), so tests and tools read the same numbers the page shows.
"""

from __future__ import annotations

import html
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import plotly.io as pio
import plotly.offline

from engine.errors import ConfigError
from engine.report import charts
from engine.report.summary import summarize
from engine.store.dataset import open_dataset

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;margin:24px;color:#222;background:#fff}
h1{font-size:22px}h2{font-size:18px;margin-top:32px;border-bottom:1px solid #ddd}
.grid{display:grid;grid-template-columns:repeat(2,minmax(0,1fr));gap:12px}
table{border-collapse:collapse;font-size:13px;margin:8px 0}td,th{border:1px solid #ddd;padding:3px 8px;text-align:right}
th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}.note{color:#666;font-size:13px}
"""


@dataclass(frozen=True, slots=True)
class ReportResult:
    out: Path
    summary: dict[str, Any]
    charts: int
    bytes: int
    seconds: float


def html_table(rows: list[dict[str, Any]], cols: list[str], cls: str) -> str:
    def cell(v: Any) -> str:
        if isinstance(v, float):
            return f"{v:.4g}"
        if isinstance(v, int):
            return f"{v:,}"
        return html.escape(str(v))

    head = "".join(f"<th>{html.escape(c)}</th>" for c in cols)
    body = "".join("<tr>" + "".join(f"<td>{cell(r.get(c, ''))}</td>" for c in cols) + "</tr>" for r in rows)
    return f'<table class="{cls}"><tr>{head}</tr>{body}</table>'


def figure_div(fig: Any) -> str:
    return pio.to_html(fig, full_html=False, include_plotlyjs=False, config={"displaylogo": False})


def render(summary: dict[str, Any]) -> tuple[str, int]:
    """The page and its number of charts."""
    parts: list[str] = []
    n = 0

    def chart(fig: Any) -> str:
        nonlocal n
        n += 1
        return figure_div(fig)

    s = summary
    kinds = [{"kind": k, "rows": v} for k, v in s["kinds"].items()]
    parts.append(f"<h1>distill report: {html.escape(s['dataset'])}</h1>")
    parts.append(
        f'<p class="note">{s["rows"]:,} rows; stages: {html.escape(", ".join(s["stages"]) or "none")}</p>'
        + html_table(kinds, ["kind", "rows"], "kinds")
    )
    if s["selection"]:
        sel = s["selection"]
        parts.append(
            f'<p class="note">selection from {html.escape(str(sel.get("input")))} by '
            f"{html.escape(str(sel.get('query_file') or 'an inline query'))}: {sel.get('rows')} rows</p>"
        )
    parts.append("<h2>Retention funnel</h2>" + chart(charts.funnel(s["funnel"])))
    parts.append(html_table(s["funnel"], ["step", "flagged", "rows"], "funnel"))
    if s["reasons"]:
        parts.append(
            chart(charts.reasons(s["reasons"])) + html_table(s["reasons"], ["column", "reason", "rows"], "reasons")
        )
    parts.append("<h2>Mix composition</h2>" + chart(charts.mix(s["mix"])))
    parts.append(
        html_table(
            s["mix"]["rows"],
            ["domain", "target_share", "target_rows", "achieved_rows", "achieved_share", "shortfall"],
            "mix",
        )
    )
    dups = s["duplicates"]
    if dups:
        parts.append("<h2>Duplicates</h2>")
        flat = [{"kind": k, **{m: v for m, v in d.items() if m != "sizes"}} for k, d in dups.items()]
        parts.append(
            html_table(
                flat, ["kind", "duplicate_rows", "groups", "clusters", "rows_in_clusters", "flagged_rows"], "dups"
            )
        )
        if dups.get("near", {}).get("sizes"):
            parts.append(chart(charts.cluster_sizes(dups["near"]["sizes"])))
    if s["scores"] or s["flags"]:
        parts.append("<h2>Score columns</h2>")
        if s["flags"]:
            parts.append(chart(charts.flags(s["flags"])))
        parts.append('<div class="grid">' + "".join(chart(charts.histogram(h)) for h in s["scores"]) + "</div>")
        parts.append(html_table(s["scores"], ["column", "count", "min", "mean", "max"], "scores"))
    parts.append("<h2>Lengths (prompt and response views)</h2>")
    parts.append(
        '<div class="grid">' + "".join(chart(charts.histogram(h, log_y=True)) for h in s["lengths"]) + "</div>"
    )
    parts.append(html_table(s["lengths"], ["column", "count", "min", "mean", "max"], "lengths"))
    return html_page("distill report", "".join(parts), "distill-summary", summary), n


def html_page(title: str, body: str, data_id: str, data: Any) -> str:
    """One offline page: plotly.js inlined once, then `body`, then `data` as JSON in <script id=data_id>."""
    blob = json.dumps(data, ensure_ascii=False, default=str).replace("</", "<\\/")
    return (
        f'<!DOCTYPE html><html><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
        f"<style>{CSS}</style><script>{plotly.offline.get_plotlyjs()}</script></head><body>"
        + body
        + f'<script type="application/json" id="{data_id}">{blob}</script></body></html>'
    )


def write_page(out: Path, page: str) -> None:
    """Temp name, then rename: a killed run never leaves half a page."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    tmp.write_text(page, encoding="utf-8")
    tmp.replace(out)


def write_report(
    path: str | Path, out: str | Path, *, bins: int = 40, selection: str | Path | None = None
) -> ReportResult:
    """Summarise the dataset at `path` and write the page to `out` (temp name, then rename)."""
    started = time.perf_counter()
    if not 2 <= bins <= 500:
        msg = f"--bins {bins}: expected 2..500 histogram bins"
        raise ConfigError(msg)
    sel = Path(selection) if selection is not None else None
    if sel is not None and not (sel / "selection.json").exists():
        msg = f"--selection {sel}: no selection.json there; pass a directory written by `distill select`"
        raise ConfigError(msg)
    summary = summarize(open_dataset(path), bins=bins, selection=sel)
    page, n = render(summary)
    out = Path(out)
    write_page(out, page)
    return ReportResult(out, summary, n, len(page.encode()), time.perf_counter() - started)
