"""What a user sees in a browser: the MLflow UI that `metricbench ui` opens, and the HTML report.

Chromium driven by Playwright (headless, no network of its own). One `metricbench ui` for the module,
over the smoke run's store; its last test stops it with Ctrl-C (SIGINT).
"""

from __future__ import annotations

import json
import os
import shutil
import signal

import pytest

try:
    from playwright.sync_api import sync_playwright
except ImportError:
    pytest.skip("the browser tests need the `playwright` package (pip install -e '.[test]')", allow_module_level=True)

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium" if os.access("/usr/bin/chromium", os.X_OK) else shutil.which("chromium")
if CHROMIUM is None:
    pytest.skip(
        "the browser tests need Chromium (/usr/bin/chromium or `chromium` on PATH: apt-get install chromium)",
        allow_module_level=True,
    )

from helpers.ui_process import UiProcess, alive, descendants  # noqa: E402
from metricbench.bench.cli import main  # noqa: E402
from metricbench.bench.track.schema import cell_run_name  # noqa: E402

FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
VIEWPORT = {"width": 1920, "height": 1200}  # a full-HD screen; MLflow's assistant panel takes a third of it at first
NAME, TARGET = "attributes.`Run Name`", "metrics.`target_test`"
COLUMNS = {"tags.`task`": "task", "tags.`method`": "method", "tags.`seed`": "seed", "tags.`target_metric`": "target_metric"}


@pytest.fixture(scope="module")
def browser():
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def records(smoke_run):
    out, _ = smoke_run
    return [json.loads(path.read_text()) for path in sorted((out / "cells").glob("*.json"))]


@pytest.fixture(scope="module")
def app(smoke_run):
    out, _ = smoke_run
    started = UiProcess("--out", str(out), "--port", "0")
    yield started
    started.close()


def _open_runs_page(browser, app, requests: list[str] | None = None):
    page = browser.new_page(viewport=VIEWPORT)
    if requests is not None:
        page.on("request", lambda request: requests.append(request.url))
    page.goto(app.link)
    page.locator(".ag-center-cols-container .ag-row").first.wait_for(timeout=60_000)
    return page


def _cell(page, row: int, column: str):
    return page.locator(f'.ag-row[row-index="{row}"] .ag-cell[col-id="{column}"]')


def _shown(cell) -> bool:
    """Visible on the screen as it is: inside the window and on top at its centre (nothing to click or scroll)."""
    return cell.evaluate(
        """cell => { const box = cell.getBoundingClientRect();
            if (box.width === 0 || box.right > window.innerWidth || box.bottom > window.innerHeight) return false;
            const top = document.elementFromPoint(box.left + box.width / 2, box.top + box.height / 2);
            return top !== null && cell.contains(top); }"""
    )


def _whole(cell) -> bool:
    """No text of the cell is cut (an ellipsis hides the end of a run name: the seed): every text's box lies
    inside every box up to the cell that clips what overflows it."""
    return cell.evaluate(
        """cell => { const walker = document.createTreeWalker(cell, NodeFilter.SHOW_TEXT);
            for (let text = walker.nextNode(); text; text = walker.nextNode()) {
                if (!text.textContent.trim()) continue;
                const range = document.createRange(); range.selectNodeContents(text);
                const box = range.getBoundingClientRect();
                if (box.width === 0) continue;  // not rendered
                const clips = [];
                for (let e = text.parentElement; e && e !== cell.parentElement; e = e.parentElement) {
                    if (e === cell || getComputedStyle(e).overflowX !== 'visible') clips.push(e.getBoundingClientRect());
                }
                if (clips.some(clip => clip.width <= 2)) continue;  // text for screen readers only (a colour's name)
                if (clips.some(clip => box.left < clip.left - 1 || box.right > clip.right + 1)) return false;
            }
            return true; }"""
    )


def test_the_link_shows_one_row_per_cell_with_task_method_seed_and_the_target_value(browser, app, records):
    requests: list[str] = []
    page = _open_runs_page(browser, app, requests)
    page.get_by_text(f"{len(records)} matching runs").wait_for()  # the invocation's run is filtered out
    expected = {cell_run_name(r): r for r in records}
    assert page.locator(".ag-center-cols-container .ag-row").count() == len(records)
    seen = {}
    for row in range(len(records)):
        name = _cell(page, row, NAME)
        assert _shown(name) and _whole(name), f"row {row}: the run name is hidden or cut: {name.inner_text()!r}"
        record = expected[name.locator("a").inner_text().strip()]  # the link to the run's page
        target = _cell(page, row, TARGET)
        assert _shown(target) and _whole(target), f"row {row}: the target value is hidden or cut"
        assert float(target.inner_text()) == pytest.approx(record["metrics"][record["target_metric"]], rel=1e-12)
        for column, key in COLUMNS.items():
            cell = _cell(page, row, column)
            assert _shown(cell), f"row {row}: column {key} is not on the screen"
            assert cell.inner_text().strip() == str(record[key])
        seen[record["cell_id"]] = row
    assert len(seen) == len(records)  # one row per cell, each cell once
    assert all(url.startswith((app.server, "data:", "blob:")) for url in requests), sorted(set(requests))
    page.close()


def test_two_selected_cells_compare_with_their_metrics(browser, app, records):
    page = _open_runs_page(browser, app)
    names = [_cell(page, row, NAME).locator("a").inner_text().strip() for row in (0, 1)]
    for row in (0, 1):
        page.locator(f'.ag-pinned-left-cols-container .ag-row[row-index="{row}"] .ag-selection-checkbox input').check()
    page.get_by_test_id("runs-compare-button").click()
    page.get_by_text("Comparing 2 Runs").wait_for(timeout=60_000)
    for name in names:
        assert page.get_by_text(name, exact=True).count() >= 1
    # the metrics table lists every metric of the two runs (alphabetically, virtualised): scroll to target_test
    first = page.get_by_text("finetune_seconds", exact=True)
    first.wait_for()
    table = first.evaluate_handle("e => e.closest('.ReactVirtualized__Grid').parentElement.parentElement").as_element()
    target = page.get_by_text("target_test", exact=True)
    for _ in range(60):
        if target.count():
            break
        table.evaluate("t => t.querySelectorAll('.ReactVirtualized__Grid').forEach(g => { g.scrollTop += 200; })")
        page.wait_for_timeout(100)
    target.scroll_into_view_if_needed()
    values = target.evaluate(
        """name => { const cell = name.closest('.ReactVirtualized__Grid__innerScrollContainer > *');
            const table = name.closest('.ReactVirtualized__Grid').parentElement.parentElement;
            return [...table.querySelectorAll('.ReactVirtualized__Grid__innerScrollContainer > *')]
                .filter(c => c.style.top === cell.style.top && !c.contains(name)).map(c => c.innerText.trim()); }"""
    )
    by_name = {cell_run_name(r): r["metrics"][r["target_metric"]] for r in records}
    assert len(values) == 2, values
    assert sorted(float(v) for v in values) == pytest.approx(sorted(by_name[n] for n in names), abs=6e-4, rel=1e-3)
    page.close()


def test_ctrl_c_stops_the_ui_and_everything_it_started(app):
    server = descendants(app.process.pid)
    assert server, "the UI's server is not running"
    assert app.stop(signal.SIGINT) == 0
    assert not alive(server | {app.process.pid}), "a process of the UI outlived it"
    assert "Traceback" not in "".join(app.stderr)


def test_the_html_report_is_one_self_contained_file(browser, smoke_run):
    out, _ = smoke_run
    assert main(["report", "--out", str(out)]) == 0
    report = out / "report.html"
    page = browser.new_page(viewport=VIEWPORT)
    errors: list[str] = []
    requests: list[str] = []
    page.on("console", lambda message: message.type == "error" and errors.append(message.text))
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("request", lambda request: requests.append(request.url))
    page.goto(report.as_uri(), wait_until="load")
    images = page.evaluate("[...document.images].map(i => [i.getAttribute('src').slice(0, 40), i.complete, i.naturalWidth])")
    assert images, "the report shows no image"
    for src, complete, width in images:
        assert src.startswith("data:image/") and complete and width > 0, (src, complete, width)
    assert not errors, errors
    assert all(url.startswith(("file:", "data:")) for url in requests), sorted(set(requests))
    page.close()
