"""Fixtures of the results tests: report.html and history.html opened in a real headless Chromium (Playwright)
with every network request refused."""
from __future__ import annotations

import importlib.util
import struct
from pathlib import Path
from typing import Any, Iterator

import pytest

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


class Pages:
    """Opens pages from disk in one browser and checks what every page must show."""

    def __init__(self, browser: Any) -> None:
        self.browser = browser

    def open(self, path: Path, screenshot: Path) -> tuple[Any, list[str], list[str]]:
        """The page loaded from disk with the network refused; (page, console errors, refused requests).
        Waits until every plotly figure has drawn its SVG, then writes a full-page screenshot."""
        page = self.browser.new_page(viewport={"width": 1400, "height": 900})
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

    @staticmethod
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

    @staticmethod
    def assert_png(path: Path) -> None:
        """A full-page screenshot: a PNG of at least 1000 x 1000 pixels with something drawn."""
        data = path.read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n"
        width, height = struct.unpack(">II", data[16:24])
        assert width >= 1000 and height >= 1000 and len(data) > 20_000, (width, height, len(data))


@pytest.fixture(scope="session")
def pages() -> Iterator[Pages]:
    """One headless Chromium for every browser test; they skip with the reason where there is none."""
    if reason := browser_missing():
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield Pages(chromium)
        chromium.close()
