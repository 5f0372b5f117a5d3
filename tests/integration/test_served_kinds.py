"""Both kinds the gate can serve, end to end through `dvc repro`: the tiny LSTM loses (the
session's built pipeline serves naive), and with thresholds it cannot miss it wins and is
served. Each time the kind agrees in the registry, evaluation.json, forecast.csv and the
report, and naive's forecast is the last close at every horizon."""

from __future__ import annotations

import html
import sqlite3
from pathlib import Path

import pandas as pd
import pytest
import yaml

from crypto_forecast.io.contracts import EvaluationReport, TrainInfo
from tests.helpers import copy_built, run

pytestmark = pytest.mark.slow

FORECASTER = "eth-usd-forecaster"


def champion_kind(store: Path) -> tuple[str, str]:
    """(kind, run_id) tags of the registry's `champion` forecaster version."""
    with sqlite3.connect(store / "mlflow.db") as db:
        (version,) = db.execute("select version from registered_model_aliases "
                                "where name=? and alias='champion'", (FORECASTER,)).fetchone()
        tags = dict(db.execute("select key, value from model_version_tags where name=? and version=?",
                               (FORECASTER, version)))
    return tags["kind"], tags["run_id"]


def served_everywhere(project: Path, store: Path) -> tuple[str, pd.DataFrame, float]:
    """The served kind, asserted the same in the registry, evaluation.json and the report;
    (kind, forecast.csv, the last close)."""
    served = EvaluationReport.read(project / "reports/ETH-USD/evaluation.json", "evaluate").serving.served
    run_id = TrainInfo.read(project / "models/ETH-USD/train_info.json", "train").run_id
    assert champion_kind(store) == (served, run_id)
    words = {"lstm": "Served: the LSTM's forecast.", "naive": "Served: the naive forecast: persistence"}
    other = {"lstm": "naive", "naive": "lstm"}[served]
    for name, quote in (("forecast.md", str), ("forecast.html", html.escape)):
        text = (project / "reports" / "ETH-USD" / name).read_text()
        assert quote(words[served]) in text and quote(words[other]) not in text, name
    forecast = pd.read_csv(project / "reports/ETH-USD/forecast.csv")
    last_close = float(pd.read_csv(project / "data/ETH-USD/processed/series.csv")["close"].iloc[-1])
    return served, forecast, last_close


def test_the_tiny_lstm_loses_and_naive_serves_the_last_close(built: tuple[Path, Path]) -> None:
    served, forecast, last_close = served_everywhere(*built)
    assert served == "naive"
    assert len(forecast) == 3
    # Persistence: tomorrow = today's close, at every horizon (forecast.csv keeps 4 decimals).
    assert forecast["forecast"].tolist() == [round(last_close, 4)] * 3
    # The LSTM's forecast beside it, labelled not served, and not the same numbers.
    assert "lstm_forecast" in forecast.columns
    assert (forecast["lstm_forecast"] != forecast["forecast"]).all()


def test_thresholds_the_lstm_meets_serve_it_everywhere(built: tuple[Path, Path], tmp_path: Path) -> None:
    project, env = copy_built(built, tmp_path)
    naive_run = pd.read_csv(project / "reports/ETH-USD/forecast.csv")
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["promote"].update(max_skill_h1=10.0, max_skill_mean=10.0)
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    done = run(["dvc", "repro"], project, env)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "Running stage 'train@ETH-USD'" not in done.stdout  # the gate's params are evaluate's
    assert "Running stage 'evaluate@ETH-USD'" in done.stdout
    assert "Running stage 'forecast@ETH-USD'" in done.stdout

    served, forecast, last_close = served_everywhere(project, tmp_path / "store")
    assert served == "lstm"
    assert "lstm_forecast" not in forecast.columns
    assert (forecast["forecast"] != round(last_close, 4)).all()
    # The same network's forecast the naive run showed beside persistence.
    assert forecast["forecast"].tolist() == naive_run["lstm_forecast"].tolist()
    assert (forecast["lower_95"] < forecast["forecast"]).all()
    assert (forecast["forecast"] < forecast["upper_95"]).all()
