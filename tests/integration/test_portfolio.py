"""A portfolio on real DVC: the matrix expands per ticker, each chain reruns on its own, and
the summary's rows are each ticker's own numbers. Tiny data, a real `dvc repro` per step;
which stages ran is read from DVC's own output.

`make test` runs the first test, on a copy of the session's built one-ticker pipeline (adding
BTC-USD to it builds BTC's chain alone). CI also runs the second (`long`): three tickers from
a CSV folder, one CSV edited, then one deleted under `make repro`."""

from __future__ import annotations

import datetime as dt
import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml

from crypto_forecast.data.synthetic import synthetic_prices
from tests.errors.conftest import assert_one_line_error, snapshot
from tests.helpers import TINY_PARAMS, copy_built, new_project, project_env, run

pytestmark = pytest.mark.slow

CHAIN = ("download", "preprocess", "train", "evaluate", "forecast")


def chain(ticker: str) -> list[str]:
    return [f"{stage}@{ticker}" for stage in CHAIN]


def ran(stdout: str) -> list[str]:
    return re.findall(r"^Running stage '([^']+)'", stdout, flags=re.M)


def params(tickers: list[str], source: str = "csv") -> dict[str, Any]:
    out: dict[str, Any] = yaml.safe_load(yaml.safe_dump(TINY_PARAMS))
    out["download"].update(tickers=tickers, source=source, csv_dir="prices")
    if source == "csv":
        out["preprocess"]["folds"] = 1  # two networks per ticker: the fold's and the live one
    return out


def write_prices(project: Path, ticker: str, scale: float = 1.0) -> None:
    close = synthetic_prices(dt.date(2022, 1, 1), dt.date(2022, 12, 31), ticker)["Close"] * scale
    frame = pd.DataFrame({"Date": close.index.strftime("%Y-%m-%d"), "Close": close.to_numpy()})
    frame.to_csv(project / "prices" / f"{ticker}.csv", index=False)


def repro(project: Path, env: dict[str, str], tickers: list[str], source: str = "csv"
          ) -> list[str]:
    (project / "params.yaml").write_text(yaml.safe_dump(params(tickers, source),
                                                        sort_keys=False))
    done = run(["dvc", "repro"], project, env, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return ran(done.stdout)


def test_a_second_ticker_builds_alone_and_the_summary_reads_each(built: tuple[Path, Path],
                                                                tmp_path: Path) -> None:
    project, env = copy_built(built, tmp_path)
    eth = {p: (project / p).read_bytes() for p in ("models/ETH-USD/train_info.json",
                                                  "reports/cards/ETH-USD.json")}

    # Adding a ticker runs its chain and the summary, nothing of the first one's.
    assert repro(project, env, ["ETH-USD", "BTC-USD"], "synthetic") == [*chain("BTC-USD"),
                                                                        "summary"]
    assert {p: (project / p).read_bytes() for p in eth} == eth
    listed = run(["dvc", "stage", "list", "--name-only"], project, env).stdout.split()
    assert listed == [f"{s}@{t}" for s in CHAIN for t in ("ETH-USD", "BTC-USD")] + ["summary"]

    # The summary's rows are each ticker's own files.
    summary = {r["ticker"]: r for r in json.loads(
        (project / "reports/summary.json").read_text())["tickers"]}
    metrics = json.loads((project / "reports/metrics.json").read_text())
    assert list(summary) == list(metrics) == ["ETH-USD", "BTC-USD"]
    for ticker, row in summary.items():
        evaluation = json.loads((project / f"reports/{ticker}/evaluation.json").read_text())
        forecast = pd.read_csv(project / f"reports/{ticker}/forecast.csv")
        latest = pd.read_csv(project / f"data/{ticker}/processed/latest.csv")
        assert row["status"] == "ok" and row["source"] == "synthetic" and row["synthetic"]
        assert row["skill_h1"] == evaluation["headline"]["skill_h1"] == metrics[ticker]["skill_h1"]
        assert row["served"] == evaluation["serving"]["served"]
        assert row["coverage"] == evaluation["headline"]["coverage"]
        assert row["last_close"] == pytest.approx(latest["close"].iloc[-1], rel=1e-9)
        assert row["forecast"] == pytest.approx(forecast["forecast"].iloc[-1], abs=1e-4)
        assert row["lower"] == pytest.approx(forecast["lower_80"].iloc[-1], abs=1e-4)
        assert row["upper"] == pytest.approx(forecast["upper_80"].iloc[-1], abs=1e-4)
    # Each coin's own synthetic series, at its own level (BTC ~18x ETH), labelled as such.
    assert 10 < summary["BTC-USD"]["last_close"] / summary["ETH-USD"]["last_close"] < 30
    assert json.loads((project / "data/BTC-USD/raw/meta.json").read_text())[
        "source_used"] == "synthetic"
    md = (project / "reports/summary.md").read_text()
    assert "SYNTHETIC DATA for ETH-USD, BTC-USD" in md and "| BTC-USD | SYNTHETIC |" in md

    # Per ticker: one training run tagged with it, and its own registered champion.
    from mlflow import MlflowClient

    client = MlflowClient(env["MLFLOW_TRACKING_URI"])
    for ticker in ("ETH-USD", "BTC-USD"):
        info = json.loads((project / f"models/{ticker}/train_info.json").read_text())
        assert client.get_run(info["run_id"]).data.tags["ticker"] == ticker
        champion = client.get_model_version_by_alias(f"{ticker.lower()}-forecaster", "champion")
        assert champion.run_id == info["run_id"]

    # With several tickers, serving needs to be told which: one line, nothing started.
    unnamed = run(["python", "-m", "stages.serve", "--port", "5999"], project, env, timeout=120)
    assert_one_line_error(unnamed, 2, "lists 2 symbols (ETH-USD, BTC-USD)", "TICKER=ETH-USD")

    # Removing a ticker: only the summary reruns, and it has no row for it.
    assert repro(project, env, ["ETH-USD"], "synthetic") == ["summary"]
    assert json.loads((project / "reports/metrics.json").read_text()) == json.loads(
        (project / "reports/ETH-USD/metrics.json").read_text())  # one ticker: its own headline
    assert "BTC-USD" not in (project / "reports/summary.md").read_text()

    # A bad symbol: one ERROR line naming it, before DVC expands anything; nothing changes.
    kept = snapshot(project)
    (project / "params.yaml").write_text(
        yaml.safe_dump(params(["ETH-USD", "btc/usd"], "synthetic"), sort_keys=False))
    checked = subprocess.run(["python", "-m", "crypto_forecast", "check"], cwd=project,
                             env=env, capture_output=True, text=True, timeout=60)
    assert_one_line_error(checked, 2, "download.tickers", "'btc/usd'")
    assert snapshot(project) == kept


@pytest.mark.long
def test_csv_folder_edits_rerun_one_chain_and_a_missing_file_fails_one_ticker(
        tmp_path: Path) -> None:
    project = new_project(tmp_path / "project")
    env = project_env(project, tmp_path / "store")
    for ticker in ("ETH-USD", "BTC-USD", "SOL-USD"):
        write_prices(project, ticker)
    first = repro(project, env, ["ETH-USD", "BTC-USD"])
    assert sorted(first) == sorted([*chain("ETH-USD"), *chain("BTC-USD"), "summary"])
    row = json.loads((project / "reports/summary.json").read_text())["tickers"][0]
    assert row["source"] == "csv" and not row["synthetic"]

    # Adding a ticker whose CSV is already in the folder: its chain and the summary only.
    assert repro(project, env, ["ETH-USD", "BTC-USD", "SOL-USD"]) == [*chain("SOL-USD"),
                                                                      "summary"]

    # Editing one ticker's CSV: every download reruns (the folder is their dependency), and
    # only the ticker whose closes changed goes on.
    before = {t: (project / f"models/{t}/train_info.json").read_bytes()
              for t in ("ETH-USD", "SOL-USD")}
    write_prices(project, "BTC-USD", scale=1.01)
    edited = repro(project, env, ["ETH-USD", "BTC-USD", "SOL-USD"])
    assert sorted(edited) == sorted(["download@ETH-USD", "download@SOL-USD", *chain("BTC-USD"),
                                     "summary"])
    assert {t: (project / f"models/{t}/train_info.json").read_bytes() for t in before} == before

    # One ticker's CSV gone: `make repro` goes on with the others, names the ticker and the
    # cause in its last line, exits 1, and the summary marks it failed, without the numbers
    # its earlier run left behind.
    eth_card = (project / "reports/cards/ETH-USD.json").read_bytes()
    (project / "prices/BTC-USD.csv").unlink()
    broken = subprocess.run(["python", "-m", "crypto_forecast", "repro"], cwd=project, env=env,
                            capture_output=True, text=True, timeout=600)
    assert broken.returncode == 1, broken.stdout[-3000:] + broken.stderr[-3000:]
    assert "Traceback" not in broken.stdout + broken.stderr
    last = [line for line in broken.stderr.splitlines() if " ERROR " in line][-1]
    assert "repro" in last.split()[1] and "BTC-USD failed in download@BTC-USD" in last, last
    assert "prices/BTC-USD.csv does not exist" in last, last
    assert "ETH-USD, SOL-USD completed" in last, last
    assert "download@ETH-USD" in ran(broken.stdout)
    assert (project / "reports/cards/ETH-USD.json").read_bytes() == eth_card
    rows = {r["ticker"]: r for r in json.loads(
        (project / "reports/summary.json").read_text())["tickers"]}
    assert rows["ETH-USD"]["status"] == "ok" and rows["ETH-USD"]["skill_h1"] is not None
    assert rows["BTC-USD"] == {"ticker": "BTC-USD", "status": "failed",
                               "failure": rows["BTC-USD"]["failure"]}
    assert "does not exist" in rows["BTC-USD"]["failure"]
    assert json.loads((project / "reports/metrics.json").read_text())["BTC-USD"] == {"failed": 1}
    md = (project / "reports/summary.md").read_text()
    assert "FAILED: BTC-USD" in md
    btc_row = next(line for line in md.splitlines() if line.startswith("| BTC-USD"))
    assert "FAILED" in btc_row and not re.search(r"\d\.\d{3}", btc_row), btc_row
