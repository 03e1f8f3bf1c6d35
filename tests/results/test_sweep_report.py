"""A real batch sweep (torch, lenet5 at batch 4 and 8, 3 timed steps) through the CLI: each row records the batch it
ran, the terminal table and report.md have a line per batch size, and report.html's 'Speed against batch size'
chart draws in a real headless Chromium, one line per framework over both batch sizes on a log axis. The chart's
own screenshot is left in the test's tmp dir (sweep_chart.png)."""
from __future__ import annotations

import csv

import pytest
from helpers import make_run, needs, run_cli

from harness.results.report import render_markdown
from harness.results.runs import load_run
from harness.results.table import comparison_table, swept_columns


@pytest.mark.e2e
@needs("torch")
def test_a_batch_sweep_run_its_table_and_chart(pages, tmp_path):
    proc = run_cli("run", "--frameworks", "torch", "--mode", "speed", "--models", "lenet5", "--batch-size", "4,8",
                   "--steps", "3", "--threads", "1", "--output", str(tmp_path / "results"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "sweeping batch 4,8" in proc.stdout
    run_dir = next((tmp_path / "results").iterdir())
    with open(run_dir / "results.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert {(r["cell"], r["phase"], r["batch_size"], r["threads"]) for r in rows} == {
        (f"torch-lenet5-cpu-b{b}", p, str(b), "1") for b in (4, 8) for p in ("forward", "forward_backward", "train_step")}
    # the worker ran what the cell asked for: samples.json has each cell's own timed steps
    assert all(r["status"] == "ok" and float(r["images_per_sec"]) > 0 for r in rows)
    table = proc.stdout[proc.stdout.index("model "):].splitlines()
    lines = [line.split("  ")[0] for line in table[2:8]]
    assert lines == [f"lenet5 {p} batch {b}" for p in ("forward", "forward_backward", "train_step") for b in (4, 8)]
    assert all("img/s" in line for line in table[2:8])

    report = run_cli("report", str(run_dir), timeout=120)
    assert report.returncode == 0, report.stderr
    md = (run_dir / "report.md").read_text()
    assert "| network | phase | batch | torch |" in md
    assert "| lenet5 | train_step | 4 |" in md and "| lenet5 | train_step | 8 |" in md

    page, errors, remote = pages.open(run_dir / "report.html", tmp_path / "report_sweep.png")
    assert errors == [] and remote == []
    chart = page.locator("section.plot", has=page.locator("h3", has_text="Speed against batch size"))
    assert chart.count() == 1
    plot = chart.locator(".js-plotly-plot")
    layout = plot.evaluate("el => ({x: el._fullLayout.xaxis.type, titles: el._fullLayout.annotations.map(a => a.text),"
                           " traces: el.data.map(t => [t.name, t.x, t.y.length])})")
    assert layout["x"] == "log" and layout["titles"] == ["lenet5, forward", "lenet5, forward_backward",
                                                         "lenet5, train_step"]
    assert layout["traces"] == [["torch", [4, 8], 2]] * 3   # one line per framework in each model's chart
    assert plot.locator("g.trace.scatter path.js-line").count() == 3
    chart.screenshot(path=str(tmp_path / "sweep_chart.png"))
    pages.assert_png(tmp_path / "report_sweep.png")


def test_tables_of_a_sweep_keep_each_batch_apart(tmp_path):
    """Seeds pool, batch sizes never do: a line per model, phase and batch in the terminal table and report.md."""
    speed = load_run(make_run(tmp_path, run_id="speed", mode="speed", dataset="synthetic", frameworks=("torch", "jax"),
                              seeds=(0, 1), batch_sizes=(32, 64)))
    assert swept_columns(speed.rows) == ["batch_size"]
    table = comparison_table(speed.rows).splitlines()
    assert [line.split("  ")[0] for line in table[2:4]] == ["lenet5 forward batch 32", "lenet5 forward batch 64"]
    assert len(table) == 2 + 6 + 2 and table[-1] == "sweep: one line per batch size (as each row ran)"
    md = render_markdown(speed, {})
    assert "| network | phase | batch | torch | jax |" in md and md.count("| lenet5 | train_step |") == 2
    train = load_run(make_run(tmp_path, run_id="train", frameworks=("torch",), seeds=(0, 1), batch_sizes=(32, 64)))
    assert "| lenet5 batch 32 |" in render_markdown(train, {}) and "(n=2)" in render_markdown(train, {})
    plain = load_run(make_run(tmp_path, run_id="plain", mode="speed", dataset="synthetic", seeds=(0, 1)))
    assert swept_columns(plain.rows) == [] and "lenet5 forward " in comparison_table(plain.rows)
