"""report.html and history.html: self-contained pages, opened in a real headless Chromium (Playwright) with every
network request refused. The page loads without console errors, the table has a row per model and a column per
framework, plotly's figures render with data, and a screenshot is written into the test's tmp dir."""
from __future__ import annotations

import importlib.util
import struct
from pathlib import Path
from typing import Any

import pytest
from helpers import make_run, run_cli

from harness.errors import ConvbenchError
from harness.results.csvio import read_csv, write_csv
from harness.results.history import write_history
from harness.results.html import write_html

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def browser_missing() -> str | None:
    """Why no browser test can run here, or None (CI installs Debian's chromium and the test extra's playwright)."""
    if not CHROMIUM.exists():
        return f"no Chromium at {CHROMIUM} (apt-get install chromium)"
    if importlib.util.find_spec("playwright") is None:
        return "playwright is not installed (pip install 'convbench[test]')"
    return None


needs_browser = pytest.mark.skipif(browser_missing() is not None, reason=browser_missing() or "")


@pytest.fixture(scope="module")
def browser() -> Any:
    from playwright.sync_api import sync_playwright
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


def open_page(browser: Any, path: Path, screenshot: Path) -> tuple[Any, list[str], list[str]]:
    """The page loaded from disk with the network refused; (page, console errors, refused requests).
    Waits until every plotly figure has drawn its SVG, then writes a full-page screenshot."""
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    errors: list[str] = []
    remote: list[str] = []
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    page.on("pageerror", lambda exc: errors.append(str(exc)))

    def refuse_network(route: Any) -> None:
        if route.request.url.startswith(("file:", "data:", "blob:")):
            route.continue_()
        else:
            remote.append(route.request.url)
            route.abort()
    page.route("**/*", refuse_network)
    page.goto(path.as_uri(), wait_until="load")
    plots = page.locator(".js-plotly-plot")
    for i in range(plots.count()):
        plots.nth(i).locator(".main-svg").first.wait_for(state="visible", timeout=15_000)
    page.screenshot(path=str(screenshot), full_page=True)
    return page, errors, remote


def assert_plots_drawn(page: Any, expected: int) -> None:
    """``expected`` plotly figures, each with a sized SVG that holds traces with data points."""
    plots = page.locator(".js-plotly-plot")
    assert plots.count() == expected
    for i in range(expected):
        plot = plots.nth(i)
        box = plot.locator(".main-svg").first.bounding_box()
        assert box and box["width"] > 300 and box["height"] > 200, box
        assert plot.locator("g.trace").count() > 0
        assert plot.locator("g.trace path").count() > 0   # lines, bars, boxes or markers


def assert_png(path: Path) -> None:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    assert width >= 1000 and height >= 1000 and len(data) > 20_000, (width, height, len(data))


def table_shape(page: Any) -> tuple[list[str | None], list[str | None], list[int]]:
    """(models of the rows, frameworks of the header, cells per row) of the results table."""
    table = page.locator("table.results")
    models = [r.get_attribute("data-model") for r in table.locator("tbody tr").all()]
    frameworks = [h.get_attribute("data-framework") for h in table.locator("thead th[data-framework]").all()]
    cells = [r.locator("td").count() for r in table.locator("tbody tr").all()]
    return models, frameworks, cells


# ---- in the browser ---------------------------------------------------------------------------------------------

@pytest.mark.e2e
@needs_browser
def test_train_report_in_a_browser(browser, tmp_path):
    run_dir = make_run(tmp_path, frameworks=("torch", "tensorflow", "paddle"), models=("lenet5", "simple_cnn"),
                       seeds=(0, 1), failed={("paddle", "simple_cnn"): "crashed"})
    page, errors, remote = open_page(browser, write_html(run_dir), tmp_path / "report_train.png")
    assert errors == [] and remote == []
    models, frameworks, cells = table_shape(page)
    assert models == ["lenet5", "simple_cnn"] and frameworks == ["torch", "tensorflow", "paddle"] and cells == [3, 3]
    lenet = page.locator('table.results tr[data-model="lenet5"] td').all_inner_texts()
    assert all("%" in t and " s" in t and "(n=2)" in t for t in lenet)
    assert page.locator('tr[data-model="simple_cnn"] td[data-framework="paddle"]').inner_text() == "crashed"
    assert_plots_drawn(page, 3)    # accuracy against time, training time, images/s
    assert page.locator("table.settings").inner_text().count("fp32") == 3
    assert "git_commit" in page.locator("body").inner_text()
    assert_png(tmp_path / "report_train.png")


@pytest.mark.e2e
@needs_browser
def test_speed_report_in_a_browser(browser, tmp_path):
    run_dir = make_run(tmp_path, mode="speed", dataset="synthetic", frameworks=("torch", "tensorflow"),
                       models=("lenet5", "vgg16_imagenet"), seeds=(0, 1))
    page, errors, remote = open_page(browser, write_html(run_dir), tmp_path / "report_speed.png")
    assert errors == [] and remote == []
    models, frameworks, cells = table_shape(page)
    assert models == ["lenet5", "vgg16_imagenet"] and frameworks == ["torch", "tensorflow"] and cells == [6, 6]
    first = page.locator('tr[data-model="lenet5"] td').first.inner_text()
    assert "ms" in first and "[" in first and "img/s" in first
    assert_plots_drawn(page, 2)    # step-time distributions, images/s
    assert page.locator(".js-plotly-plot").first.locator("g.trace.boxes").count() == 6   # 2 frameworks x 3 phases
    assert_png(tmp_path / "report_speed.png")


@pytest.mark.e2e
@needs_browser
def test_speed_against_batch_size_in_a_browser(browser, tmp_path):
    run_dir = make_run(tmp_path, mode="speed", dataset="synthetic", frameworks=("torch", "tensorflow"),
                       models=("lenet5",), batch_sizes=(32, 64, 128))
    page, errors, _ = open_page(browser, write_html(run_dir), tmp_path / "report_batches.png")
    assert errors == []
    models, _, _ = table_shape(page)
    assert models == ["lenet5"] * 3
    assert_plots_drawn(page, 3)
    assert "Speed against batch size" in page.locator("body").inner_text()


@pytest.mark.e2e
@needs_browser
def test_history_in_a_browser(browser, tmp_path):
    kw: dict[str, Any] = {"mode": "speed", "dataset": "synthetic", "frameworks": ("torch", "tensorflow"),
                          "models": ("lenet5",)}
    for i in range(3):
        make_run(tmp_path / "results", run_id=f"run{i + 1}", rng_seed=i, started=f"2026-01-0{i + 1}T09:00:00+00:00",
                 step_scale={"tensorflow": 1.2} if i == 2 else None, **kw)
    _, (_, page_path) = write_history(tmp_path / "results")
    page, errors, remote = open_page(browser, page_path, tmp_path / "history.png")
    assert errors == [] and remote == []
    assert_plots_drawn(page, 1)
    changed = page.locator("table.changes tbody tr.slower")
    assert changed.count() == 3 and all("run3" in t and "tensorflow" in t for t in changed.all_inner_texts())
    assert_png(tmp_path / "history.png")


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
