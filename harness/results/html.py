"""report.html for a finished run (``convbench report``): one self-contained page, plotly.js and the data inlined.

The articles' table, interactive plotly figures (accuracy against time, step-time distributions with the median's
CI, images/s, speed against batch size), the settings that change the numbers and the run's meta.json. plotly is
imported lazily (as plots.py does matplotlib); it emits every script on the page, none is written by hand.
``page`` and ``figure_div`` are shared with history.html.
"""
from __future__ import annotations

import html
import json
import math
import statistics
from pathlib import Path
from typing import Any, Callable, Sequence

from harness.errors import ConvbenchError
from harness.results.plots import colour
from harness.results.report import speed_stats
from harness.results.runs import Run, load_run
from harness.results.table import column, group, number, ok_rows, train_text

Row = dict[str, Any]
# row columns that change the numbers, shown per framework when a row has a value for them
SETTING_COLUMNS = ("framework_version", "device", "device_name", "dataset", "batch_size", "epochs", "lr", "threads",
                   "precision", "tf32", "compile", "autotune", "cudnn_benchmark", "layout", "deterministic",
                   "world_size", "per_device_batch", "gpu_driver", "cuda_runtime", "cudnn", "nccl", "gpu_memory_mb",
                   "gpu_sm_clock_mhz", "gpu_power_limit_w", "gpu_mig")
# busy-machine columns (e.g. host_busy_fraction, gpu_other_procs), shown when a run has them
BUSY_MARKERS = ("busy", "host_", "loadavg", "load_avg", "throttl", "other_procs")
SYMBOLS = ("circle", "square", "diamond", "triangle-up", "cross", "x", "star", "hexagon")
CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:24px auto;max-width:1400px;padding:0 16px;
color:#1d1d1f;line-height:1.4}
h1{font-size:1.6em;margin-bottom:4px}h2{margin-top:32px;border-bottom:1px solid #ddd;padding-bottom:4px}
code,pre{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:.9em}
pre{background:#f6f8fa;padding:12px;overflow:auto;max-height:480px}
table{border-collapse:collapse;margin:8px 0}th,td{border:1px solid #d0d7de;padding:5px 10px;vertical-align:top}
th{background:#f0f3f6;text-align:left}tbody tr:nth-child(even){background:#fafbfc}
td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}.wide{overflow-x:auto}
table.changes td{white-space:nowrap}table.changes td.wrap{white-space:normal}
table.results,table.changes{font-size:.92em}.results th,.results td,.changes th,.changes td{padding:4px 7px}
small,.note{color:#57606a}
table tbody tr.slower{background:#ffe4e1}table tbody tr.faster{background:#e3f6e3}.failed{color:#b3261e}
"""


def esc(value: Any) -> str:
    return html.escape("-" if value is None else str(value))


def fmt(value: Any) -> str:
    """A setting's value for a table: numbers without float noise, None as '-'."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, float):
        return f"{value:.4g}"
    return "-" if value is None else str(value)


def ms(value: float) -> str:
    """Milliseconds with three or four significant digits: 0.123, 1.23, 12.3, 123."""
    return f"{value:.3f}" if value < 1 else f"{value:.2f}" if value < 10 else f"{value:.1f}" if value < 100 else f"{value:.0f}"


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


# ---- the tables ------------------------------------------------------------------------------------------------

def _subset(run: Run, rows: Sequence[Row]) -> Run:
    return Run(run.path, list(rows), run.meta, run.histories, run.samples)


def speed_by_batch(run: Run) -> dict[int | None, dict[tuple[str, str, str], dict[str, float]]]:
    """batch size -> report.speed_stats of the run's speed rows at that batch size."""
    speed = [r for r in run.rows if r["mode"] == "speed"]
    batches = group(speed, lambda r: int(r["batch_size"]) if number(r.get("batch_size")) else None)
    return {b: stats for b, rows in batches.items() if (stats := speed_stats(_subset(run, rows)))}


def _status(rows: Sequence[Row]) -> str:
    return '<span class="failed">' + esc("/".join(dict.fromkeys(r["status"] for r in rows))) + "</span>"


def _train_table(train: list[Row]) -> str:
    models = list(dict.fromkeys(r["model"] for r in train))
    cols = list(dict.fromkeys(column(r, train) for r in train))
    cells = group(train, lambda r: (r["model"], column(r, train)))
    head = '<th data-role="network">network</th>' + "".join(f'<th data-framework="{esc(c)}">{esc(c)}</th>' for c in cols)
    body = []
    for m in models:
        tds = []
        for c in cols:
            rows = cells.get((m, c))
            text = esc(train_text(rows)) if rows and ok_rows(rows) else _status(rows) if rows else "-"
            tds.append(f'<td data-framework="{esc(c)}">{text}</td>')
        body.append(f'<tr data-model="{esc(m)}"><th>{esc(m)}</th>{"".join(tds)}</tr>')
    return (f'<table class="results"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>'
            '<p class="note">Cells: final test accuracy / training time (evaluation excluded); mean ± std over seeds '
            "where n &gt; 1.</p>")


def _speed_table(run: Run, by_batch: dict[int | None, dict[tuple[str, str, str], dict[str, float]]]) -> str:
    speed = [r for r in run.rows if r["mode"] == "speed"]
    cols = list(dict.fromkeys(column(r, speed) for r in speed))
    phases = list(dict.fromkeys(p for stats in by_batch.values() for (_, p, _) in stats))
    models = list(dict.fromkeys(r["model"] for r in speed))
    head1 = '<th rowspan="2" data-role="network">network</th>' + "".join(
        f'<th colspan="{max(1, len(phases))}" data-framework="{esc(c)}">{esc(c)}</th>' for c in cols)
    head2 = "".join(f"<th>{esc(p).replace('_', '_<wbr>')}</th>" for _ in cols for p in phases)
    failed = group([r for r in speed if r["status"] != "ok"], lambda r: (r["model"], column(r, speed)))
    body = []
    for m in models:
        batches = [b for b, stats in by_batch.items() if any(k[0] == m for k in stats)] or [None]
        for b in batches:
            label = m + (f" (batch {b})" if len(batches) > 1 else "")
            tds = []
            for c in cols:
                for p in phases:
                    s = by_batch.get(b, {}).get((m, p, c))
                    if s:
                        tds.append(f'<td class="num" data-framework="{esc(c)}">{ms(s["median"])} ms<br><small>'
                                   f'[{ms(s["lo"])}, {ms(s["hi"])}]</small><br>{s["img_s"]:,.0f} img/s</td>')
                    else:
                        tds.append(f'<td data-framework="{esc(c)}">'
                                   + (_status(failed[(m, c)]) if (m, c) in failed else "-") + "</td>")
            body.append(f'<tr data-model="{esc(m)}" data-batch="{esc(b)}"><th>{esc(label)}</th>{"".join(tds)}</tr>')
    return (f'<div class="wide"><table class="results"><thead><tr>{head1}</tr><tr>{head2}</tr></thead><tbody>'
            f'{"".join(body)}</tbody></table></div><p class="note">Cells: median step time, [distribution-free 95% CI of '
            "the median], images/s = batch / median; raw samples pooled over seeds.</p>")


def _failed_table(run: Run) -> str:
    failed = [r for r in run.rows if r["status"] != "ok"]
    return table_html(["cell", "phase", "status", "error"],
                      [[r["cell"], r.get("phase"), r["status"], str(r.get("error") or "")[:300]] for r in failed])


def busy_columns(rows: Sequence[Row]) -> list[str]:
    names = dict.fromkeys(k for r in rows for k in r)
    return [k for k in names if any(m in k for m in BUSY_MARKERS) and any(r.get(k) is not None for r in rows)]


def _values(rows: Sequence[Row], name: str) -> str:
    values = [r.get(name) for r in rows if r.get(name) is not None]
    if name == "framework_version":   # a version, not a number: 1.0 stays 1.0
        return ", ".join(dict.fromkeys(map(str, values))) or "-"
    distinct = list(dict.fromkeys(values))
    if len(distinct) > 4 and all(number(v) for v in distinct):
        return f"{fmt(min(distinct))} – {fmt(max(distinct))} (mean {fmt(statistics.fmean(distinct))})"
    return ", ".join(fmt(v) for v in distinct) or "-"


def settings_table(rows: Sequence[Row]) -> str:
    """Settings (rows) by framework column: the values each framework's rows recorded."""
    cols = group(list(rows), lambda r: column(r, rows))
    names = [n for n in (*SETTING_COLUMNS, *busy_columns(rows)) if any(r.get(n) is not None for r in rows)]
    return table_html(["setting", *cols], [[n, *(_values(g, n) for g in cols.values())] for n in names], "settings")


def meta_section(meta: dict[str, Any]) -> str:
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


# ---- the figures -----------------------------------------------------------------------------------------------

def _bars(fig: Any, groups: dict[str, dict[str, tuple[float, float, float]]], frameworks: list[str], row: int, col: int,
          shown: set[str]) -> None:
    """Bars per framework within each group (x); values (height, err_low, err_high)."""
    import plotly.graph_objects as go
    names = list(groups)
    for fw in frameworks:
        xs = [n for n in names if fw in groups[n]]
        if not xs:
            continue
        ys, lo, hi = zip(*(groups[n][fw] for n in xs))
        fig.add_trace(go.Bar(x=xs, y=ys, name=fw, legendgroup=fw, showlegend=fw not in shown,
                             marker_color=colour(fw, frameworks), offsetgroup=fw,
                             error_y={"type": "data", "symmetric": False, "array": hi, "arrayminus": lo,
                                      "visible": any(lo + hi)}),
                      row=row, col=col)
        shown.add(fw)
    log_if_wide(fig, [h for g in groups.values() for h, _, _ in g.values()], row, col)


def accuracy_figure(run: Run) -> str | None:
    import plotly.graph_objects as go
    curves = [(r["model"], column(r, run.rows), r.get("seed"), h) for r in run.rows
              if r["mode"] == "train" and (h := run.histories.get(r["cell"]))]
    if not curves:
        return None
    models = list(dict.fromkeys(c[0] for c in curves))
    frameworks = list(dict.fromkeys(c[1] for c in curves))
    fig, cols = subplots(models)
    shown: set[str] = set()
    for model, fw, seed, history in curves:
        epochs = [e for e in history if number(e.get("train_time_s")) and number(e.get("test_accuracy"))]
        row, col = divmod(models.index(model), cols)
        fig.add_trace(go.Scatter(x=[e["train_time_s"] for e in epochs], y=[100 * e["test_accuracy"] for e in epochs],
                                 mode="lines+markers", name=fw, legendgroup=fw, showlegend=fw not in shown,
                                 line={"color": colour(fw, frameworks), "width": 2}, marker={"size": 6},
                                 text=[f"{fw}, seed {seed}, epoch {e.get('epoch')}" for e in epochs],
                                 hovertemplate="%{text}<br>%{x:.3g} s, %{y:.2f}%<extra></extra>"),
                      row=row + 1, col=col + 1)
        shown.add(fw)
    fig.update_xaxes(title_text="training time (s, evaluation excluded)", rangemode="tozero")
    fig.update_yaxes(title_text="test accuracy (%)")
    return figure_div(fig, "Test accuracy against training time",
                      "One line per framework and seed, one point per epoch (from each cell's epochs.json).")


def train_bars_figure(run: Run, key: str, title: str, unit: str) -> str | None:
    """Mean ± std over seeds of a train-row column, per model (groups) and framework (bars)."""
    rows = [r for r in ok_rows(run.rows) if r["mode"] == "train" and number(r.get(key))]
    if not rows:
        return None
    frameworks = list(dict.fromkeys(column(r, run.rows) for r in rows))
    groups: dict[str, dict[str, tuple[float, float, float]]] = {}
    for (m, c), g in group(rows, lambda r: (r["model"], column(r, run.rows))).items():
        v = [r[key] for r in g]
        sd = statistics.stdev(v) if len(v) > 1 else 0.0
        groups.setdefault(m, {})[c] = (statistics.fmean(v), sd, sd)
    fig, _ = subplots([""], height=360)
    _bars(fig, groups, frameworks, 1, 1, set())
    fig.update_layout(barmode="group")
    fig.update_yaxes(title_text=unit)
    return figure_div(fig, title, "Mean over seeds; error bars: std over seeds where n > 1.")


def step_time_figure(run: Run, by_batch: dict[int | None, dict[tuple[str, str, str], dict[str, float]]]) -> str | None:
    """Per phase: the raw step-time samples of every model x framework as boxes, with the median and its CI."""
    import plotly.graph_objects as go
    speed = ok_rows(r for r in run.rows if r["mode"] == "speed")
    if not speed or not by_batch:
        return None
    phases = list(dict.fromkeys(p for stats in by_batch.values() for (_, p, _) in stats))
    frameworks = list(dict.fromkeys(column(r, speed) for r in speed))
    several = len(by_batch) > 1
    boxes = len({(r["model"], r.get("batch_size"), column(r, speed)) for r in speed})
    fig, cols = subplots(phases, height=380, per_row=1 if boxes > 6 else 3)
    shown: set[str] = set()
    for i, phase in enumerate(phases):
        row, col = divmod(i, cols)
        values: list[float] = []
        for fw in frameworks:
            xm, xf, ys, cm, cf, med, lo, hi = [], [], [], [], [], [], [], []
            for (m, b), rows in group([r for r in speed if r["phase"] == phase and column(r, speed) == fw],
                                      lambda r: (r["model"], r.get("batch_size"))).items():
                label = m + (f" b{fmt(b)}" if several else "")
                samples = [1e3 * s for r in rows for s in run.samples.get(r["cell"], {}).get(phase, [])]
                xm += [label] * len(samples)
                xf += [fw] * len(samples)
                ys += samples
                bkey = int(b) if number(b) else None
                if s := by_batch.get(bkey, {}).get((m, phase, fw)):
                    cm.append(label)
                    cf.append(fw)
                    med.append(s["median"])
                    lo.append(s["median"] - s["lo"])
                    hi.append(s["hi"] - s["median"])
            values += ys + med
            if ys:
                fig.add_trace(go.Box(x=[xm, xf], y=ys, name=fw, legendgroup=fw, showlegend=fw not in shown,
                                     marker_color=colour(fw, frameworks), boxpoints="outliers", line={"width": 1.5}),
                              row=row + 1, col=col + 1)
                shown.add(fw)
            if med:
                fig.add_trace(go.Scatter(x=[cm, cf], y=med, mode="markers", name="median, 95% CI", legendgroup="ci",
                                         legendrank=1001,
                                         showlegend="ci" not in shown,
                                         marker={"symbol": "diamond", "size": 8, "color": "#222"},
                                         error_y={"type": "data", "symmetric": False, "array": hi, "arrayminus": lo,
                                                  "color": "#222", "thickness": 2, "width": 6},
                                         hovertemplate="median %{y:.4g} ms<extra></extra>"),
                              row=row + 1, col=col + 1)
                shown.add("ci")
        log_if_wide(fig, values, row + 1, col + 1)
    fig.update_yaxes(title_text="step time (ms)")
    return figure_div(fig, "Step-time distributions per phase",
                      "Boxes: every timed step (samples.json, pooled over seeds); black diamond: the median with its "
                      "distribution-free 95% confidence interval.")


def images_figure(run: Run, by_batch: dict[int | None, dict[tuple[str, str, str], dict[str, float]]]) -> str | None:
    """Images/s per phase, model and framework; error bars from the median's CI."""
    if not by_batch:
        return None
    phases = list(dict.fromkeys(p for stats in by_batch.values() for (_, p, _) in stats))
    frameworks = list(dict.fromkeys(c for stats in by_batch.values() for (_, _, c) in stats))
    fig, cols = subplots(phases, height=340)
    shown: set[str] = set()
    for i, phase in enumerate(phases):
        groups: dict[str, dict[str, tuple[float, float, float]]] = {}
        for b, stats in by_batch.items():
            for (m, p, c), s in stats.items():
                if p == phase:
                    label = m + (f" b{b}" if len(by_batch) > 1 else "")
                    img, med = s["img_s"], s["median"]
                    groups.setdefault(label, {})[c] = (img, img - img * med / s["hi"], img * med / s["lo"] - img)
        _bars(fig, groups, frameworks, i // cols + 1, i % cols + 1, shown)
    fig.update_layout(barmode="group")
    fig.update_yaxes(title_text="images/s")
    return figure_div(fig, "Throughput (images/s)", "images/s = batch / median step time; error bars from the median's "
                      "95% CI.")


def batch_figure(run: Run, by_batch: dict[int | None, dict[tuple[str, str, str], dict[str, float]]]) -> str | None:
    """Images/s against batch size per phase, one line per framework x model, when a cell ran at several batches."""
    import plotly.graph_objects as go
    lines: dict[tuple[str, str, str], list[tuple[int, float]]] = {}
    for b, stats in by_batch.items():
        for (m, p, c), s in stats.items():
            if b is not None:
                lines.setdefault((p, c, m), []).append((b, s["img_s"]))
    if not any(len(v) > 1 for v in lines.values()):
        return None
    phases = list(dict.fromkeys(p for p, _, _ in lines))
    frameworks = list(dict.fromkeys(c for _, c, _ in lines))
    models = list(dict.fromkeys(m for _, _, m in lines))
    fig, cols = subplots(phases, height=340)
    shown: set[str] = set()
    for (p, c, m), points in lines.items():
        points.sort()
        i = phases.index(p)
        name = f"{c} {m}"
        fig.add_trace(go.Scatter(x=[b for b, _ in points], y=[v for _, v in points], mode="lines+markers", name=name,
                                 legendgroup=name, showlegend=name not in shown, line={"color": colour(c, frameworks)},
                                 marker={"symbol": SYMBOLS[models.index(m) % len(SYMBOLS)], "size": 8}),
                      row=i // cols + 1, col=i % cols + 1)
        shown.add(name)
    batches = sorted({b for points in lines.values() for b, _ in points})
    fig.update_xaxes(title_text="batch size", type="log", tickvals=batches, ticktext=[str(b) for b in batches])
    fig.update_yaxes(title_text="images/s")
    return figure_div(fig, "Speed against batch size", "images/s = batch / median step time, per batch size run.")


# ---- the page --------------------------------------------------------------------------------------------------

def render_html(run: Run) -> str:
    meta, settings = run.meta, run.meta.get("settings") or {}
    first = run.rows[0] if run.rows else {}
    train = [r for r in run.rows if r["mode"] == "train"]
    by_batch = speed_by_batch(run)
    body = [f"<h1>convbench report: {esc(run.name)}</h1>"]
    if meta.get("command"):
        body.append(f"<p><code>{esc(' '.join(map(str, meta['command'])))}</code></p>")
    body.append(f"<p>Mode {esc(settings.get('mode') or first.get('mode'))}, dataset "
                f"{esc(settings.get('dataset') or first.get('dataset'))}, device "
                f"{esc(settings.get('device') or first.get('device'))}; {len({r['cell'] for r in run.rows})} cell(s), "
                f"{len(ok_rows(run.rows))} of {len(run.rows)} row(s) ok.</p>")
    if not run.rows:
        body.append("<p>No cell has finished in this run (results.csv has no rows).</p>")
    if train:
        body += ["<h2>Accuracy and training time</h2>", _train_table(train)]
    if any(r["mode"] == "speed" for r in run.rows):
        body += ["<h2>Step time</h2>", _speed_table(run, by_batch)]
    if any(r["status"] != "ok" for r in run.rows):
        body += ["<h2>Failed cells</h2>", _failed_table(run)]
    figures: list[Callable[[], str | None]] = [
        lambda: accuracy_figure(run),
        lambda: train_bars_figure(run, "train_time_s", "Training time", "training time (s)"),
        lambda: train_bars_figure(run, "images_per_sec", "Training throughput (images/s)", "images/s"),
        lambda: step_time_figure(run, by_batch), lambda: images_figure(run, by_batch),
        lambda: batch_figure(run, by_batch)]
    plots = [div for make in figures if (div := make())]
    if plots:
        body += ["<h2>Plots</h2>", *plots]
    if run.rows:
        body += ["<h2>Settings that change the numbers</h2>",
                 '<p class="note">As each framework\'s rows recorded them (what actually ran).</p>', settings_table(run.rows)]
    body += ["<h2>Run meta</h2>", meta_section(meta) if meta else "<p>(no meta.json)</p>"]
    return page(f"convbench report: {run.name}", body)


def write_html(run_dir: str | Path, out_dir: str | Path | None = None) -> Path:
    """Writes report.html into ``out_dir`` (default: the run directory); returns its path."""
    run = load_run(run_dir)
    out = Path(out_dir) if out_dir is not None else run.path
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConvbenchError(f"cannot create {str(out)!r}: {exc.strerror or exc}") from None
    path = out / "report.html"
    path.write_text(render_html(run), encoding="utf-8")
    return path
