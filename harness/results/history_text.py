"""The text ``convbench history`` prints: every run and cell as a table, the changes between neighbouring runs, the
change points over each cell's whole series and, with a pinned baseline, each cell's latest run against it."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Sequence

from harness.results.history_model import Cells, ChangePoint, Point, changes, labels
from harness.results.runs import Run
from harness.results.significance import SAME, Comparison
from harness.results.table import text_table

if TYPE_CHECKING:   # a report library (libraries.py), imported where used: convbench starts without it
    import pandas as pd


def _p(c: Comparison) -> str:
    return "-" if c.p_value is None else f"{c.p_value:.2g}"


def when(p: Point) -> str:
    return f"{p.started:%Y-%m-%d %H:%M}"


def versions(a: Point, b: Point) -> str:
    return f"version {a.version} -> {b.version}" if a.version != b.version else f"version {b.version}"


def change_line(label: str, p: Point) -> str:
    c, prev = p.comparison, p.previous
    assert c is not None and prev is not None
    return (f"{c.verdict} {c.change_pct:+.1f}% in run {p.run} (vs {prev.run}): {label}, {p.metric} "
            f"{c.a:.4g} -> {c.b:.4g} ({c.test}, p={_p(c)}); " + versions(prev, p))


def overall_text(cp: ChangePoint, pinned: bool) -> str:
    """The latest run against the baseline (pinned, or the cell's first run), as words."""
    o, ref = cp.overall, cp.reference
    if o is None:
        return f"the latest run is the baseline {ref.run}" if pinned else "one run only"
    kind = "baseline" if pinned and ref.baseline is ref else "first run"
    return (f"latest run {cp.latest.run} vs {kind} {ref.run} ({when(ref)}): {o.change_pct:+.1f}%, {o.verdict} "
            f"({o.test}, p={_p(o)})")


def change_point_line(cp: ChangePoint, pinned: bool) -> str:
    c, s = cp.split.comparison, cp.split
    n = len(cp.points)
    return (f"{cp.verdict} {c.change_pct:+.1f}% between run {cp.before.run} ({when(cp.before)}) and run {cp.after.run} "
            f"({when(cp.after)}): {cp.label}, {cp.before.metric} {c.a:.4g} over runs 1-{s.index} -> {c.b:.4g} over "
            f"runs {s.index + 1}-{n} ({c.test}, p={s.p_value:.2g} over {s.splits} splits, q={cp.q_value:.2g}); "
            + overall_text(cp, pinned))


def baseline_lines(cells: Cells, baseline: str, threshold: float, alpha: float) -> list[str]:
    """Each cell's latest run against the pinned baseline: the changed ones, one line each, and the count."""
    names = labels(list(cells))
    latest = {k: next((p for p in reversed(pts) if p.vs_baseline), None) for k, pts in cells.items()}
    missing = [names[k] for k, pts in cells.items() if not any(p.baseline for p in pts)]
    changed = [(names[k], p) for k, p in latest.items() if p and p.vs_baseline and p.vs_baseline.verdict != SAME]
    base = next((p.baseline for pts in cells.values() for p in pts if p.baseline), None)
    started = f"started {when(base)}; " if base else ""
    lines = [f"each cell's latest run against the baseline run {baseline} ({started}p < {alpha:g} and |change| > "
             f"{threshold:g}%): {len(changed)} of {sum(1 for p in latest.values() if p)} cell(s) changed"]
    for label, p in changed:
        b = p.vs_baseline
        assert b is not None and p.baseline is not None
        lines.append(f"  {b.verdict} {b.change_pct:+.1f}% in run {p.run} (vs baseline {p.baseline.run}): {label}, "
                     f"{p.metric} {b.a:.4g} -> {b.b:.4g} ({b.test}, p={_p(b)}); " + versions(p.baseline, p))
    if missing:
        lines.append(f"  not in the baseline run: {', '.join(missing)}")
    return lines


def history_text(root: Path, runs: Sequence[tuple[str, Run]], cells: Cells, frame: pd.DataFrame, skipped: Sequence[str],
                 threshold: float, alpha: float, points: Sequence[ChangePoint] = (), baseline: str | None = None) -> str:
    """The summary: the history table (``frame``), the changes, the change points, the baseline and the folders
    skipped."""
    found = changes(cells)
    text = [f"history of {len(runs)} run(s) under {root}, {len(cells)} cell(s)"
            + (f", baseline run {baseline}" if baseline else ""), ""]
    if len(frame):
        table = frame.astype(object).where(frame.notna(), None)
        extra = ["vs baseline"] if baseline else []
        text.append(text_table(["run", "started", "cell", "version", "metric", "value", "change", "p", "verdict", *extra], [
            [r["run"], r["started"], r["cell"], r["framework_version"], r["metric"] or r["status"],
             "-" if r["value"] is None else f"{r['value']:.4g}",
             "-" if r["change_pct"] is None else f"{r['change_pct']:+.1f}%",
             "-" if r["p_value"] is None else f"{r['p_value']:.2g}", r["verdict"] or "-"]
            + (["base" if r["run"] == baseline else "-" if r["baseline_change_pct"] is None
                else f"{r['baseline_change_pct']:+.1f}%"] if baseline else [])
            for r in table.to_dict("records")]))
    text += ["", f"changes against the previous run of the same cell (p < {alpha:g} and |change| > {threshold:g}%): "
             + (str(len(found)) if found else "none")]
    text += [f"  {change_line(label, p)}" for label, p in found]
    flagged = [cp for cp in points if cp.verdict != SAME]
    text += ["", f"change points over each cell's whole series (its best split; Benjamini-Hochberg across {len(points)} "
             f"cell(s) of 3+ runs: q < {alpha:g} and |change| > {threshold:g}%): " + (str(len(flagged)) if flagged else "none")]
    text += [f"  {change_point_line(cp, baseline is not None)}" for cp in flagged]
    if baseline:
        text += ["", *baseline_lines(cells, baseline, threshold, alpha)]
    text += [f"skipped: {s}" for s in skipped]
    return "\n".join(text)
