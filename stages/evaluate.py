"""Stage `evaluate`: a rolling-origin backtest of the model and the baselines over the
validation and test splits, 1..`horizon` days ahead, in price units; conformal interval
widths calibrated on validation, their coverage measured on test.

Reads models/, data/processed/; writes reports/metrics.json (DVC metrics) and the plot
CSVs under reports/plots/ (DVC plots); logs everything to the training's MLflow run.
"""

from __future__ import annotations

import io
import logging

import pandas as pd

from crypto_forecast.cli import run_stage
from crypto_forecast.data.series import MinMaxScaler
from crypto_forecast.evaluation.scoring import evaluate, mlflow_metrics
from crypto_forecast.io import atomic, paths
from crypto_forecast.io.artifacts import read_json, read_series
from crypto_forecast.io.contracts import TrainInfo
from crypto_forecast.model.numpy_net import load_network
from crypto_forecast.params import Params, load_params

log = logging.getLogger("stages.evaluate")

# The params.yaml sections this stage reads (dvc.yaml declares exactly these).
PARAM_SECTIONS = ("preprocess", "evaluate", "mlflow")


def _csv(frame: pd.DataFrame, index: bool = True) -> str:
    out = io.StringIO()
    frame.to_csv(out, index=index, date_format="%Y-%m-%d", float_format="%.6f")
    return out.getvalue()


def main() -> None:
    params: Params = load_params()
    info = TrainInfo.read(paths.TRAIN_INFO, "train").model_dump(mode="json")
    scaler = MinMaxScaler.from_json(read_json(paths.SCALER, "preprocess"))
    series = read_series()

    net = load_network(paths.MODEL)

    import mlflow

    from crypto_forecast.tracking import runs

    cfg = params.evaluate
    with runs.stage_run(params.mlflow.experiment, run_id=str(info["run_id"]), stage="evaluate"):
        runs.tag_stage_params(params, "evaluate")
        result = evaluate(net, series, scaler, target=params.preprocess.target,
                          window=params.preprocess.window, horizon=cfg.horizon,
                          ma_window=cfg.ma_window, levels=cfg.interval_levels,
                          volatility_days=cfg.volatility_days
                          if cfg.interval_scaling == "volatility" else 0)
        metrics = {**result.metrics, "param_count": int(info["param_count"])}
        atomic.write_text(paths.TEST_PREDICTIONS, _csv(result.one_step))
        atomic.write_text(paths.BACKTEST_BY_HORIZON, _csv(result.by_horizon, index=False))
        atomic.write_text(paths.TEST_HORIZON_FORECASTS, _csv(result.horizon_view))
        atomic.write_json(paths.METRICS, metrics)
        # Timings go to MLflow only: metrics.json must be identical across reruns.
        mlflow.log_metrics({**mlflow_metrics(metrics), "backtest_seconds": result.backtest_seconds})
        for path in (paths.METRICS, paths.TEST_PREDICTIONS, paths.BACKTEST_BY_HORIZON,
                     paths.TEST_HORIZON_FORECASTS):
            mlflow.log_artifact(str(path), "reports")
        bt, period = metrics["backtest"], metrics["test_period"]
        log.info("test %s..%s, %d origins, target %s: skill (RMSE / persistence's) h1 %.3f, "
                 "h%d %.3f; MASE h1 %.3f", period["first"], period["last"], bt["origins"],
                 params.preprocess.target, bt["h1"]["skill_rmse"], cfg.horizon,
                 bt[f"h{cfg.horizon}"]["skill_rmse"], bt["h1"]["model"]["mase"])
        for key, entry in metrics["intervals"].items():
            if isinstance(entry, dict):
                log.info("%s%% band: test coverage %.1f%%", key, entry["coverage"] * 100)
        # How that compares with one forward pass: bench/speed.py (README "Performance").
        log.info("backtest %d×%d forecasts in %.2f s", bt["origins"] + metrics["intervals"][
                 "calibration_origins"], cfg.horizon, result.backtest_seconds)


if __name__ == "__main__":
    run_stage("evaluate", main)
