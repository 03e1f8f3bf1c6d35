"""Every run under a folder as one table, its trends over time and the runs where a cell changed
(``convbench history``): history.csv (history_frame), history.html (history_html) and a text summary (history_text).

Runs are ordered by meta.json's ``started``. Each run's cell is compared with the previous run that has the same
cell ok, with ``convbench compare``'s tests and defaults (harness.results.significance): Mann-Whitney U on the raw
per-step samples of speed cells, Welch t over seeds for training times; a change counts only if p < alpha and it is
larger than the threshold. Cells match on compare's MATCH_KEYS (cells.py), so framework versions may differ between
the runs.

Each cell's whole series is also tested for one change point (changepoint.py: the best split of the series, Mann-Whitney
U or Welch t on the two parts pooled, Bonferroni over the splits, Benjamini-Hochberg across cells), which finds a slow
drift that no single step between neighbours shows. With ``baseline`` (a run's label, run id or folder under ``root``)
every run's cell is also compared with that pinned run's.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

from harness.atomic import write_atomic
from harness.results import libraries
from harness.results.history_frame import history_frame
from harness.results.history_html import render_html
from harness.results.history_model import baseline_label, change_points, collect, find_runs
from harness.results.history_text import history_text
from harness.results.outdir import output_dir
from harness.results.significance import DEFAULT_ALPHA, DEFAULT_THRESHOLD, levels


def write_history(root: str | Path, out_dir: str | Path | None = None, models: Sequence[str] = (),
                  frameworks: Sequence[str] = (), threshold: float | str = DEFAULT_THRESHOLD,
                  alpha: float | str = DEFAULT_ALPHA, baseline: str | None = None) -> tuple[str, list[Path]]:
    """Reads every run under ``root``; writes history.csv and history.html into ``out_dir`` (default ``root``).
    Returns (the text summary, the files written)."""
    libraries.require("convbench history")
    threshold_pct, alpha, _ = levels(threshold, alpha)
    path = Path(root)
    runs, skipped = find_runs(path)
    base = None if baseline is None else baseline_label(path, runs, skipped, baseline)
    cells = collect(runs, models, frameworks, threshold_pct, alpha, base)
    points = change_points(cells, threshold_pct, alpha)
    frame = history_frame(cells, points)
    out = output_dir(out_dir, path)
    csv, page_path = out / "history.csv", out / "history.html"
    write_atomic(csv, frame.to_csv(index=False))
    write_atomic(page_path, render_html(path, runs, cells, frame, threshold_pct, alpha, points, base))
    return history_text(path, runs, cells, frame, skipped, threshold_pct, alpha, points, base), [csv, page_path]
