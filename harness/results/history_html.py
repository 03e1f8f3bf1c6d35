"""history.html of ``convbench history``: one self-contained page (plotly.js and the data inlined) with the changes
between neighbouring runs, the change points over each cell's series, each cell against the pinned baseline run, the
trends of every cell over time (change points and the baseline drawn on them), the runs, the whole history table and
the latest run's meta."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from harness.results.cells import key_dict
from harness.results.colours import colour
from harness.results.history_model import Cells, ChangePoint, Point, changes, labels, run_started
from harness.results.history_text import when
from harness.results.htmlkit import esc, figure_div, meta_section, page, subplots, table_html
from harness.results.runs import Run
from harness.results.significance import FASTER, SAME, SLOWER
from harness.results.table import fmt, ok_rows

if TYPE_CHECKING:   # a report library (libraries.py), imported where used: convbench starts without it
    import pandas as pd

SYMBOLS = {SLOWER: ("triangle-up", "#d62728"), FASTER: ("triangle-down", "#2ca02c")}
UNITS = {"median step ms": "median step time (ms)", "train time s": "training time (s)",
         "time to target s": "time to target (s)"}


def _panel(d: dict[str, Any]) -> str:
    return f"{d['model']} · {d['phase'] or d['mode']}"


def _line(name: str, d: dict[str, Any], pts: list[Point], ys: list[float], accuracy: bool, frameworks: list[str],
          shown: set[str]) -> Any:
    """One cell's line over time: framework versions written where they change, hover text per run."""
    import plotly.graph_objects as go
    xs = [p.started for p in pts]
    text = [f"→ {p.version}" if j and p.version != pts[j - 1].version else "" for j, p in enumerate(pts)]
    hover = [f"run {p.run}<br>{d['framework']} {p.version}" + (f"<br>{p.comparison.verdict} "
             f"{p.comparison.change_pct:+.1f}% vs {p.previous.run}" if p.comparison and p.previous else "")
             for p in pts]
    error = None if accuracy else {"type": "data", "symmetric": False, "array": [p.high - p.value for p in pts],
                                   "arrayminus": [p.value - p.low for p in pts]}   # type: ignore[operator]
    return go.Scatter(x=xs, y=ys, mode="lines+markers+text", name=name, legendgroup=name,
                      showlegend=name not in shown, text=text, textposition="top left",
                      textfont={"size": 10}, line={"color": colour(d["framework"], frameworks)},
                      error_y=error, customdata=hover,
                      hovertemplate="%{customdata}<br>%{y:.4g}<extra>" + esc(name) + "</extra>")


def _mark_changes(fig: Any, pts: list[Point], ys: list[float], row: int, col: int, shown: set[str]) -> None:
    """A triangle on every run of the cell where a change against the previous run was found."""
    import plotly.graph_objects as go
    for verdict, (symbol, color) in SYMBOLS.items():
        hits = [(p, y) for p, y in zip(pts, ys) if p.comparison and p.comparison.verdict == verdict]
        if hits:
            fig.add_trace(go.Scatter(x=[p.started for p, _ in hits], y=[y for _, y in hits], mode="markers",
                                     name=verdict, legendgroup=verdict, showlegend=verdict not in shown,
                                     legendrank=1001,
                                     marker={"symbol": symbol, "size": 14, "color": color,
                                             "line": {"width": 1, "color": "#000"}},
                                     customdata=[f"{verdict} {p.comparison.change_pct:+.1f}% in run {p.run}"  # type: ignore
                                                 for p, _ in hits], hovertemplate="%{customdata}<extra></extra>"),
                          row=row, col=col)
            shown.add(verdict)


def _mark_change_point(fig: Any, cp: ChangePoint, row: int, col: int, shown: set[str]) -> None:
    """A flagged change point as asv draws steps: the earlier part's level up to the middle between the two runs it
    sits between, a vertical step there, then the later part's level (dashed, in the verdict's colour)."""
    import plotly.graph_objects as go
    c, first, last = cp.split.comparison, cp.points[0], cp.latest
    middle = cp.before.started + (cp.after.started - cp.before.started) / 2
    name = "change point"
    text = (f"change point: {cp.verdict} {c.change_pct:+.1f}%<br>between run {cp.before.run} ({when(cp.before)})<br>"
            f"and run {cp.after.run} ({when(cp.after)})<br>q={cp.q_value:.2g}")
    fig.add_trace(go.Scatter(x=[first.started, middle, middle, last.started], y=[c.a, c.a, c.b, c.b], mode="lines",
                             name=name, legendgroup=name, showlegend=name not in shown, legendrank=1002,
                             line={"dash": "dash", "width": 2, "color": SYMBOLS[cp.verdict][1]},
                             customdata=[text] * 4, hovertemplate="%{customdata}<extra></extra>"), row=row, col=col)
    shown.add(name)


def _mark_baseline(fig: Any, pts: list[Point], row: int, col: int, shown: set[str], color: str) -> None:
    """The pinned baseline run's value of the cell: a dotted level in the cell's colour over the whole series and a
    star on its run."""
    import plotly.graph_objects as go
    base = pts[0].baseline
    if base is None or base.value is None:
        return
    name = f"baseline {base.run}"
    fig.add_trace(go.Scatter(x=[pts[0].started, base.started, pts[-1].started], y=[base.value] * 3,
                             mode="lines+markers", name=name, legendgroup="baseline", showlegend="baseline" not in shown,
                             legendrank=1003, line={"dash": "dot", "width": 1.5, "color": color},
                             marker={"symbol": ["circle", "star", "circle"], "size": [0, 14, 0], "color": "#555"},
                             customdata=[f"baseline run {base.run} ({when(base)})"] * 3,
                             hovertemplate="%{customdata}<br>%{y:.4g}<extra></extra>"), row=row, col=col)
    shown.add("baseline")


def _trend_div(fig: Any, metric: str, mode: str, accuracy: bool) -> str:
    """The figure's axes titles, then its section with the title and note of the mode (or of test accuracy)."""
    fig.update_yaxes(title_text="test accuracy (%)" if accuracy else UNITS.get(metric, metric))
    fig.update_xaxes(title_text="run started (UTC)")
    if accuracy:
        return figure_div(fig, "Test accuracy over time", "Mean over seeds, per run.")
    title = "Step time over time" if mode == "speed" else "Training time over time"
    note = ("Median of the raw per-step samples, error bars: its 95% CI. " if mode == "speed" else
            "Mean over seeds, error bars: std over seeds. ") + ("Labels: the framework version where it changes (hover "
                                                                "for every run's); triangles: a significant change "
                                                                "against the previous run; dashed steps: a change "
                                                                "point over the whole series; dotted level and star: "
                                                                "the pinned baseline run.")
    return figure_div(fig, title, note)


def _trend(cells: Cells, mode: str, accuracy: bool = False, points: Sequence[ChangePoint] = ()) -> str | None:
    """One panel per model (x phase), one line per cell over time: the headline value (or test accuracy),
    error bars (speed: the median's 95% CI; train: std over seeds), framework versions written where they change,
    and the runs where a change was found marked."""
    chosen = {k: [p for p in pts if (p.accuracy if accuracy else p.value) is not None] for k, pts in cells.items()
              if key_dict(k)["mode"] == mode}
    chosen = {k: pts for k, pts in chosen.items() if pts}
    if not chosen:
        return None
    names = labels(list(chosen))
    panels = list(dict.fromkeys(_panel(key_dict(k)) for k in chosen))
    frameworks = list(dict.fromkeys(key_dict(k)["framework"] for k in chosen))
    fig, cols = subplots(panels, height=300)
    shown: set[str] = set()
    for key, pts in chosen.items():
        d = key_dict(key)
        i = panels.index(_panel(d))
        row, col = i // cols + 1, i % cols + 1
        name = names[key].replace(f" {d['model']} ", " ").replace(f" {d['phase'] or d['mode']}", "", 1)
        ys = [100 * p.accuracy if accuracy else p.value for p in pts]   # type: ignore[operator]
        fig.add_trace(_line(name, d, pts, ys, accuracy, frameworks, shown), row=row, col=col)
        shown.add(name)
        if not accuracy:
            _mark_changes(fig, pts, ys, row, col, shown)
            for cp in (cp for cp in points if cp.key == key and cp.verdict != SAME):
                _mark_change_point(fig, cp, row, col, shown)
            _mark_baseline(fig, pts, row, col, shown, colour(d["framework"], frameworks))
    return _trend_div(fig, next(p.metric for pts in chosen.values() for p in pts), mode, accuracy)


def _runs_table(runs: Sequence[tuple[str, Run]]) -> str:
    body = []
    for label, run in runs:
        settings = run.meta.get("settings") or {}
        first = run.rows[0] if run.rows else {}
        versions = ", ".join(f"{n} {p.get('version') if p.get('available') else 'unavailable'}"
                             for n, p in (run.meta.get("frameworks") or {}).items() if isinstance(p, dict))
        body.append([label, run_started(run).isoformat(sep=" "), settings.get("mode") or first.get("mode"),
                     settings.get("dataset") or first.get("dataset"), settings.get("device") or first.get("device"),
                     versions or "-", run.meta.get("harness_version"), str(run.meta.get("git_commit") or "-")[:10],
                     f"{len(ok_rows(run.rows))}/{len(run.rows)}", str(run.path)])
    return table_html(["run", "started (UTC)", "mode", "dataset", "device", "framework versions", "harness", "commit",
                       "rows ok", "folder"], body)


def _changes_table(found: list[tuple[str, Point]]) -> str:
    if not found:
        return "<p>No significant change between consecutive runs of any cell.</p>"
    head = "".join(f"<th>{h}</th>" for h in ("run", "previous run", "cell", "metric", "previous", "now", "change", "test",
                                             "p", "version", "verdict"))
    body = []
    for label, p in found:
        c, prev = p.comparison, p.previous
        assert c is not None and prev is not None
        cls = "slower" if c.verdict == SLOWER else "faster"
        version = p.version if prev.version == p.version else f"{prev.version} → {p.version}"
        cells = [p.run, prev.run, label, p.metric, f"{c.a:.4g}", f"{c.b:.4g}", f"{c.change_pct:+.1f}%", c.test,
                 "-" if c.p_value is None else f"{c.p_value:.2g}", version, c.verdict]
        body.append(f'<tr class="{cls}">' + "".join(f'<td class="{"wrap" if i == 2 else ""}">{esc(v)}</td>'
                                                    for i, v in enumerate(cells)) + "</tr>")
    return f'<div class="wide"><table class="changes"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table></div>'


def _overall_cell(cp: ChangePoint, pinned: bool) -> str:
    """The latest run against the baseline (pinned, or the cell's first run), short: '+20.8% slower: run3 vs run1'."""
    o, ref = cp.overall, cp.reference
    if o is None:
        return "the latest run is the baseline"
    kind = "baseline " if pinned and ref.baseline is ref else "first run "
    return f"{o.change_pct:+.1f}% {o.verdict}: {cp.latest.run} vs {kind}{ref.run}"


def _change_points_table(points: Sequence[ChangePoint], pinned: bool) -> str:
    flagged = [cp for cp in points if cp.verdict != SAME]
    if not flagged:
        return "<p>No change point in any cell's series.</p>"
    head = "".join(f"<th>{h}</th>" for h in ("between run", "and run", "cell", "metric", "before", "after", "change",
                                             "test", "p", "q", "latest against the baseline", "verdict"))
    body = []
    for cp in flagged:
        c = cp.split.comparison
        cells = [f"{cp.before.run} ({when(cp.before)})", f"{cp.after.run} ({when(cp.after)})", cp.label, cp.before.metric,
                 f"{c.a:.4g}", f"{c.b:.4g}", f"{c.change_pct:+.1f}%", c.test, f"{cp.split.p_value:.2g}",
                 f"{cp.q_value:.2g}", _overall_cell(cp, pinned), cp.verdict]
        body.append(f'<tr class="{"slower" if cp.verdict == SLOWER else "faster"}">'
                    + "".join(f'<td class="{"wrap" if i == 2 else ""}">{esc(v)}</td>' for i, v in enumerate(cells))
                    + "</tr>")
    return (f'<div class="wide"><table class="steps changepoints"><thead><tr>{head}</tr></thead>'
            f'<tbody>{"".join(body)}</tbody></table></div>')


def _baseline_table(cells: Cells) -> str:
    """Each cell's latest run against the pinned baseline run."""
    names = labels(list(cells))
    body = []
    for key, pts in cells.items():
        p = next((p for p in reversed(pts) if p.vs_baseline), None)
        if p is None or p.vs_baseline is None or p.baseline is None:
            continue
        b = p.vs_baseline
        version = p.version if p.baseline.version == p.version else f"{p.baseline.version} → {p.version}"
        row = [names[key], p.run, p.metric, f"{b.a:.4g}", f"{b.b:.4g}", f"{b.change_pct:+.1f}%", b.test,
               "-" if b.p_value is None else f"{b.p_value:.2g}", version, b.verdict]
        cls = {SLOWER: "slower", FASTER: "faster"}.get(b.verdict, "")
        body.append(f'<tr class="{cls}">' + "".join(f'<td class="{"wrap" if i == 0 else ""}">{esc(v)}</td>'
                                                    for i, v in enumerate(row)) + "</tr>")
    head = "".join(f"<th>{h}</th>" for h in ("cell", "latest run", "metric", "baseline", "latest", "change", "test", "p",
                                             "version", "verdict"))
    return (f'<div class="wide"><table class="steps baseline"><thead><tr>{head}</tr></thead>'
            f'<tbody>{"".join(body)}</tbody></table></div>')


def render_html(root: Path, runs: Sequence[tuple[str, Run]], cells: Cells, frame: pd.DataFrame, threshold: float,
                alpha: float, points: Sequence[ChangePoint] = (), baseline: str | None = None) -> str:
    found = changes(cells)
    span = f"{run_started(runs[0][1]):%Y-%m-%d %H:%M} to {run_started(runs[-1][1]):%Y-%m-%d %H:%M} UTC"
    body = [f"<h1>convbench history: {esc(root)}</h1>",
            f"<p>{len(runs)} run(s), {span}; {len(cells)} cell(s).</p>",
            "<h2>Changes</h2>",
            f'<p class="note">Each run against the previous run of the same cell: a change counts only if p &lt; {alpha:g} '
            f"and |change| &gt; {threshold:g}% (Mann-Whitney U on the raw per-step samples of speed cells, Welch t over "
            "seeds for training times, the threshold alone with one value per side).</p>", _changes_table(found),
            "<h2>Change points</h2>",
            f'<p class="note">Each cell of three runs or more, its whole series: every split into earlier and later runs '
            "is tested with the same tests on the two parts pooled; the most significant split is the change point, its "
            f"p multiplied by the splits tried, then Benjamini-Hochberg across the {len(points)} cell(s) tested (q). A "
            f"change point counts only if q &lt; {alpha:g} and |change| &gt; {threshold:g}%: it finds a slow drift that "
            "no single step between neighbours shows.</p>", _change_points_table(points, baseline is not None)]
    if baseline:
        base = next(run for label, run in runs if label == baseline)
        body += [f"<h2>Against the baseline run {esc(baseline)}</h2>",
                 f'<p class="note">Baseline pinned with --baseline: run {esc(baseline)}, started '
                 f"{run_started(base):%Y-%m-%d %H:%M} UTC. Each cell's latest run against it (p &lt; {alpha:g} and "
                 f"|change| &gt; {threshold:g}%); history.csv has every run against it.</p>", _baseline_table(cells)]
    plots = [div for div in (_trend(cells, "speed", points=points), _trend(cells, "train", points=points),
                             _trend(cells, "train", accuracy=True)) if div]
    if plots:
        body += ["<h2>Trends</h2>", *plots]
    body += ["<h2>Runs</h2>", _runs_table(runs)]
    shown = [c for c in ("run", "started", "cell", "framework_version", "status", "metric", "value", "n", "test_accuracy",
                         "change_pct", "p_value", "verdict") if c in frame.columns]
    body += ["<h2>Every run and cell</h2>", "<details><summary>the history table (history.csv)</summary>",
             table_html(shown, [[fmt(v) if not isinstance(v, str) else v for v in row]
                                for row in frame[shown].astype(object).where(frame[shown].notna(), None).values.tolist()]),
             "</details>"]
    if runs[-1][1].meta:
        body += [f"<h2>Latest run's meta ({esc(runs[-1][0])})</h2>", meta_section(runs[-1][1].meta)]
    return page(f"convbench history: {root}", body)
