"""A portfolio on real DVC: the matrix expands per ticker, each chain reruns on its own, and
the summary's rows are each ticker's own numbers. Tiny data, a real `dvc repro` per step;
which stages ran is read from DVC's own output."""

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
from tests.helpers import TINY_PARAMS, new_project, project_env, run

pytestmark = pytest.mark.slow

CHAIN = ("download", "preprocess", "train", "evaluate", "forecast")


def chain(ticker: str) -> list[str]:
    return [f"{stage}@{ticker}" for stage in CHAIN]


def ran(stdout: str) -> list[str]:
    return re.findall(r"^Running stage '([^']+)'", stdout, flags=re.M)


def params(tickers: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = yaml.safe_load(yaml.safe_dump(TINY_PARAMS))
    out["download"].update(tickers=tickers, source="csv", csv_dir="prices")
    out["preprocess"]["folds"] = 1  # two networks per ticker: the fold's and the live one
    return out


def write_prices(project: Path, ticker: str, scale: float = 1.0) -> None:
    close = synthetic_prices(dt.date(2022, 1, 1), dt.date(2022, 12, 31), ticker)["Close"] * scale
    frame = pd.DataFrame({"Date": close.index.strftime("%Y-%m-%d"), "Close": close.to_numpy()})
    frame.to_csv(project / "prices" / f"{ticker}.csv", index=False)


def repro(project: Path, env: dict[str, str], tickers: list[str]) -> list[str]:
    (project / "params.yaml").write_text(yaml.safe_dump(params(tickers), sort_keys=False))
    done = run(["dvc", "repro"], project, env, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return ran(done.stdout)


def test_portfolio_expands_reruns_only_what_changed_and_summarises(tmp_path: Path) -> None:
    project = new_project(tmp_path / "project")
    env = project_env(project, tmp_path / "store")
    for ticker in ("ETH-USD", "BTC-USD", "SOL-USD"):
        write_prices(project, ticker)

    # Two tickers: each gets its chain, then one summary.
    first = repro(project, env, ["ETH-USD", "BTC-USD"])
    assert sorted(first) == sorted([*chain("ETH-USD"), *chain("BTC-USD"), "summary"])
    assert first[-1] == "summary"
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
        assert row["status"] == "ok" and row["source"] == "csv" and not row["synthetic"]
        assert row["skill_h1"] == evaluation["headline"]["skill_h1"] == metrics[ticker]["skill_h1"]
        assert row["served"] == evaluation["serving"]["served"]
        assert row["coverage"] == evaluation["headline"]["coverage"]
        assert row["last_close"] == pytest.approx(latest["close"].iloc[-1], rel=1e-9)
        assert row["forecast"] == pytest.approx(forecast["forecast"].iloc[-1], abs=1e-4)
        assert row["lower"] == pytest.approx(forecast["lower_80"].iloc[-1], abs=1e-4)
        assert row["upper"] == pytest.approx(forecast["upper_80"].iloc[-1], abs=1e-4)
    # BTC trades ~18x ETH here, as in the CSVs: no ticker read another's file.
    assert 10 < summary["BTC-USD"]["last_close"] / summary["ETH-USD"]["last_close"] < 30
    md = (project / "reports/summary.md").read_text()
    assert "| ETH-USD | csv |" in md and "| BTC-USD | csv |" in md and "SYNTHETIC" not in md

    # Per ticker: one training run tagged with it, and its own registered champion.
    from mlflow import MlflowClient

    client = MlflowClient(env["MLFLOW_TRACKING_URI"])
    for ticker in ("ETH-USD", "BTC-USD"):
        info = json.loads((project / f"models/{ticker}/train_info.json").read_text())
        assert client.get_run(info["run_id"]).data.tags["ticker"] == ticker
        champion = client.get_model_version_by_alias(f"{ticker.lower()}-forecaster", "champion")
        assert champion.run_id == info["run_id"]

    # Adding a ticker runs its chain and the summary, nothing of the others'.
    assert repro(project, env, ["ETH-USD", "BTC-USD", "SOL-USD"]) == [*chain("SOL-USD"),
                                                                      "summary"]
    assert list(json.loads((project / "reports/metrics.json").read_text())) == [
        "ETH-USD", "BTC-USD", "SOL-USD"]

    # Editing one ticker's CSV: every download reruns (the folder is their dependency), and
    # only the ticker whose closes changed goes on.
    before = {t: (project / f"models/{t}/train_info.json").read_bytes()
              for t in ("ETH-USD", "SOL-USD")}
    write_prices(project, "BTC-USD", scale=1.01)
    edited = repro(project, env, ["ETH-USD", "BTC-USD", "SOL-USD"])
    assert sorted(edited) == sorted(["download@ETH-USD", "download@SOL-USD", *chain("BTC-USD"),
                                     "summary"])
    assert {t: (project / f"models/{t}/train_info.json").read_bytes() for t in before} == before

    # Removing a ticker: only the summary reruns, and it has no row for it.
    assert repro(project, env, ["ETH-USD", "BTC-USD"]) == ["summary"]
    rows = json.loads((project / "reports/summary.json").read_text())["tickers"]
    assert [r["ticker"] for r in rows] == ["ETH-USD", "BTC-USD"]
    assert "SOL-USD" not in (project / "reports/summary.md").read_text()
    assert list(json.loads((project / "reports/metrics.json").read_text())) == [
        "ETH-USD", "BTC-USD"]

    # A bad symbol: one ERROR line naming it, before DVC expands anything; nothing changes.
    kept = snapshot(project)
    (project / "params.yaml").write_text(
        yaml.safe_dump(params(["ETH-USD", "btc/usd"]), sort_keys=False))
    checked = subprocess.run(["python", "-m", "crypto_forecast", "check"], cwd=project,
                             env=env, capture_output=True, text=True, timeout=60)
    assert_one_line_error(checked, 2, "download.tickers", "'btc/usd'")
    assert snapshot(project) == kept
