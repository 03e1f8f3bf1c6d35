"""report.html for a finished run (``convbench report``): one self-contained page, plotly.js and the data inlined.

The articles' table, interactive plotly figures (report_figures), the settings that change the numbers and the
run's meta.json.
"""
from __future__ import annotations

import statistics
from pathlib import Path
from typing import Callable, Sequence

from harness.atomic import write_atomic
from harness.results import libraries
from harness.results.htmlkit import esc, meta_section, page, table_html
from harness.results.outdir import output_dir
from harness.results.report_figures import accuracy_figure, batch_figure, images_figure, step_time_figure, train_bars_figure
from harness.results.runs import Run, load_run
from harness.results.speed_summary import ByBatch, speed_by_batch, speed_labels
from harness.results.table import Row, column, fmt, group, model_labels, number, ok_rows, statuses, train_text

# row columns that change the numbers, shown per framework when a row has a value for them
SETTING_COLUMNS = ("framework_version", "device", "device_name", "dataset", "batch_size", "epochs", "lr", "threads",
                   "precision", "tf32", "compile", "autotune", "cudnn_benchmark", "layout", "deterministic",
                   "world_size", "per_device_batch", "gpu_driver", "cuda_runtime", "cudnn", "nccl", "gpu_memory_mb",
                   "gpu_sm_clock_mhz", "gpu_power_limit_w", "gpu_mig")
# busy-machine columns (e.g. host_busy_fraction, gpu_other_procs), shown when a run has them
BUSY_MARKERS = ("busy", "host_", "loadavg", "load_avg", "throttl", "other_procs")


def ms(value: float) -> str:
    """Milliseconds with three or four significant digits: 0.123, 1.23, 12.3, 123."""
    return f"{value:.3f}" if value < 1 else f"{value:.2f}" if value < 10 else f"{value:.1f}" if value < 100 else f"{value:.0f}"


def _status(rows: Sequence[Row]) -> str:
    return '<span class="failed">' + esc(statuses(rows)) + "</span>"


def _train_table(train: list[Row]) -> str:
    model = model_labels(train)   # a sweep's cells apart: 'lenet5 batch 64'
    models = list(dict.fromkeys(model(r) for r in train))
    cols = list(dict.fromkeys(column(r, train) for r in train))
    cells = group(train, lambda r: (model(r), column(r, train)))
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


def _speed_table(run: Run, by_batch: ByBatch) -> str:
    speed = [r for r in run.rows if r["mode"] == "speed"]
    cols = list(dict.fromkeys(column(r, speed) for r in speed))
    phases = list(dict.fromkeys(p for stats in by_batch.values() for (_, p, _) in stats))
    label = speed_labels(speed)
    models = list(dict.fromkeys(label(r) for r in speed))
    head1 = '<th rowspan="2" data-role="network">network</th>' + "".join(
        f'<th colspan="{max(1, len(phases))}" data-framework="{esc(c)}">{esc(c)}</th>' for c in cols)
    head2 = "".join(f"<th>{esc(p).replace('_', '_<wbr>')}</th>" for _ in cols for p in phases)
    failed = group([r for r in speed if r["status"] != "ok"], lambda r: (label(r), column(r, speed)))
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
                        mark = ('<br><small class="unstable" title="missed the precision target or drifted">'
                                'unstable</small>' if s.get("unstable") else "")
                        tds.append(f'<td class="num" data-framework="{esc(c)}">{ms(s["median"])} ms<br><small>'
                                   f'[{ms(s["lo"])}, {ms(s["hi"])}]</small><br>{s["img_s"]:,.0f} img/s{mark}</td>')
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
    libraries.require("convbench report")
    run = load_run(run_dir)
    path = output_dir(out_dir, run.path) / "report.html"
    return write_atomic(path, render_html(run))
