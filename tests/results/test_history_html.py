"""history.html: a self-contained page, opened in a real headless Chromium (Playwright, conftest.py) with every
network request refused: no console errors, the trend figure drawn, the runs where a cell changed listed, the change
points between runs and the pinned baseline in their tables and drawn on the trend figure."""
from __future__ import annotations

from typing import Any

import pytest
from helpers import make_run

from harness.results.history import write_history


@pytest.mark.e2e
def test_history_in_a_browser(pages, tmp_path):
    kw: dict[str, Any] = {"mode": "speed", "dataset": "synthetic", "frameworks": ("torch", "tensorflow"),
                          "models": ("lenet5",)}
    for i in range(3):
        make_run(tmp_path / "results", run_id=f"run{i + 1}", rng_seed=i, started=f"2026-01-0{i + 1}T09:00:00+00:00",
                 step_scale={"tensorflow": 1.2} if i == 2 else None, **kw)
    _, (_, page_path) = write_history(tmp_path / "results", baseline="run1")
    page, errors, remote = pages.open(page_path, tmp_path / "history.png")
    assert errors == [] and remote == []
    pages.assert_plots_drawn(page, 1)
    changed = page.locator("table.changes tbody tr.slower")
    assert changed.count() == 3 and all("run3" in t and "tensorflow" in t for t in changed.all_inner_texts())
    steps = page.locator("table.changepoints tbody tr.slower").all_inner_texts()
    assert len(steps) == 3 and all("run2 (2026-01-02 09:00)" in t and "run3 (2026-01-03 09:00)" in t
                                   and "run3 vs baseline run1" in t for t in steps)
    against = page.locator("table.baseline tbody tr.slower").all_inner_texts()
    assert len(against) == 3 and all(t.startswith("tensorflow") and "run3" in t for t in against)
    legend = page.locator(".js-plotly-plot .legendtext").all_text_contents()
    assert "change point" in legend and "baseline run1" in legend          # the step and the baseline level drawn
    drawn = page.evaluate("""() => document.querySelector('.js-plotly-plot').data
        .filter(t => t.name === 'change point' || t.name === 'baseline run1').map(t => [t.name, t.x.length])""")
    assert sorted(drawn) == [["baseline run1", 3]] * 6 + [["change point", 4]] * 3   # a level per cell, a step per change
    pages.assert_png(tmp_path / "history.png")
