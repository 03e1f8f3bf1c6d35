"""report.html: a self-contained page, opened in a real headless Chromium (Playwright, conftest.py) with every
network request refused. The page loads without console errors, the table has a row per model and a column per
framework, plotly's figures render with data, and a screenshot is written into the test's tmp dir."""
from __future__ import annotations

from typing import Any

import pytest
from helpers import make_run, run_cli

from harness.errors import ConvbenchError
from harness.results.csvio import read_csv, write_csv
from harness.results.report_html import write_html


def table_shape(page: Any) -> tuple[list[str | None], list[str | None], list[int]]:
    """(models of the rows, frameworks of the header, cells per row) of the results table."""
    table = page.locator("table.results")
    models = [r.get_attribute("data-model") for r in table.locator("tbody tr").all()]
    frameworks = [h.get_attribute("data-framework") for h in table.locator("thead th[data-framework]").all()]
    cells = [r.locator("td").count() for r in table.locator("tbody tr").all()]
    return models, frameworks, cells


# ---- in the browser ---------------------------------------------------------------------------------------------

@pytest.mark.e2e
def test_train_report_in_a_browser(pages, tmp_path):
    run_dir = make_run(tmp_path, frameworks=("torch", "tensorflow", "paddle"), models=("lenet5", "simple_cnn"),
                       seeds=(0, 1), failed={("paddle", "simple_cnn"): "crashed"})
    page, errors, remote = pages.open(write_html(run_dir), tmp_path / "report_train.png")
    assert errors == [] and remote == []
    models, frameworks, cells = table_shape(page)
    assert models == ["lenet5", "simple_cnn"] and frameworks == ["torch", "tensorflow", "paddle"] and cells == [3, 3]
    lenet = page.locator('table.results tr[data-model="lenet5"] td').all_inner_texts()
    assert all("%" in t and " s" in t and "(n=2)" in t for t in lenet)
    assert page.locator('tr[data-model="simple_cnn"] td[data-framework="paddle"]').inner_text() == "crashed"
    pages.assert_plots_drawn(page, 3)    # accuracy against time, training time, images/s
    assert page.locator("table.settings").inner_text().count("fp32") == 3
    assert "git_commit" in page.locator("body").inner_text()
    pages.assert_png(tmp_path / "report_train.png")


@pytest.mark.e2e
def test_speed_report_in_a_browser(pages, tmp_path):
    run_dir = make_run(tmp_path, mode="speed", dataset="synthetic", frameworks=("torch", "tensorflow"),
                       models=("lenet5", "vgg16_imagenet"), seeds=(0, 1))
    page, errors, remote = pages.open(write_html(run_dir), tmp_path / "report_speed.png")
    assert errors == [] and remote == []
    models, frameworks, cells = table_shape(page)
    assert models == ["lenet5", "vgg16_imagenet"] and frameworks == ["torch", "tensorflow"] and cells == [6, 6]
    first = page.locator('tr[data-model="lenet5"] td').first.inner_text()
    assert "ms" in first and "[" in first and "img/s" in first
    pages.assert_plots_drawn(page, 2)    # step-time distributions, images/s
    assert page.locator(".js-plotly-plot").first.locator("g.trace.boxes").count() == 6   # 2 frameworks x 3 phases
    pages.assert_png(tmp_path / "report_speed.png")


@pytest.mark.e2e
def test_speed_against_batch_size_in_a_browser(pages, tmp_path):
    run_dir = make_run(tmp_path, mode="speed", dataset="synthetic", frameworks=("torch", "tensorflow"),
                       models=("lenet5",), batch_sizes=(32, 64, 128))
    page, errors, _ = pages.open(write_html(run_dir), tmp_path / "report_batches.png")
    assert errors == []
    models, _, _ = table_shape(page)
    assert models == ["lenet5"] * 3
    pages.assert_plots_drawn(page, 3)
    assert "Speed against batch size" in page.locator("body").inner_text()


# ---- the file itself ---------------------------------------------------------------------------------------------

def test_report_html_is_self_contained(tmp_path):
    text = write_html(make_run(tmp_path, frameworks=("torch", "paddle"))).read_text(encoding="utf-8")
    assert text.startswith("<!DOCTYPE html>") and "<script src" not in text and "<link" not in text
    assert text.count("Plotly.newPlot") == 3 and len(text) > 1_000_000    # plotly.js itself is inlined


def test_busy_machine_columns_only_when_present(tmp_path):
    run_dir = make_run(tmp_path, mode="speed", dataset="synthetic")
    assert "host_busy_fraction" not in write_html(run_dir).read_text(encoding="utf-8")
    rows, _ = read_csv(run_dir / "results.csv")
    write_csv([dict(r, host_busy_fraction=0.25) for r in rows], run_dir / "results.csv")
    text = write_html(run_dir, tmp_path / "out").read_text(encoding="utf-8")
    assert "<td>host_busy_fraction</td><td>0.25</td>" in text


def test_run_without_rows_and_bad_folders(tmp_path):
    run_dir = make_run(tmp_path)
    write_csv([], run_dir / "results.csv")
    assert "No cell has finished" in write_html(run_dir).read_text(encoding="utf-8")
    with pytest.raises(ConvbenchError, match="does not exist"):
        write_html(tmp_path / "missing")


def test_report_command_writes_markdown_pngs_and_html(tmp_path):
    run_dir = make_run(tmp_path, mode="speed", dataset="synthetic", frameworks=("torch", "tensorflow"))
    proc = run_cli("report", str(run_dir), timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert f"html: {run_dir / 'report.html'}" in proc.stdout
    assert {p.name for p in run_dir.iterdir()} >= {"report.md", "step_time.png", "report.html"}
