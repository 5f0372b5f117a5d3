"""The real pipeline: `dvc repro` and `dvc exp run` on tiny params in a temp copy of the
project, MLflow in a temp SQLite store. Slow (~1-2 min)."""

from __future__ import annotations

import csv
import json
import sqlite3
from pathlib import Path

import pandas as pd
import pytest
import yaml

from crypto_forecast.io.contracts import EvaluationReport
from tests.helpers import (
    TINY_PARAMS,
    built_repro_stdout,
    copy_built,
    new_project,
    project_env,
    run,
    top_runs_sql,
)

pytestmark = pytest.mark.slow


def _runs(store: Path) -> list[tuple[str, str]]:
    with sqlite3.connect(store / "mlflow.db") as db:
        return db.execute(top_runs_sql("run_uuid, status", "start_time")).fetchall()


def _metric(store: Path, run_id: str, key: str) -> float:
    with sqlite3.connect(store / "mlflow.db") as db:
        row = db.execute("select value from latest_metrics where run_uuid=? and key=?",
                         (run_id, key)).fetchone()
    assert row is not None, f"metric {key} missing from run {run_id}"
    return float(row[0])


def _tags(store: Path, run_id: str) -> dict[str, str]:
    with sqlite3.connect(store / "mlflow.db") as db:
        return dict(db.execute("select key, value from tags where run_uuid=?", (run_id,)))


def test_repro_builds_everything_then_does_nothing(built: tuple[Path, Path],
                                                   tmp_path: Path) -> None:
    # The session's pipeline, built from a fresh copy by one `dvc repro` (tests/conftest.py).
    first = built_repro_stdout(built)
    project, env = copy_built(built, tmp_path)
    store = tmp_path / "store"
    for stage in ("download", "preprocess", "train", "evaluate", "forecast"):
        assert f"Running stage '{stage}@ETH-USD'" in first
    assert "Running stage 'summary'" in first

    meta = json.loads((project / "data/ETH-USD/raw/meta.json").read_text())
    assert meta["source_used"] == "synthetic" and meta["ticker"] == "ETH-USD"
    assert meta["first_date"] == "2022-01-01" and meta["last_date"] == "2022-12-30"

    # metrics.json: the headline only, flat, short keys (what `dvc exp show` compares).
    metrics = json.loads((project / "reports/metrics.json").read_text())
    assert list(metrics) == ["skill_h1", "skill_h3", "rmse_h1",
                             "coverage_80", "coverage_95", "param_count", "test_first",
                             "test_last"]
    assert metrics["param_count"] == 30651
    assert all(metrics[k] > 0 for k in ("skill_h1", "skill_h3", "rmse_h1"))
    evaluation = EvaluationReport.read(project / "reports/ETH-USD/evaluation.json", "evaluate")
    assert evaluation.headline.metrics_file() == metrics

    with (project / "reports/ETH-USD/forecast.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert [r["date"] for r in rows] == ["2022-12-31", "2023-01-01", "2023-01-02"]
    assert all(float(r["forecast"]) > 0 for r in rows)
    report = (project / "reports/ETH-USD/forecast.md").read_text()
    assert report.startswith("> **SYNTHETIC DATA")
    assert (project / "reports/ETH-USD/forecast.png").read_bytes()[:4] == b"\x89PNG"

    test_rows = pd.read_csv(project / "reports/ETH-USD/plots/test_predictions.csv")
    assert list(test_rows.columns) == ["date", "actual", "lstm", "persistence", "drift",
                                       "moving_average"]
    assert len(test_rows) == evaluation.test_period.days
    assert test_rows["date"].iloc[0] == metrics["test_first"]

    # The backtest: every predictor at every horizon, bands with measured coverage.
    bt = evaluation.backtest
    assert bt.horizon == 3 and bt.origins == evaluation.test_period.days
    assert [s.horizon for s in evaluation.horizons] == [1, 2, 3]
    assert metrics["skill_h3"] == evaluation.at(3).skill_rmse
    assert metrics["rmse_h1"] == evaluation.at(1).lstm.rmse
    for b, nominal in zip(evaluation.bands, (0.8, 0.95), strict=True):
        assert b.nominal == nominal and 0 < b.coverage <= 1
        assert metrics[f"coverage_{b.name}"] == b.coverage
    by_h = pd.read_csv(project / "reports/ETH-USD/plots/backtest_by_horizon.csv")
    assert list(by_h["horizon"]) == [1, 2, 3]
    assert by_h["lstm_rmse"].tolist() == pytest.approx([s.lstm.rmse for s in evaluation.horizons],
                                                       rel=1e-5)
    view = pd.read_csv(project / "reports/ETH-USD/plots/test_horizon_forecasts.csv")
    assert {"actual", "lstm_h_days_ahead", "lower_80", "upper_95"} <= set(view.columns)
    bands = pd.read_csv(project / "reports/ETH-USD/forecast.csv")
    assert (bands["lower_95"] <= bands["lower_80"]).all()
    assert (bands["lower_80"] <= bands["forecast"]).all() and (bands["forecast"] <= bands["upper_80"]).all()
    assert (bands["upper_80"] <= bands["upper_95"]).all()
    assert "**Verdict.** Walk-forward over" in report and "LSTM vs baselines" in report
    assert "| fold_1 |" in report and "| fold_2 |" in report and "| pooled |" in report
    page = (project / "reports/ETH-USD/forecast.html").read_text()
    assert page.startswith("<!doctype html>") and "data:image/png;base64,iVBOR" in page
    assert "SYNTHETIC DATA" in page and "Verdict." in page

    info = json.loads((project / "models/ETH-USD/train_info.json").read_text())
    runs = _runs(store)
    assert runs == [(info["run_id"], "FINISHED")]
    run_id = info["run_id"]
    # Walk-forward: a network per fold, each a child run of the training run with its scores;
    # the live model saw the last day (its validation slice ends there).
    assert [f["name"] for f in info["folds"]] == ["fold_1", "fold_2"]
    assert info["live"]["val_last"] == meta["last_date"]
    assert [f.name for f in evaluation.folds] == ["fold_1", "fold_2"]
    assert evaluation.folds[0].cutoff == metrics["test_first"]
    for fold, scored in zip(info["folds"], evaluation.folds, strict=True):
        assert (project / fold["path"]).is_file() and fold["cutoff"] == scored.cutoff
        assert _tags(store, fold["run_id"])["mlflow.parentRunId"] == run_id
        assert _metric(store, fold["run_id"], "skill_h1") == pytest.approx(scored.skill[0])
        assert _metric(store, fold["run_id"], "best_epoch") >= 1
    assert _metric(store, run_id, "param_count") == 30651
    # evaluate logs the headline only as MLflow metrics; the per-horizon table is an artifact.
    for key in ("skill_h1", "skill_h3", "rmse_h1", "coverage_80"):
        assert _metric(store, run_id, key) == pytest.approx(metrics[key])
    assert _metric(store, run_id, "mase_h1") == pytest.approx(evaluation.at(1).lstm.mase)
    with sqlite3.connect(store / "mlflow.db") as db:
        keys = {k for (k,) in db.execute("select key from latest_metrics where run_uuid=?",
                                         (run_id,))}
    per_horizon = {k for k in keys if k.startswith(("backtest_", "interval_", "test_"))}
    assert per_horizon <= {"backtest_seconds", "interval_skill_80", "interval_skill_95"}, keys
    assert _metric(store, run_id, "interval_skill_80") == pytest.approx(
        evaluation.headline.interval_skill["80"])
    assert {k for k in metrics if k not in ("test_first", "test_last")} <= keys
    scores = next((store / "mlartifacts").rglob("scores_by_horizon.json"))
    assert "lstm" in json.loads(scores.read_text())["columns"]
    tags = _tags(store, run_id)
    assert tags["source_used"] == "synthetic"
    assert tags["data_sha256"] == meta["sha256"]
    assert len(tags["git_commit"]) == 40
    assert (store / "mlartifacts").is_dir()  # artifacts beside the store, model included
    flavors = {tuple(sorted(yaml.safe_load(m.read_text())["flavors"])): yaml.safe_load(m.read_text())
               for m in (store / "mlartifacts").rglob("MLmodel")}
    # The network (Keras flavour) and the forecasters (pyfunc from code, no Keras).
    assert flavors[("keras", "python_function")]["flavors"]["keras"]["keras_backend"] == "jax"
    forecasters = [m for m in (store / "mlartifacts").rglob("MLmodel")
                   if "keras" not in yaml.safe_load(m.read_text())["flavors"]]
    assert forecasters and all("code" in yaml.safe_load(m.read_text())["flavors"]["python_function"]
                               for m in forecasters)

    status = run(["dvc", "status", "--json"], project, env)
    assert status.returncode == 0 and json.loads(status.stdout) == {}
    second = run(["dvc", "repro"], project, env)
    assert second.returncode == 0
    assert "Running stage" not in second.stdout

    # A param change reruns train and what follows, not download or preprocess.
    exp = run(["dvc", "exp", "run", "-S", "train.epochs=2", "-n", "two-epochs"], project, env)
    assert exp.returncode == 0, exp.stdout + exp.stderr
    assert "Running stage 'train@ETH-USD'" in exp.stdout and "Running stage 'forecast@ETH-USD'" in exp.stdout
    assert "Running stage 'download@ETH-USD'" not in exp.stdout
    assert "Running stage 'preprocess@ETH-USD'" not in exp.stdout
    runs = _runs(store)
    assert len(runs) == 2 and all(status == "FINISHED" for _, status in runs)
    assert _tags(store, runs[1][0])["dvc_exp_name"] == "two-epochs"

    shown = run(["dvc", "exp", "show", "--json"], project, env)
    assert shown.returncode == 0
    assert "two-epochs" in shown.stdout and "param_count" in shown.stdout

    # Every declared plot renders, side by side with the experiment's.
    plots = run(["dvc", "plots", "diff", "two-epochs", "-o", str(tmp_path / "plots")], project, env)
    assert plots.returncode == 0, plots.stdout + plots.stderr
    page = (tmp_path / "plots" / "index.html").read_text()
    for title in ("error_vs_horizon", "coverage_vs_horizon", "forecast_with_bands", "test_h_days_ahead"):
        assert title in page or title.replace("_", " ") in page, title


@pytest.mark.long  # ~1 min; CI runs it (`pytest -m long`)
def test_tensorflow_backend_trains_what_evaluate_reads(tmp_path: Path) -> None:
    """The pipeline's other backend, as far as it matters: train on TensorFlow (same model
    file, same MLflow flavour), and evaluate reads it through the NumPy path as always."""
    params = {**TINY_PARAMS, "train": {**TINY_PARAMS["train"], "backend": "tensorflow"}}
    project = new_project(tmp_path / "project", params)
    store = tmp_path / "store"
    env = project_env(project, store)
    built = run(["dvc", "repro", "evaluate"], project, env)
    assert built.returncode == 0, built.stdout + built.stderr
    assert "Running stage 'evaluate@ETH-USD'" in built.stdout and "Traceback" not in built.stderr
    metrics = json.loads((project / "reports/ETH-USD/metrics.json").read_text())
    assert metrics["param_count"] == 30651 and metrics["rmse_h1"] > 0
    info = json.loads((project / "models/ETH-USD/train_info.json").read_text())
    assert _runs(store) == [(info["run_id"], "FINISHED")]
    # The network's model (the forecasters logged beside it carry no Keras flavour).
    (mlmodel,) = [m for m in (store / "mlartifacts").rglob("MLmodel")
                  if "keras" in yaml.safe_load(m.read_text())["flavors"]]
    logged = yaml.safe_load(mlmodel.read_text())["flavors"]["keras"]
    assert logged["keras_backend"] == "tensorflow"
    requirements = next(mlmodel.parent.glob("requirements.txt")).read_text()
    assert "tensorflow" in requirements and "jax" not in requirements


def test_yahoo_offline_fails_with_one_line(project: Path, tmp_path: Path) -> None:
    params = (project / "params.yaml").read_text().replace("source: synthetic", "source: yahoo")
    (project / "params.yaml").write_text(params)
    env = project_env(project, tmp_path / "store")
    env["https_proxy"] = env["HTTPS_PROXY"] = "http://127.0.0.1:9"  # nothing listens: offline
    result = run(["python", "-m", "stages.download"], project, env, timeout=120)
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if " ERROR " in line]
    assert len(errors) == 1 and "unreachable" in errors[0] and "download.source: csv" in errors[0]
    assert "Traceback" not in result.stderr
    assert not (project / "data").exists()
