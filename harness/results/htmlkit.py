"""The pieces both HTML pages (report.html, history.html) are built from: escaping, plain tables, the page shell
with plotly.js inlined, a plotly figure's section, panels, and a run's meta.json as tables.

plotly is imported lazily (as plots.py does matplotlib); it emits every script on a page, none is written by hand.
"""
from __future__ import annotations

import html
import json
import math
from typing import Any, Sequence

from harness.results.table import fmt

CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:24px auto;max-width:1400px;padding:0 16px;
color:#1d1d1f;line-height:1.4}
h1{font-size:1.6em;margin-bottom:4px}h2{margin-top:32px;border-bottom:1px solid #ddd;padding-bottom:4px}
code,pre{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:.9em}
pre{background:#f6f8fa;padding:12px;overflow:auto;max-height:480px}
table{border-collapse:collapse;margin:8px 0}th,td{border:1px solid #d0d7de;padding:5px 10px;vertical-align:top}
th{background:#f0f3f6;text-align:left}tbody tr:nth-child(even){background:#fafbfc}
td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}.wide{overflow-x:auto}
table.changes td,table.steps td{white-space:nowrap}table.changes td.wrap,table.steps td.wrap{white-space:normal}
table.results,table.changes,table.steps{font-size:.92em}
.results th,.results td,.changes th,.changes td,.steps th,.steps td{padding:4px 7px}
small,.note{color:#57606a}
small.unstable{color:#cf222e;font-weight:600}
table tbody tr.slower{background:#ffe4e1}table tbody tr.faster{background:#e3f6e3}.failed{color:#b3261e}
"""


def esc(value: Any) -> str:
    return html.escape("-" if value is None else str(value))


def table_html(header: Sequence[str], body: Sequence[Sequence[Any]], cls: str = "") -> str:
    """A plain table, every cell escaped."""
    head = "".join(f"<th>{esc(h)}</th>" for h in header)
    rows = "".join("<tr>" + "".join(f"<td>{esc(v)}</td>" for v in row) + "</tr>" for row in body)
    return f'<table class="{cls}"><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>'


def page(title: str, body: Sequence[str]) -> str:
    """A complete HTML document with plotly.js inlined, so it opens without a network."""
    from plotly.offline import get_plotlyjs
    return ('<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f'<title>{esc(title)}</title><style>{CSS}</style>\n'
            f'<script type="text/javascript">{get_plotlyjs()}</script>\n</head><body>\n'
            + "\n".join(body) + "\n</body></html>\n")


def figure_div(fig: Any, title: str, note: str = "") -> str:
    """A section with one plotly figure (its data and plotly's own call to draw it inlined)."""
    div = fig.to_html(full_html=False, include_plotlyjs=False, default_width="100%",
                      default_height=f"{fig.layout.height or 450}px", config={"displaylogo": False, "responsive": True})
    return f'<section class="plot"><h3>{esc(title)}</h3>' + (f'<p class="note">{esc(note)}</p>' if note else "") + div \
        + "</section>"


def subplots(titles: Sequence[str], height: int = 330, per_row: int = 3) -> tuple[Any, int]:
    """A plotly figure with one panel per title, ``per_row`` to a row; returns (figure, number of columns)."""
    from plotly.subplots import make_subplots
    cols = max(1, min(per_row, len(titles)))
    rows = max(1, math.ceil(len(titles) / cols))
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=list(titles),
                        horizontal_spacing=0.06 if cols > 1 else 0.1, vertical_spacing=min(0.3, 0.45 / rows))
    fig.update_layout(height=90 + height * rows, template="plotly_white", margin={"l": 60, "r": 20, "t": 40, "b": 50})
    return fig, cols


def log_if_wide(fig: Any, values: Sequence[float], row: int, col: int) -> None:
    """A log y axis for a panel whose positive values span more than 50x (as the PNG plots do)."""
    positive = [v for v in values if v and v > 0]
    if positive and max(positive) / min(positive) > 50:
        fig.update_yaxes(type="log", row=row, col=col)


def meta_section(meta: dict[str, Any]) -> str:
    """A run's meta.json: its scalars, run settings and frameworks as tables, then the whole file folded away."""
    scalars = [[k, v] for k, v in meta.items() if not isinstance(v, (dict, list))]
    out = [table_html(["item", "value"], scalars)] if scalars else []
    if settings := meta.get("settings"):
        out += ["<h3>Run settings</h3>", table_html(["setting", "value"], [[k, fmt(v)] for k, v in settings.items()])]
    if frameworks := meta.get("frameworks"):
        body = [[name, p.get("version") if p.get("available") else f"unavailable: {p.get('reason')}",
                 ", ".join(f"{d.get('name')} ({d.get('description')})" for d in p.get("devices") or [])]
                for name, p in frameworks.items() if isinstance(p, dict)]
        out += ["<h3>Frameworks</h3>", table_html(["framework", "version", "devices"], body)]
    out.append("<details><summary>meta.json</summary><pre>" + esc(json.dumps(meta, indent=2, default=str)) + "</pre></details>")
    return "\n".join(out)
