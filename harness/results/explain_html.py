"""report.html of ``convbench explain``: the per-layer table, the sentences, a bar chart per layer (one bar per
framework, its 95 % interval as an error bar) and the settings every number ran with. plotly draws the chart
(``htmlkit.page`` inlines plotly.js, so the page opens without a network)."""
from __future__ import annotations

from pathlib import Path

from harness.atomic import write_atomic
from harness.results.colours import colour
from harness.results.explain import SETTINGS, Explained, remainder_lines, summaries, table_rows, unstable
from harness.results.htmlkit import esc, figure_div, page, table_html


def layers_figure(ex: Explained) -> str:
    """One horizontal bar per framework and node, nodes top to bottom in forward order."""
    import plotly.graph_objects as go
    fig = go.Figure()
    paths = ex.paths
    for fw in ex.frameworks:
        timings = [ex.layer(fw, p).get(ex.phase) for p in paths]
        x = [t["ms"] if t else None for t in timings]
        plus = [t["ms_ci_high"] - t["ms"] if t and t["ms_ci_high"] is not None else None for t in timings]
        minus = [t["ms"] - t["ms_ci_low"] if t and t["ms_ci_low"] is not None else None for t in timings]
        fig.add_trace(go.Bar(name=fw, y=paths, x=x, orientation="h", marker_color=colour(fw, ex.frameworks),
                             error_x={"type": "data", "array": plus, "arrayminus": minus, "visible": True},
                             hovertemplate="%{y}: %{x:.3f} ms<extra>" + fw + "</extra>"))
    fig.update_layout(barmode="group", template="plotly_white", height=120 + 14 * len(paths) * max(1, len(ex.frameworks)),
                      xaxis_title=f"{ex.phase}, ms per step (median, 95 % interval)",
                      yaxis={"autorange": "reversed", "automargin": True},
                      legend={"orientation": "h", "x": 0, "y": 1, "yanchor": "bottom"},
                      margin={"l": 60, "r": 20, "t": 60, "b": 50})
    methods = sorted({p["method"] for p in ex.payloads})
    return figure_div(fig, f"{ex.model} {ex.phase}: time per layer", f"{', '.join(methods)} (docs/explain.md)")


def layer_table(ex: Explained) -> str:
    return '<div class="wide">' + table_html(*table_rows(ex), "results layers") + "</div>"


def settings_table(ex: Explained) -> str:
    keys = ("framework_version", "device", "device_name", "batch_size", "threads", "method")
    rows = [[p["framework"], *[p.get(k) for k in keys], *[p.get("execution", {}).get(k) for k in SETTINGS]]
            for p in ex.payloads]
    return table_html(["framework", *keys, *SETTINGS], rows, "results")


def render(ex: Explained) -> str:
    body = [f"<h1>convbench explain: {esc(ex.model)}, {esc(ex.phase)}</h1>",
            '<p class="note">Layer cells: every node of the network built alone by each framework\'s plugin and timed as '
            "speed mode times a step; profiler: the framework's profiler over the network's own step, its ops mapped to "
            "layers. The network's own step beside the sum of its nodes.</p>"]
    lines = summaries(ex)
    if lines:
        body.append("<h2>Where the difference is</h2><ul class=\"summary\">"
                    + "".join(f"<li>{esc(x)}</li>" for x in lines) + "</ul>")
    body.append("<h2>Layers</h2>" + layer_table(ex))
    body.append("<ul class=\"remainder\">" + "".join(f"<li>{esc(x)}</li>" for x in remainder_lines(ex)) + "</ul>")
    notes = unstable(ex) + [f"{fw}: not timed: {why}" for fw, why in ex.failed.items()]
    if notes:
        body.append("<ul class=\"note\">" + "".join(f"<li>{esc(x)}</li>" for x in notes) + "</ul>")
    if ex.payloads:
        body.append(layers_figure(ex))
        body.append("<h2>Settings</h2>" + settings_table(ex))
    return page(f"convbench explain {ex.model} {ex.phase}", body)


def write_html(ex: Explained, path: Path) -> Path:
    write_atomic(path, render(ex))
    return path
