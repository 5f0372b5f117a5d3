"""The MLflow UI's run comparison, checked in a real headless Chromium: two tiny
experiments, their `param_count` and test RMSE on the compare-runs page. Slow.

Needs Debian's `chromium` (`make browser-deps` installs it; `.ci/run` calls that).
"""

from __future__ import annotations

import json
import math
import os
import shutil
import sqlite3
from pathlib import Path

import pytest
from playwright.sync_api import Page

from tests.helpers import project_env, run
from tests.integration.mlflow_server import mlflow_server

pytestmark = pytest.mark.slow

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def format_metric(value: float) -> str:
    """How the MLflow UI prints a metric (its `Utils.formatMetric`), for values >= 0.001."""
    digits = 3 if abs(value) < 10 else 2 if abs(value) < 100 else 1
    rounded = math.floor(value * 10**digits + 0.5) / 10**digits
    text = repr(rounded)
    return text[:-2] if text.endswith(".0") else text


# Has the names grid rendered the rows at the values grid's new scroll position? The page
# re-renders the names grid to follow the values grid, but one scroll event late (seen with
# MLflow 3.17: after scrolling back to 0 it stays at the previous position; a synthetic
# scroll event does not move it), so until it has, nudge the values grid by a pixel: a real
# scroll. Rows are placed absolutely, 45 px tall, 300 px in view.
_ROWS_AT = """([names, values]) => {
    const y = values.scrollTop;
    const shown = Array.from(names.querySelectorAll('div')).some(d => d.style.position ===
        'absolute' && parseInt(d.style.top) + 45 > y && parseInt(d.style.top) < y + 300);
    if (!shown) values.scrollTop = y + (y > 0 ? -1 : 1);
    return shown; }"""
# The value cells at row height `top`, or null until they are rendered.
_CELLS_AT = """([grid, top]) => {
    const cells = Array.from(grid.querySelectorAll('div'))
        .filter(d => d.style.position === 'absolute' && d.style.top === top)
        .map(d => d.innerText.trim());
    return cells.length ? cells : null; }"""


def metric_row(page: Page, key: str) -> tuple[list[str], int]:
    """The values shown for metric `key`, one per run, scrolled into view, and its row's
    offset in the grid.

    The compare page lists metrics in two virtualised grids (names, then values, 45 px
    rows, 300 px tall) that render only the rows in view: scroll the values grid until
    `key` is rendered, then read the value cells at the same height as its name.
    """
    names, values = (page.locator("div.ReactVirtualized__Grid").nth(i) for i in (0, 1))
    names.wait_for(timeout=180_000)
    height = int(values.evaluate("e => e.scrollHeight"))
    for offset in range(0, height + 200, 200):
        values.evaluate("(e, y) => { e.scrollTop = y; }", offset)
        # Wait for the names grid to render the rows at this scroll position (a condition,
        # not a pause): a row whose top is within the 300 px window now in view.
        page.wait_for_function(_ROWS_AT, arg=[names.element_handle(), values.element_handle()],
                               polling=100, timeout=30_000)
        name = names.get_by_text(key, exact=True)
        if name.count():
            top = name.first.evaluate("e => e.closest('div[style*=\"top\"]').style.top")
            values.evaluate("(e, y) => { e.scrollTop = y; }", int(top.removesuffix("px")))
            # The values grid renders the row a moment later: wait until its cells exist.
            cells: list[str] = page.wait_for_function(
                _CELLS_AT, arg=[values.element_handle(), top], timeout=30_000).json_value()
            return cells, int(top.removesuffix("px"))
    raise AssertionError(f"metric {key} not on the compare page")


def test_format_metric_matches_the_ui() -> None:
    assert [format_metric(v) for v in (123.456789, 98.7654321, 30651.0, 1.23456)] == [
        "123.5", "98.77", "30651", "1.235"]


def test_compare_page_shows_both_runs(project: Path, tmp_path: Path) -> None:
    if not Path(CHROMIUM).exists() and not shutil.which(CHROMIUM):
        pytest.fail(f"{CHROMIUM} not found — run `make browser-deps` (installs Debian's chromium)")
    store = tmp_path / "store"
    env = project_env(project, store)
    first = run(["dvc", "repro"], project, env, timeout=1800)
    assert first.returncode == 0, first.stdout + first.stderr
    second = run(["dvc", "exp", "run", "-n", "units32", "-S", "train.units=[32,32]"], project, env,
                 timeout=1800)
    assert second.returncode == 0, second.stdout + second.stderr

    shot = check_compare_page(store / "mlflow.db", tmp_path)
    assert shot.read_bytes()[:4] == b"\x89PNG" and shot.stat().st_size > 20_000


def check_compare_page(db_path: Path, out: Path) -> Path:
    """Open the compare page for the store's first two runs, check what it shows, and
    return the screenshot's path."""
    from playwright.sync_api import sync_playwright

    with sqlite3.connect(db_path) as db:
        runs = db.execute("select run_uuid, experiment_id from runs order by start_time").fetchall()
        metric = {(r, k): v for r, k, v in db.execute(
            "select run_uuid, key, value from latest_metrics "
            "where key in ('param_count', 'rmse_h1')")}
    assert len(runs) == 2
    ids = [r for r, _ in runs]
    assert [metric[(r, "param_count")] for r in ids] == [30_651, 12_705]

    with mlflow_server(out, ui=True, store=db_path) as url, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1100})
            page.goto(f"{url}/#/compare-runs?runs={json.dumps(ids)}"
                      f"&experiments={json.dumps([str(runs[0][1])])}")
            page.get_by_text("Run ID:").first.wait_for(timeout=180_000)
            run_ids = page.locator("tr", has_text="Run ID").first.inner_text().split()
            shown = {key: metric_row(page, key)[0] for key in ("param_count", "rmse_h1")}
            # The picture comes from a fresh load of the page, its metrics grid unscrolled:
            # scrolled programmatically, the grid's names half does not always follow its
            # values half, and a picture must not pair a name with another row's values.
            page.reload()
            grid = page.locator("div.ReactVirtualized__Grid").nth(1)
            grid.wait_for(timeout=180_000)
            grid.scroll_into_view_if_needed()
            # Drawn when its cells hold text and the fonts are loaded: conditions, not a pause.
            page.wait_for_function(
                "g => Array.from(g.querySelectorAll('div')).some(d => d.style.position === "
                "'absolute' && d.innerText.trim())", arg=grid.element_handle(), timeout=60_000)
            page.evaluate("document.fonts.ready.then(() => true)")
            shot = out / "mlflow-compare.png"
            page.screenshot(path=str(shot))
        finally:
            browser.close()

    assert run_ids[-2:] == ids
    assert shown["param_count"] == ["30651", "12705"]
    assert shown["rmse_h1"] == [format_metric(metric[(r, "rmse_h1")]) for r in ids]
    return shot
