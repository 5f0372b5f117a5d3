"""Stage `evaluate@<TICKER>`: walk-forward. Every fold's model (trained on the days before its
cut-off) forecasts 1..`horizon` days ahead from every origin up to the next cut-off,
beside the baselines on the same origins, in price units; conformal bands calibrated on
each fold's validation slice, their coverage, interval score and pinball loss measured on
its scored days. The gate then decides what is served (the live model's forecaster or the
naive one), and both forecasters are logged and registered.

Reads models/<TICKER>/, data/<TICKER>/processed/series.csv; writes under reports/<TICKER>/:
metrics.json (the ticker's headline, which the summary stage gathers into DVC's metrics),
evaluation.json (the typed detail forecast, the summary and the report read) and the plot
CSVs under plots/ (DVC plots). Everything is logged to the training's MLflow
run first, from memory; the files are written last, so a failure anywhere leaves no new
output behind.
"""

from __future__ import annotations

import io
import json
import logging
import tempfile
import time
from pathlib import Path

import pandas as pd

from crypto_forecast.cli import argv_ticker, run_stage, stage_ticker
from crypto_forecast.data.folds import plan_folds
from crypto_forecast.data.series import MinMaxScaler
from crypto_forecast.errors import ArtifactError
from crypto_forecast.evaluation.gate import GateThresholds
from crypto_forecast.evaluation.scoring import Evaluation, evaluate, mlflow_metrics
from crypto_forecast.evaluation.walk_forward import FoldModel
from crypto_forecast.io import atomic, paths
from crypto_forecast.io.artifacts import read_json, read_series
from crypto_forecast.io.atomic import artifact_errors
from crypto_forecast.io.contracts import TrainInfo
from crypto_forecast.model.numpy_net import Network, load_network
from crypto_forecast.params import Params, load_params

log = logging.getLogger("stages.evaluate")

# The params.yaml sections this stage reads (dvc.yaml declares exactly these). The ticker
# comes from the command line (dvc.yaml's matrix).
PARAM_SECTIONS = ("preprocess", "evaluate", "mlflow", "promote")


def _csv(frame: pd.DataFrame, index: bool = True) -> str:
    out = io.StringIO()
    frame.to_csv(out, index=index, date_format="%Y-%m-%d", float_format="%.6f")
    return out.getvalue()


def _json(obj: object) -> str:
    # allow_nan=False: an undefined number that slipped through is a bug, never a NaN file.
    return json.dumps(obj, indent=2, allow_nan=False) + "\n"


def outputs(result: Evaluation, out: paths.TickerPaths) -> dict[Path, str]:
    """Every file the stage writes, with its content."""
    report = result.report
    return {
        out.headline: _json(report.headline.metrics_file()),
        out.evaluation: report.to_json(),
        out.test_predictions: _csv(result.one_step),
        out.backtest_by_horizon: _csv(result.by_horizon, index=False),
        out.test_horizon_forecasts: _csv(result.horizon_view),
    }


def fold_models(info: TrainInfo, series: pd.DataFrame, params: Params,
                out: paths.TickerPaths) -> list[FoldModel]:
    """The folds (in time order) and the live model, each with its network and scaler,
    checked against the series they were trained on."""
    cfg = params.preprocess
    plan = plan_folds(len(series), window=cfg.window, val_fraction=cfg.val_fraction,
                      test_fraction=cfg.test_fraction, folds=cfg.folds, target=cfg.target)
    trained = [*info.folds, info.live]
    dates = pd.DatetimeIndex(series.index)
    if [t.name for t in trained] != [f.name for f in plan] or info.target != cfg.target or any(
            t.val_last != str(dates[f.cutoff - 1].date()) for t, f in zip(trained, plan, strict=True)):
        raise ArtifactError(
            f"{out.train_info} was trained for other folds, data or target than "
            f"{out.series} and params.yaml — rerun `dvc repro train@{out.ticker}`")
    return [FoldModel(fold=f, network=load_network(Path(t.path)),
                      scaler=MinMaxScaler(t.scaler_min, t.scaler_max))
            for t, f in zip(trained, plan, strict=True)]


def main(ticker: str | None = None) -> None:
    params: Params = load_params()
    ticker = stage_ticker(params.download.tickers, ticker)
    out = paths.for_ticker(ticker)
    info = TrainInfo.read(out.train_info, f"train@{ticker}")
    series = read_series(out.series)
    meta = read_json(out.train_meta, f"preprocess@{ticker}")
    models = fold_models(info, series, params, out)
    net = models[-1].network  # the live model's
    if not isinstance(net, Network):  # fold_models loads every one as a Network
        raise TypeError(type(net))

    import mlflow
    from mlflow.entities import Metric

    from crypto_forecast.serving.build import pipeline_forecasters, recent_closes
    from crypto_forecast.serving.bundle import save_bundle
    from crypto_forecast.serving.pyfunc import log_forecaster
    from crypto_forecast.tracking import registry, runs
    from crypto_forecast.tracking.store import mlflow_errors

    cfg = params.evaluate
    forecaster_name = registry.forecaster_model_name(ticker)
    dates = pd.DatetimeIndex(series.index)
    first_scored = str(dates[models[0].fold.cutoff].date())
    origins = (f"{str(meta.get('sha256', ''))[:16]}:{first_scored}..{dates[-1].date()}"
               f":h{cfg.horizon}")
    with mlflow_errors("cannot read the registry's champion", "check MLFLOW_TRACKING_URI"):
        champion = registry.champion_to_beat(forecaster_name, run_id=info.run_id,
                                             origins=origins)
    result = evaluate(models=models, close=series["close"].to_numpy(), dates=dates,
                      target=params.preprocess.target, window=params.preprocess.window,
                      horizon=cfg.horizon, ma_window=cfg.ma_window, levels=cfg.interval_levels,
                      volatility_days=cfg.volatility_days
                      if cfg.interval_scaling == "volatility" else 0,
                      param_count=info.param_count, champion=champion,
                      gate=GateThresholds(max_skill_h1=params.promote.max_skill_h1,
                                          max_skill_mean=params.promote.max_skill_mean,
                                          min_gain_vs_champion=params.promote.min_gain_vs_champion))
    files = outputs(result, out)
    serving = result.report.serving
    forecasters = pipeline_forecasters(
        network=net, live=info.live, report=result.report, ticker=ticker,
        window=params.preprocess.window, target=params.preprocess.target,
        data_sha256=str(meta.get("sha256", "")))
    with runs.stage_run(params.mlflow.experiment, run_id=info.run_id, stage="evaluate"):
        runs.tag_stage_params(params, "evaluate")
        with mlflow_errors("cannot log evaluate's results to MLflow",
                           "check the store is writable and rerun; no output was written"), \
                artifact_errors("evaluate"):
            # Only the headline as metrics (timings too: metrics.json must be identical
            # across reruns); the per-horizon scores as a table artifact.
            gate_numbers = {registry.GATE_SKILL_METRIC: serving.skill_mean,
                            "gate_skill_h1": serving.skill_h1}
            mlflow.log_metrics({**mlflow_metrics(result.report.headline),
                                **{k: v for k, v in gate_numbers.items() if v is not None},
                                "backtest_seconds": result.backtest_seconds})
            mlflow.set_tag(registry.WALK_FORWARD_TAG, origins)
            client = mlflow.MlflowClient()
            for trained, scored in zip(info.folds, result.report.folds, strict=True):
                client.log_batch(trained.run_id, metrics=[
                    Metric(f"skill_h{h}", v, int(time.time() * 1000), 0)
                    for h, v in enumerate(scored.skill, start=1) if v is not None])
            mlflow.log_table(result.scores, artifact_file="evaluation/scores_by_horizon.json")
            for path, text in files.items():
                mlflow.log_text(text, f"reports/{path.relative_to(out.reports_dir)}")
            # Both forecasters as MLflow models; the gate's choice becomes `champion`.
            mlflow.set_tags({"served": serving.served, "gate_reasons": "; ".join(serving.reasons)})
            uris = {}
            with tempfile.TemporaryDirectory() as tmp:
                for kind, fc in forecasters.items():
                    save_bundle(Path(tmp) / kind, fc.spec, fc.network)
                    uris[kind] = log_forecaster(Path(tmp) / kind, fc.spec, recent_closes(series),
                                                name="forecaster" if kind == "lstm" else
                                                "naive_forecaster")
            registry.register_forecasters(uris, name=forecaster_name,
                                          run_id=info.run_id, served=serving.served,
                                          auto=params.promote.auto)
        # Last, once everything else has worked: all outputs in one atomic step (a full
        # disk replaces none of them and ends the run FAILED).
        atomic.write_all(files)

    report = result.report
    head, period = report.headline, report.test_period
    log.info("walk-forward %s..%s: %d folds, %d origins, target %s", period.first, period.last,
             report.backtest.folds, report.backtest.origins, params.preprocess.target)
    for fold in report.folds:
        log.info("  %-7s from %s: skill h1 %s, h%d %s; %s%% band coverage %.0f%%", fold.name,
                 fold.cutoff, _num(fold.skill[0]), cfg.horizon, _num(fold.skill[-1]),
                 report.bands[0].name, fold.coverage[report.bands[0].name] * 100)
    log.info("pooled skill (LSTM RMSE / persistence's): h1 %s, h%d %s; MASE h1 %s",
             _num(head.skill_h1), cfg.horizon, _num(head.skill_hmax), _num(head.mase_h1))
    for b in report.bands:
        log.info("%s%% band: coverage %.1f%% (naive's %.1f%%), interval skill %s", b.name,
                 b.coverage * 100, b.naive_coverage * 100, _num(head.interval_skill[b.name]))
    # How that compares with one forward pass: bench/speed.py (README "Performance").
    log.info("backtest %d×%d forecasts in %.2f s", report.backtest.origins
             + report.backtest.calibration_origins, cfg.horizon, result.backtest_seconds)
    log.info("gate: %s", "; ".join(serving.reasons))
    log.info("served: the %s forecaster", "LSTM's" if serving.served == "lstm" else "naive")
    plots = [p.name for p in files if p.parent == out.plots_dir]
    log.info("wrote %s, %s", out.headline, out.evaluation)
    log.info("wrote %s/: %s", out.plots_dir, ", ".join(plots))


def _num(value: float | None) -> str:
    return "undefined" if value is None else f"{value:.3f}"


if __name__ == "__main__":
    run_stage("evaluate", lambda: main(argv_ticker()))
