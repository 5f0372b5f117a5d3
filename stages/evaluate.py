"""Stage `evaluate`: a rolling-origin backtest of the LSTM and the baselines over the
validation and test splits, 1..`horizon` days ahead, in price units; conformal interval
widths calibrated on validation, their coverage measured on test.

Reads models/, data/processed/; writes reports/metrics.json (DVC metrics: the headline
only), reports/evaluation.json (the typed detail forecast and the report read) and the
plot CSVs under reports/plots/ (DVC plots). Everything is logged to the training's MLflow
run first, from memory; the files are written last, so a failure anywhere leaves no new
output behind.
"""

from __future__ import annotations

import io
import json
import logging
import tempfile
from pathlib import Path

import pandas as pd

from crypto_forecast.cli import run_stage
from crypto_forecast.data.series import MinMaxScaler
from crypto_forecast.evaluation.gate import GateThresholds
from crypto_forecast.evaluation.scoring import Evaluation, evaluate, mlflow_metrics
from crypto_forecast.io import atomic, paths
from crypto_forecast.io.artifacts import read_json, read_series
from crypto_forecast.io.atomic import artifact_errors
from crypto_forecast.io.contracts import TrainInfo
from crypto_forecast.model.numpy_net import load_network
from crypto_forecast.params import Params, load_params

log = logging.getLogger("stages.evaluate")

# The params.yaml sections this stage reads (dvc.yaml declares exactly these).
PARAM_SECTIONS = ("preprocess", "evaluate", "mlflow", "promote")


def _csv(frame: pd.DataFrame, index: bool = True) -> str:
    out = io.StringIO()
    frame.to_csv(out, index=index, date_format="%Y-%m-%d", float_format="%.6f")
    return out.getvalue()


def _json(obj: object) -> str:
    # allow_nan=False: an undefined number that slipped through is a bug, never a NaN file.
    return json.dumps(obj, indent=2, allow_nan=False) + "\n"


def outputs(result: Evaluation) -> dict[Path, str]:
    """Every file the stage writes, with its content."""
    report = result.report
    return {
        paths.METRICS: _json(report.headline.metrics_file()),
        paths.EVALUATION: report.to_json(),
        paths.TEST_PREDICTIONS: _csv(result.one_step),
        paths.BACKTEST_BY_HORIZON: _csv(result.by_horizon, index=False),
        paths.TEST_HORIZON_FORECASTS: _csv(result.horizon_view),
    }


def main() -> None:
    params: Params = load_params()
    info = TrainInfo.read(paths.TRAIN_INFO, "train").model_dump(mode="json")
    scaler = MinMaxScaler.from_json(read_json(paths.SCALER, "preprocess"))
    series = read_series()

    meta = read_json(paths.RAW_META, "download")
    net = load_network(paths.MODEL)

    import mlflow

    from crypto_forecast.serving.build import pipeline_forecasters, recent_closes
    from crypto_forecast.serving.bundle import save_bundle
    from crypto_forecast.serving.pyfunc import log_forecaster
    from crypto_forecast.tracking import registry, runs
    from crypto_forecast.tracking.store import mlflow_errors

    cfg = params.evaluate
    result = evaluate(model=net, series=series, scaler=scaler, target=params.preprocess.target,
                      window=params.preprocess.window, horizon=cfg.horizon,
                      ma_window=cfg.ma_window, levels=cfg.interval_levels,
                      volatility_days=cfg.volatility_days
                      if cfg.interval_scaling == "volatility" else 0,
                      param_count=int(info["param_count"]),
                      gate=GateThresholds(max_skill_h1=params.promote.max_skill_h1,
                                          max_skill_mean=params.promote.max_skill_mean))
    files = outputs(result)
    serving = result.report.serving
    ticker = str(meta.get("ticker", ""))
    forecasters = pipeline_forecasters(
        network=net, scaler=scaler, report=result.report, series=series, ticker=ticker,
        window=params.preprocess.window, target=params.preprocess.target,
        data_sha256=str(meta.get("sha256", "")))
    with runs.stage_run(params.mlflow.experiment, run_id=str(info["run_id"]), stage="evaluate"):
        runs.tag_stage_params(params, "evaluate")
        with mlflow_errors("cannot log evaluate's results to MLflow",
                           "check the store is writable and rerun; no output was written"), \
                artifact_errors("evaluate"):
            # Only the headline as metrics (timings too: metrics.json must be identical
            # across reruns); the per-horizon scores as a table artifact.
            mlflow.log_metrics({**mlflow_metrics(result.report.headline),
                                "backtest_seconds": result.backtest_seconds})
            mlflow.log_table(result.scores, artifact_file="evaluation/scores_by_horizon.json")
            for path, text in files.items():
                mlflow.log_text(text, f"reports/{path.relative_to(paths.REPORTS_DIR)}")
            # Both forecasters as MLflow models; the gate's choice becomes `champion`.
            mlflow.set_tags({"served": serving.served, "gate_reasons": "; ".join(serving.reasons)})
            uris = {}
            with tempfile.TemporaryDirectory() as tmp:
                for kind, fc in forecasters.items():
                    save_bundle(Path(tmp) / kind, fc.spec, fc.network)
                    uris[kind] = log_forecaster(Path(tmp) / kind, fc.spec, recent_closes(series),
                                                name="forecaster" if kind == "lstm" else
                                                "naive_forecaster")
            registry.register_forecasters(uris, name=registry.forecaster_model_name(ticker),
                                          run_id=str(info["run_id"]), served=serving.served,
                                          auto=params.promote.auto)
        # Last, once everything else has worked: all outputs in one atomic step (a full
        # disk replaces none of them and ends the run FAILED).
        atomic.write_all(files)

    report = result.report
    head, period = report.headline, report.test_period
    log.info("test %s..%s, %d origins, target %s", period.first, period.last,
             report.backtest.origins, params.preprocess.target)
    log.info("skill (LSTM RMSE / persistence's): h1 %s, h%d %s; MASE h1 %s", _num(head.skill_h1),
             cfg.horizon, _num(head.skill_hmax), _num(head.mase_h1))
    for b in report.bands:
        log.info("%s%% band: test coverage %.1f%%", b.name, b.coverage * 100)
    # How that compares with one forward pass: bench/speed.py (README "Performance").
    log.info("backtest %d×%d forecasts in %.2f s", report.backtest.origins
             + report.backtest.calibration_origins, cfg.horizon, result.backtest_seconds)
    log.info("gate: %s", "; ".join(serving.reasons))
    log.info("served: the %s forecaster", "LSTM's" if serving.served == "lstm" else "naive")
    plots = [p.name for p in files if p.parent == paths.PLOTS_DIR]
    log.info("wrote %s, %s", paths.METRICS, paths.EVALUATION)
    log.info("wrote %s/: %s", paths.PLOTS_DIR, ", ".join(plots))


def _num(value: float | None) -> str:
    return "undefined" if value is None else f"{value:.3f}"


if __name__ == "__main__":
    run_stage("evaluate", main)
