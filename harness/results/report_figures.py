"""report.html's plotly figures of one run: accuracy against training time, training time and throughput bars,
step-time distributions with the median's CI, images/s, and speed against batch size. Each returns a figure's
section (htmlkit.figure_div), or None when the run has nothing to draw."""
from __future__ import annotations

import statistics
from typing import Any

from harness.results.colours import colour
from harness.results.htmlkit import figure_div, log_if_wide, subplots
from harness.results.runs import Run
from harness.results.speed_summary import ByBatch, speed_labels
from harness.results.table import column, fmt, group, model_labels, number, ok_rows


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
    label_of = model_labels(run.rows)
    curves = [(label_of(r), column(r, run.rows), r.get("seed"), h) for r in run.rows
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
    model = model_labels(run.rows)
    for (m, c), g in group(rows, lambda r: (model(r), column(r, run.rows))).items():
        v = [r[key] for r in g]
        sd = statistics.stdev(v) if len(v) > 1 else 0.0
        groups.setdefault(m, {})[c] = (statistics.fmean(v), sd, sd)
    fig, _ = subplots([""], height=360)
    _bars(fig, groups, frameworks, 1, 1, set())
    fig.update_layout(barmode="group")
    fig.update_yaxes(title_text=unit)
    return figure_div(fig, title, "Mean over seeds; error bars: std over seeds where n > 1.")


def step_time_figure(run: Run, by_batch: ByBatch) -> str | None:
    """Per phase: the raw step-time samples of every model x framework as boxes, with the median and its CI."""
    import plotly.graph_objects as go
    speed = ok_rows(r for r in run.rows if r["mode"] == "speed")
    if not speed or not by_batch:
        return None
    phases = list(dict.fromkeys(p for stats in by_batch.values() for (_, p, _) in stats))
    frameworks = list(dict.fromkeys(column(r, speed) for r in speed))
    several = len(by_batch) > 1
    model_of = speed_labels(speed)
    boxes = len({(model_of(r), r.get("batch_size"), column(r, speed)) for r in speed})
    fig, cols = subplots(phases, height=380, per_row=1 if boxes > 6 else 3)
    shown: set[str] = set()
    for i, phase in enumerate(phases):
        row, col = divmod(i, cols)
        values: list[float] = []
        for fw in frameworks:
            xm, xf, ys, cm, cf, med, lo, hi = [], [], [], [], [], [], [], []
            for (m, b), rows in group([r for r in speed if r["phase"] == phase and column(r, speed) == fw],
                                      lambda r: (model_of(r), r.get("batch_size"))).items():
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


def images_figure(run: Run, by_batch: ByBatch) -> str | None:
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


def batch_figure(run: Run, by_batch: ByBatch) -> str | None:
    """Images/s against batch size (the convnet-benchmarks view), when a cell ran at several batches (a
    ``--batch-size`` sweep): one chart per model and phase, one line per framework, the batch on a log2 axis."""
    import plotly.graph_objects as go
    lines: dict[tuple[str, str, str], list[tuple[int, float, float]]] = {}
    for b, stats in by_batch.items():
        for (m, p, c), s in stats.items():
            if b is not None:
                lines.setdefault((m, p, c), []).append((b, s["img_s"], s["median"]))
    if not any(len(v) > 1 for v in lines.values()):
        return None
    panels = list(dict.fromkeys((m, p) for m, p, _ in lines))
    frameworks = list(dict.fromkeys(c for _, _, c in lines))
    fig, cols = subplots([f"{m}, {p}" for m, p in panels], height=340)
    shown: set[str] = set()
    for (m, p, c), points in lines.items():
        points.sort()
        i = panels.index((m, p))
        fig.add_trace(go.Scatter(x=[b for b, _, _ in points], y=[v for _, v, _ in points], mode="lines+markers",
                                 name=c, legendgroup=c, showlegend=c not in shown, line={"color": colour(c, frameworks)},
                                 marker={"size": 8}, customdata=[t for _, _, t in points],
                                 hovertemplate=f"{c}, batch %{{x}}: %{{y:,.0f}} images/s, step %{{customdata:.3g}} ms"
                                               "<extra></extra>"),
                      row=i // cols + 1, col=i % cols + 1)
        shown.add(c)
    batches = sorted({b for points in lines.values() for b, _, _ in points})
    fig.update_xaxes(title_text="batch size (log2)", type="log", tickvals=batches, ticktext=[str(b) for b in batches])
    fig.update_yaxes(title_text="images/s", rangemode="tozero")
    return figure_div(fig, "Speed against batch size", "images/s = batch / median step time, one point per batch size "
                      "run; a line ends where the next batch ran out of memory or failed (see Failed cells).")
