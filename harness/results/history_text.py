"""The text ``convbench history`` prints: every run and cell as a table, then the changes found, one line each."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Sequence

from harness.results.history_model import Cells, Point, changes
from harness.results.runs import Run
from harness.results.table import text_table

if TYPE_CHECKING:   # a report library (libraries.py), imported where used: convbench starts without it
    import pandas as pd


def change_line(label: str, p: Point) -> str:
    c, prev = p.comparison, p.previous
    assert c is not None and prev is not None
    pv = "-" if c.p_value is None else f"{c.p_value:.2g}"
    versions = f"; version {prev.version} -> {p.version}" if prev.version != p.version else f"; version {p.version}"
    return (f"{c.verdict} {c.change_pct:+.1f}% in run {p.run} (vs {prev.run}): {label}, {p.metric} "
            f"{c.a:.4g} -> {c.b:.4g} ({c.test}, p={pv}){versions}")


def history_text(root: Path, runs: Sequence[tuple[str, Run]], cells: Cells, frame: pd.DataFrame, skipped: Sequence[str],
                 threshold: float, alpha: float) -> str:
    """The summary: the history table (``frame``), the changes and the folders skipped."""
    found = changes(cells)
    text = [f"history of {len(runs)} run(s) under {root}, {len(cells)} cell(s)", ""]
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
    return "\n".join(text)
