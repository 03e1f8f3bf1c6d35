"""Every run under a folder as one table, its trends over time and the runs where a cell changed
(``convbench history``): history.csv (pandas), history.html (plotly, self-contained) and a text summary.

Runs are ordered by meta.json's ``started``. Each run's cell is compared with the previous run that has the same
cell ok, with ``convbench compare``'s tests and defaults (harness.results.significance): Mann-Whitney U on the raw
per-step samples of speed cells, Welch t over seeds for training times; a change counts only if p < alpha and it is
larger than the threshold. Cells match on compare's MATCH_KEYS, so framework versions may differ between the runs.
"""
from __future__ import annotations

import datetime as dt
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import pandas as pd

from harness.errors import ConvbenchError
from harness.results import significance as cmp
from harness.results.colours import colour
from harness.results.comparison import MATCH_KEYS
from harness.results.htmlkit import esc, figure_div, meta_section, page, subplots, table_html
from harness.results.outdir import output_dir
from harness.results.runs import Run, load_run
from harness.results.stats import summarize
from harness.results.table import fmt, group, number, ok_rows, text_table

Row = dict[str, Any]
SECONDARY = MATCH_KEYS[5:]   # dataset, batch_size, ...: shown in a cell's label only when they vary
SYMBOLS = {cmp.SLOWER: ("triangle-up", "#d62728"), cmp.FASTER: ("triangle-down", "#2ca02c")}


@dataclass
class Point:
    """One cell (MATCH_KEYS) in one run: its headline value and the raw values the tests use."""
    run: str
    started: dt.datetime
    key: tuple[Any, ...]
    rows: list[Row]
    metric: str = ""
    values: list[float] = field(default_factory=list)   # ms per step (speed, raw samples) or s per seed (train)
    samples: bool = False                                 # values are raw per-step samples
    repeats: list[float] = field(default_factory=list)  # one value per row (seed): CSV medians (speed) or seconds
    value: float | None = None
    low: float | None = None
    high: float | None = None
    accuracy: float | None = None
    comparison: cmp.Comparison | None = None
    previous: Point | None = None

    @property
    def version(self) -> str:
        return ", ".join(dict.fromkeys(str(r.get("framework_version")) for r in self.rows)) or "-"


def _started(run: Run) -> dt.datetime:
    """meta.json's start as naive UTC; the results file's time when meta.json has none."""
    text = run.meta.get("started")
    try:
        when = dt.datetime.fromisoformat(str(text))
    except ValueError:
        when = dt.datetime.fromtimestamp((run.path / "results.csv").stat().st_mtime, dt.timezone.utc)
    return when.astimezone(dt.timezone.utc).replace(tzinfo=None) if when.tzinfo else when


def find_runs(root: str | Path) -> tuple[list[tuple[str, Run]], list[str]]:
    """(label, run) for every folder under ``root`` with a results.csv, oldest first, and the folders skipped."""
    path = Path(root)
    if not path.exists():
        raise ConvbenchError(f"results directory {str(path)!r} does not exist")
    if not path.is_dir():
        raise ConvbenchError(f"{str(path)!r} is not a folder")
    runs, skipped = [], []
    for csv in sorted(path.rglob("results.csv")):
        try:
            run = load_run(csv.parent)
        except ConvbenchError as exc:
            skipped.append(str(exc))
            continue
        rel = csv.parent.relative_to(path).as_posix()
        runs.append((run.name if rel == "." else rel, run))
    if not runs:
        raise ConvbenchError(f"no convbench runs under {str(path)!r} (no folder with a readable results.csv)")
    runs.sort(key=lambda lr: (_started(lr[1]), lr[0]))
    return runs, skipped


def _key(row: Row) -> tuple[Any, ...]:
    return tuple(int(v) if isinstance(v, float) and v.is_integer() else v for v in (row.get(k) for k in MATCH_KEYS))


def _measure(point: Point, run: Run) -> None:
    """Fills the point's metric, raw values and headline value from its ok rows."""
    ok = ok_rows(point.rows)
    if not ok:
        return
    if ok[0]["mode"] == "speed":
        phase = ok[0]["phase"]
        point.metric = "median step ms"
        samples = [1e3 * s for r in ok for s in run.samples.get(r["cell"], {}).get(phase, [])]
        point.repeats = [r["ms_median"] for r in ok if number(r.get("ms_median"))]
        if samples:
            s = summarize(samples)
            point.values, point.samples, point.value, point.low, point.high = samples, True, s.median, s.ci_low, s.ci_high
        else:
            point.values = point.repeats
    else:
        target = number(ok[0].get("target"))
        point.metric = "time to target s" if target else "train time s"
        point.values = [r[c] for r in ok if number(r.get(c := "time_to_target_s" if target else "train_time_s"))]
        point.repeats = point.values
        accs = [r["test_accuracy"] for r in ok if number(r.get("test_accuracy"))]
        point.accuracy = statistics.fmean(accs) if accs else None
    if point.values and point.value is None:
        point.value = statistics.fmean(point.values)
        sd = statistics.stdev(point.values) if len(point.values) > 1 else 0.0
        point.low, point.high = point.value - sd, point.value + sd


def collect(runs: Sequence[tuple[str, Run]], models: Sequence[str] = (), frameworks: Sequence[str] = (),
            threshold: float = cmp.DEFAULT_THRESHOLD, alpha: float = cmp.DEFAULT_ALPHA) -> dict[tuple[Any, ...], list[Point]]:
    """cell key -> its points in run order, each compared with the previous point that has values."""
    rows = [r for _, run in runs for r in run.rows]
    for kind, names in (("model", models), ("framework", frameworks)):
        known = sorted({str(r[kind]) for r in rows})
        if unknown := [n for n in names if n not in known]:
            raise ConvbenchError(f"unknown {kind} {unknown[0]!r} in these runs; known: {', '.join(known) or '-'}")
    cells: dict[tuple[Any, ...], list[Point]] = {}
    for label, run in runs:
        when = _started(run)
        chosen = [r for r in run.rows if (not models or r["model"] in models) and
                  (not frameworks or r["framework"] in frameworks) and (r["mode"] == "train" or r.get("phase"))]
        for key, rows in group(chosen, _key).items():
            point = Point(label, when, key, rows)
            _measure(point, run)
            earlier = [p for p in cells.get(key, []) if p.values]
            if point.values and earlier:
                prev = point.previous = earlier[-1]
                if prev.samples and point.samples:   # as compare: raw samples on both sides, else the rows' values
                    point.comparison = cmp.compare_samples(prev.values, point.values, threshold, alpha)
                elif prev.repeats and point.repeats:
                    point.comparison = cmp.compare_repeats(prev.repeats, point.repeats, threshold, alpha)
            cells.setdefault(key, []).append(point)
    return cells


def labels(keys: Sequence[tuple[Any, ...]]) -> dict[tuple[Any, ...], str]:
    """'framework model device phase' plus the secondary keys that differ between cells of the same mode."""
    dicts = {k: dict(zip(MATCH_KEYS, k)) for k in keys}
    varying = {mode: [n for n in SECONDARY if len({d[n] for d in dicts.values() if d["mode"] == mode}) > 1]
               for mode in {d["mode"] for d in dicts.values()}}
    return {k: f"{d['framework']} {d['model']} {d['device']} {d['phase'] or d['mode']}"
            + ("".join(f", {n} {fmt(d[n])}" for n in varying[d["mode"]] if d[n] is not None)) for k, d in dicts.items()}


def history_frame(cells: dict[tuple[Any, ...], list[Point]]) -> pd.DataFrame:
    """One row per run and cell, oldest first: settings, headline value, and the change against the previous run."""
    names = labels(list(cells))
    records = []
    for key, points in cells.items():
        for p in points:
            c = p.comparison
            records.append({"run": p.run, "started": p.started.isoformat(sep=" "), "cell": names[key],
                            **dict(zip(MATCH_KEYS, key)), "framework_version": p.version,
                            "status": "/".join(dict.fromkeys(r["status"] for r in p.rows)),
                            "metric": p.metric or None, "value": p.value, "low": p.low, "high": p.high,
                            "n": len(p.values), "test_accuracy": p.accuracy,
                            "previous_run": p.previous.run if p.previous else None,
                            "previous_version": p.previous.version if p.previous else None,
                            "change_pct": c.change_pct if c else None, "p_value": c.p_value if c else None,
                            "test": c.test if c else None, "verdict": c.verdict if c else None})
    frame = pd.DataFrame(records)
    return frame.sort_values(["started", "run", "cell"], kind="stable").reset_index(drop=True) if records else frame


def changes(cells: dict[tuple[Any, ...], list[Point]]) -> list[tuple[str, Point]]:
    """(cell label, point) for every point whose comparison says faster or slower, oldest first."""
    names = labels(list(cells))
    found = [(names[k], p) for k, points in cells.items() for p in points
             if p.comparison and p.comparison.verdict != cmp.SAME]
    return sorted(found, key=lambda lp: (lp[1].started, lp[1].run, lp[0]))


def change_line(label: str, p: Point) -> str:
    c, prev = p.comparison, p.previous
    assert c is not None and prev is not None
    pv = "-" if c.p_value is None else f"{c.p_value:.2g}"
    versions = f"; version {prev.version} -> {p.version}" if prev.version != p.version else f"; version {p.version}"
    return (f"{c.verdict} {c.change_pct:+.1f}% in run {p.run} (vs {prev.run}): {label}, {p.metric} "
            f"{c.a:.4g} -> {c.b:.4g} ({c.test}, p={pv}){versions}")


# ---- history.html ----------------------------------------------------------------------------------------------

def _trend(cells: dict[tuple[Any, ...], list[Point]], mode: str, accuracy: bool = False) -> str | None:
    """One panel per model (x phase), one line per cell over time: the headline value (or test accuracy),
    error bars (speed: the median's 95% CI; train: std over seeds), framework versions written where they change,
    and the runs where a change was found marked."""
    import plotly.graph_objects as go
    chosen = {k: [p for p in pts if (p.accuracy if accuracy else p.value) is not None] for k, pts in cells.items()
              if dict(zip(MATCH_KEYS, k))["mode"] == mode}
    chosen = {k: pts for k, pts in chosen.items() if pts}
    if not chosen:
        return None
    names = labels(list(chosen))
    panels = list(dict.fromkeys(f"{d['model']} · {d['phase'] or d['mode']}"
                                for d in (dict(zip(MATCH_KEYS, k)) for k in chosen)))
    frameworks = list(dict.fromkeys(dict(zip(MATCH_KEYS, k))["framework"] for k in chosen))
    fig, cols = subplots(panels, height=300)
    shown: set[str] = set()
    for key, pts in chosen.items():
        d = dict(zip(MATCH_KEYS, key))
        i = panels.index(f"{d['model']} · {d['phase'] or d['mode']}")
        row, col = i // cols + 1, i % cols + 1
        name = names[key].replace(f" {d['model']} ", " ").replace(f" {d['phase'] or d['mode']}", "", 1)
        xs = [p.started for p in pts]
        ys = [100 * p.accuracy if accuracy else p.value for p in pts]   # type: ignore[operator]
        text = [f"→ {p.version}" if j and p.version != pts[j - 1].version else "" for j, p in enumerate(pts)]
        hover = [f"run {p.run}<br>{d['framework']} {p.version}" + (f"<br>{p.comparison.verdict} "
                 f"{p.comparison.change_pct:+.1f}% vs {p.previous.run}" if p.comparison and p.previous else "")
                 for p in pts]
        error = None if accuracy else {"type": "data", "symmetric": False, "array": [p.high - p.value for p in pts],
                                       "arrayminus": [p.value - p.low for p in pts]}   # type: ignore[operator]
        fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines+markers+text", name=name, legendgroup=name,
                                 showlegend=name not in shown, text=text, textposition="top left",
                                 textfont={"size": 10}, line={"color": colour(d["framework"], frameworks)},
                                 error_y=error, customdata=hover,
                                 hovertemplate="%{customdata}<br>%{y:.4g}<extra>" + esc(name) + "</extra>"),
                      row=row, col=col)
        shown.add(name)
        for verdict, (symbol, color) in SYMBOLS.items():
            hits = [(p, y) for p, y in zip(pts, ys) if not accuracy and p.comparison and p.comparison.verdict == verdict]
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
    metric = next(p.metric for pts in chosen.values() for p in pts)
    unit = "test accuracy (%)" if accuracy else {"median step ms": "median step time (ms)", "train time s": "training time (s)",
                                                  "time to target s": "time to target (s)"}.get(metric, metric)
    fig.update_yaxes(title_text=unit)
    fig.update_xaxes(title_text="run started (UTC)")
    if accuracy:
        return figure_div(fig, "Test accuracy over time", "Mean over seeds, per run.")
    title = "Step time over time" if mode == "speed" else "Training time over time"
    note = ("Median of the raw per-step samples, error bars: its 95% CI. " if mode == "speed" else
            "Mean over seeds, error bars: std over seeds. ") + ("Labels: the framework version where it changes (hover "
                                                                "for every run's); triangles: a significant change "
                                                                "against the previous run.")
    return figure_div(fig, title, note)


def _runs_table(runs: Sequence[tuple[str, Run]]) -> str:
    body = []
    for label, run in runs:
        settings = run.meta.get("settings") or {}
        first = run.rows[0] if run.rows else {}
        versions = ", ".join(f"{n} {p.get('version') if p.get('available') else 'unavailable'}"
                             for n, p in (run.meta.get("frameworks") or {}).items() if isinstance(p, dict))
        body.append([label, _started(run).isoformat(sep=" "), settings.get("mode") or first.get("mode"),
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
        cls = "slower" if c.verdict == cmp.SLOWER else "faster"
        version = p.version if prev.version == p.version else f"{prev.version} → {p.version}"
        cells = [p.run, prev.run, label, p.metric, f"{c.a:.4g}", f"{c.b:.4g}", f"{c.change_pct:+.1f}%", c.test,
                 "-" if c.p_value is None else f"{c.p_value:.2g}", version, c.verdict]
        body.append(f'<tr class="{cls}">' + "".join(f'<td class="{"wrap" if i == 2 else ""}">{esc(v)}</td>'
                                                    for i, v in enumerate(cells)) + "</tr>")
    return f'<div class="wide"><table class="changes"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table></div>'


def render_html(root: Path, runs: Sequence[tuple[str, Run]], cells: dict[tuple[Any, ...], list[Point]],
                frame: pd.DataFrame, threshold: float, alpha: float) -> str:
    found = changes(cells)
    span = f"{_started(runs[0][1]):%Y-%m-%d %H:%M} to {_started(runs[-1][1]):%Y-%m-%d %H:%M} UTC"
    body = [f"<h1>convbench history: {esc(root)}</h1>",
            f"<p>{len(runs)} run(s), {span}; {len(cells)} cell(s).</p>",
            "<h2>Changes</h2>",
            f'<p class="note">Each run against the previous run of the same cell: a change counts only if p &lt; {alpha:g} '
            f"and |change| &gt; {threshold:g}% (Mann-Whitney U on the raw per-step samples of speed cells, Welch t over "
            "seeds for training times, the threshold alone with one value per side).</p>", _changes_table(found)]
    plots = [div for div in (_trend(cells, "speed"), _trend(cells, "train"), _trend(cells, "train", accuracy=True)) if div]
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


# ---- the command's work ----------------------------------------------------------------------------------------

def write_history(root: str | Path, out_dir: str | Path | None = None, models: Sequence[str] = (),
                  frameworks: Sequence[str] = (), threshold: float | str = cmp.DEFAULT_THRESHOLD,
                  alpha: float | str = cmp.DEFAULT_ALPHA) -> tuple[str, list[Path]]:
    """Reads every run under ``root``; writes history.csv and history.html into ``out_dir`` (default ``root``).
    Returns (the text summary, the files written)."""
    threshold, alpha, _ = cmp.levels(threshold, alpha)
    path = Path(root)
    runs, skipped = find_runs(path)
    cells = collect(runs, models, frameworks, threshold, alpha)
    frame = history_frame(cells)
    out = output_dir(out_dir, path)
    csv, page_path = out / "history.csv", out / "history.html"
    frame.to_csv(csv, index=False)
    page_path.write_text(render_html(path, runs, cells, frame, threshold, alpha), encoding="utf-8")
    found = changes(cells)
    text = [f"history of {len(runs)} run(s) under {path}, {len(cells)} cell(s)", ""]
    if len(frame):
        table = frame.astype(object).where(frame.notna(), None)
        text.append(text_table(["run", "started", "cell", "version", "metric", "value", "change", "p", "verdict"], [
            [r["run"], r["started"], r["cell"], r["framework_version"], r["metric"] or r["status"],
             "-" if r["value"] is None else f"{r['value']:.4g}",
             "-" if r["change_pct"] is None else f"{r['change_pct']:+.1f}%",
             "-" if r["p_value"] is None else f"{r['p_value']:.2g}", r["verdict"] or "-"]
            for r in table.to_dict("records")]))
    text += ["", f"changes against the previous run of the same cell (p < {alpha:g} and |change| > {threshold:g}%): "
             + (str(len(found)) if found else "none")]
    text += [f"  {change_line(label, p)}" for label, p in found]
    text += [f"skipped: {s}" for s in skipped]
    return "\n".join(text), [csv, page_path]
