"""The MLflow UI, checked in a real headless Chromium on two tiny experiments: the runs table
(opened as `make ui` opens it) shows the runs under their DVC experiment names with their
dataset, and the compare-runs page their `param_count` and test RMSE. Slow.

Needs Debian's `chromium` (`make browser-deps` installs it; `.ci/run` calls that).
"""

from __future__ import annotations

import json
import math
import os
import shutil
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, sync_playwright

from crypto_forecast.tracking.ui import runs_url
from tests.helpers import project_env, run, top_runs_sql
from tests.integration.mlflow_server import mlflow_server

pytestmark = [pytest.mark.slow, pytest.mark.long]

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def format_metric(value: float) -> str:
    """How the MLflow UI prints a metric (its `Utils.formatMetric`), for values >= 0.001."""
    digits = 3 if abs(value) < 10 else 2 if abs(value) < 100 else 1
    rounded = math.floor(value * 10**digits + 0.5) / 10**digits
    text = repr(rounded)
    return text[:-2] if text.endswith(".0") else text


# Run in the page until it returns something: scroll the compare page's metric grids a step
# at a time until `key`'s row is rendered, then its value cells (one per run). The page
# lists metrics in two virtualised grids (names, then values, 45 px rows, 300 px tall) that
# render only the rows in view; Playwright calls this again after each re-render.
FIND_METRIC_ROW = """key => {
  const [names, values] = document.querySelectorAll('div.ReactVirtualized__Grid');
  if (!names || !values) return null;
  const name = Array.from(names.querySelectorAll('div[style*="top"]'))
    .find(d => d.innerText.trim() === key);
  if (!name) {
    values.scrollTop = values.scrollTop + 200 >= values.scrollHeight ? 0 : values.scrollTop + 200;
    return null;
  }
  const top = name.style.top;
  values.scrollTop = parseInt(top);
  const cells = Array.from(values.querySelectorAll('div'))
    .filter(d => d.style.position === 'absolute' && d.style.top === top)
    .map(d => d.innerText.trim());
  return cells.length ? {cells, top: parseInt(top)} : null;
}"""

# The runs table (ag-grid): {run id: {column: text}} once every run in `ids` shows its name
# and dataset, else null.
RUNS_TABLE = """ids => {
  const rows = {};
  for (const cell of document.querySelectorAll('[role="gridcell"][col-id]')) {
    const row = cell.closest('[role="row"][row-id]');
    // A name cell also holds the run's colour swatch: read its link.
    if (row) (rows[row.getAttribute('row-id')] ??= {})[cell.getAttribute('col-id')] =
      (cell.querySelector('a') ?? cell).innerText.trim();
  }
  const ready = ids.every(id => rows[id] && rows[id]['attributes.`Run Name`']
                                 && rows[id]['attributes.`Dataset`']);
  return ready ? rows : null;
}"""


def metric_row(page: Page, key: str) -> tuple[list[str], int]:
    """The values shown for metric `key`, one per run, scrolled into view, and its row's
    offset in the grid."""
    found = page.wait_for_function(FIND_METRIC_ROW, arg=key, polling=200, timeout=180_000)
    row: dict[str, Any] = found.json_value()
    return list(row["cells"]), int(row["top"])


def test_format_metric_matches_the_ui() -> None:
    assert [format_metric(v) for v in (123.456789, 98.7654321, 30651.0, 1.23456)] == [
        "123.5", "98.77", "30651", "1.235"]


def test_runs_and_compare_pages(project: Path, tmp_path: Path) -> None:
    if not Path(CHROMIUM).exists() and not shutil.which(CHROMIUM):
        pytest.fail(f"{CHROMIUM} not found — run `make browser-deps` (installs Debian's chromium)")
    store = tmp_path / "store"
    env = project_env(project, store)
    branch = run(["git", "rev-parse", "--abbrev-ref", "HEAD"], project, env).stdout.strip()
    first = run(["dvc", "repro"], project, env, timeout=1800)
    assert first.returncode == 0, first.stdout + first.stderr
    second = run(["dvc", "exp", "run", "-n", "units32", "-S", "train.units=[32,32]"], project, env,
                 timeout=1800)
    assert second.returncode == 0, second.stdout + second.stderr

    db_path = store / "mlflow.db"
    with mlflow_server(tmp_path, ui=True, store=db_path) as url, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1100})
            shots = [check_runs_page(page, url, db_path, {"": branch, "units32": "units32"},
                                     tmp_path),
                     check_compare_page(page, url, db_path, tmp_path)]
        finally:
            browser.close()
    for shot in shots:
        assert shot.read_bytes()[:4] == b"\x89PNG" and shot.stat().st_size > 20_000


def check_runs_page(page: Page, url: str, db_path: Path, names: dict[str, str], out: Path
                    ) -> Path:
    """Open the experiment as `make ui` does, check each run's name (by its DVC experiment,
    "" for a plain `dvc repro`) and its Dataset cell; return the screenshot's path."""
    with sqlite3.connect(db_path) as db:
        runs = db.execute(top_runs_sql("run_uuid, experiment_id", "start_time")).fetchall()
        exp_name = dict(db.execute("select run_uuid, value from tags where key = 'dvc_exp_name'"))
        datasets = {r: n for r, n in db.execute(
            "select i.destination_id, d.name from inputs i join datasets d "
            "on i.source_id = d.dataset_uuid where i.destination_type = 'RUN'")}
        kind = db.execute("select value from experiment_tags where key = 'mlflow.experimentKind'"
                          ).fetchall()
    assert kind == [("custom_model_development",)]
    ids = [r for r, _ in runs]
    assert sorted(exp_name.get(r, "") for r in ids) == sorted(names)
    assert {datasets[r] for r in ids} == {"ETH-USD-synthetic"}

    page.goto(runs_url(url, str(runs[0][1])))
    table = page.wait_for_function(RUNS_TABLE, arg=ids, polling=200, timeout=180_000).json_value()
    shown = {r: table[r]["attributes.`Run Name`"] for r in ids}
    assert shown == {r: names[exp_name.get(r, "")] for r in ids}
    for r in ids:
        assert table[r]["attributes.`Dataset`"].startswith("ETH-USD-synthetic ("), table[r]
    shot = out / "mlflow-runs.png"
    page.screenshot(path=str(shot))
    return shot


def check_compare_page(page: Page, url: str, db_path: Path, out: Path) -> Path:
    """Open the compare page for the store's first two runs, check what it shows, and
    return the screenshot's path."""
    with sqlite3.connect(db_path) as db:
        runs = db.execute(top_runs_sql("run_uuid, experiment_id", "start_time")).fetchall()
        metric = {(r, k): v for r, k, v in db.execute(
            "select run_uuid, key, value from latest_metrics "
            "where key in ('param_count', 'rmse_h1')")}
    assert len(runs) == 2
    ids = [r for r, _ in runs]
    assert [metric[(r, "param_count")] for r in ids] == [30_651, 12_705]

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
    page.wait_for_function(RENDERED_VALUES, polling=200, timeout=60_000)
    shot = out / "mlflow-compare.png"
    page.screenshot(path=str(shot))

    assert run_ids[-2:] == ids
    assert shown["param_count"] == ["30651", "12705"]
    assert shown["rmse_h1"] == [format_metric(metric[(r, "rmse_h1")]) for r in ids]
    return shot


# The compare page's metric grids have drawn their first rows, values included.
RENDERED_VALUES = """() => {
  const grids = document.querySelectorAll('div.ReactVirtualized__Grid');
  return grids.length >= 2 && [0, 1].every(i => Array.from(grids[i].querySelectorAll('div'))
    .some(d => d.style.position === 'absolute' && d.innerText.trim() !== ''));
}"""
