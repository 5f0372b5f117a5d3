"""Stage `evaluate`: a rolling-origin backtest of the model and the baselines over the
validation and test splits, 1..`horizon` days ahead, in price units; conformal interval
widths calibrated on validation, their coverage measured on test.

Reads models/, data/processed/; writes reports/metrics.json (DVC metrics) and the plot
CSVs under reports/plots/ (DVC plots); logs everything to the training's MLflow run.
"""

from __future__ import annotations

import io
import logging
import math
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from stages import atomic, paths
from stages.artifacts import read_json, read_series
from stages.backtest import Backtest, Model, model_forecasts, run_backtest, split_origins
from stages.baselines import BASELINES, train_drift
from stages.cli import run_stage
from stages.errors import DataError
from stages.intervals import (
    band,
    conformal_quantile,
    coverage,
    level_name,
    log_ratio_scores,
    recent_volatility,
)
from stages.metrics import naive_scale, score, summary
from stages.network import load_network
from stages.params import Params, load_params
from stages.windows import MinMaxScaler, Target

log = logging.getLogger("stages.evaluate")

# The params.yaml sections this stage reads (dvc.yaml declares exactly these).
PARAM_SECTIONS = ("preprocess", "evaluate", "mlflow")

PREDICTORS = ("model", *BASELINES)


@dataclass(frozen=True)
class Evaluation:
    """What the stage writes: metrics.json's content and the plot tables."""

    metrics: dict[str, Any]
    by_horizon: pd.DataFrame
    one_step: pd.DataFrame
    horizon_view: pd.DataFrame
    backtest_seconds: float


def _finite(obj: Any) -> Any:
    """JSON has no NaN: undefined metrics (persistence's direction) become null."""
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def horizon_scores(bt: Backtest, scale: float) -> dict[str, Any]:
    """Per horizon (`h1`..) and pooled (`all`): every metric of every predictor, and skill."""
    out: dict[str, Any] = {}
    horizon = bt.actual.shape[1]
    columns: list[tuple[str, slice]] = [(f"h{h + 1}", slice(h, h + 1)) for h in range(horizon)]
    for key, cols in [*columns, ("all", slice(None))]:
        entry: dict[str, Any] = {
            name: score(bt.actual[:, cols], fc[:, cols], bt.reference[:, cols], scale)
            for name, fc in bt.forecasts.items()
        }
        entry["skill_rmse"] = entry["model"]["rmse"] / entry["persistence"]["rmse"]
        out[key] = entry
    return out


def calibrate(val: Backtest, levels: tuple[float, ...], unit: np.ndarray) -> dict[float, np.ndarray]:
    """Per level, the conformal quantile of the log-ratio scores (divided by each origin's
    `unit`: 1, or its recent volatility) for each horizon, from validation."""
    scores = log_ratio_scores(val.actual, val.forecasts["model"]) / unit[:, np.newaxis]
    return {level: np.array([conformal_quantile(scores[:, h], level)
                             for h in range(scores.shape[1])]) for level in levels}


def measure_coverage(test: Backtest, widths: dict[float, np.ndarray], unit: np.ndarray
                     ) -> dict[str, Any]:
    """Nominal vs measured coverage on test, overall and per horizon, with the widths."""
    out: dict[str, Any] = {}
    for level, q in widths.items():
        half = q[np.newaxis, :] * unit[:, np.newaxis]
        lower, upper = band(test.forecasts["model"], half)
        entry: dict[str, Any] = {"nominal": level,
                                 "coverage": coverage(test.actual, lower, upper)}
        for h in range(q.size):
            entry[f"h{h + 1}"] = {
                "coverage": coverage(test.actual[:, h], lower[:, h], upper[:, h]),
                "score_quantile": float(q[h]),
                "half_width_pct": float(np.mean(np.expm1(half[:, h])) * 100.0),
            }
        out[level_name(level)] = entry
    return out


def evaluate(model: Model, series: pd.DataFrame, scaler: MinMaxScaler, target: Target,
             window: int, horizon: int, ma_window: int, levels: tuple[float, ...],
             volatility_days: int = 0) -> Evaluation:
    """Backtest on validation (to calibrate the bands) and test (to score everything).

    `volatility_days` > 0 scales the bands by each origin's recent volatility.
    """
    labels = series["split"].to_numpy()
    close = series["close"].to_numpy(dtype=np.float64)
    scaled = series["scaled"].to_numpy(dtype=np.float64)
    dates = pd.DatetimeIndex(series.index)
    train = close[labels == "train"]
    parts: dict[str, tuple[np.ndarray, int]] = {p: split_origins(labels, p) for p in ("val", "test")}
    for part, (origins, _) in parts.items():
        if origins.size < horizon:
            raise DataError(
                f"the {part} split has {origins.size} days, fewer than evaluate.horizon="
                f"{horizon} — lower evaluate.horizon or raise preprocess.{part}_fraction"
            )
    # One recursive run over the validation and test origins together.
    every = np.concatenate([parts["val"][0], parts["test"][0]])
    t0 = time.perf_counter()
    model_fc = model_forecasts(model, scaled, close, every, window, horizon, scaler, target)
    seconds = time.perf_counter() - t0
    n_val = parts["val"][0].size
    slope, scale = train_drift(train), naive_scale(train)
    val, test = (run_backtest(fc, close, dates, origins, stop, horizon, slope, ma_window)
                 for fc, (origins, stop) in ((model_fc[:n_val], parts["val"]),
                                             (model_fc[n_val:], parts["test"])))
    scores = horizon_scores(test, scale)

    def unit(bt: Backtest) -> np.ndarray:
        if volatility_days:
            return recent_volatility(close, bt.origins, volatility_days)
        return np.ones(bt.origins.size)

    widths = calibrate(val, levels, unit(val))
    test_unit = unit(test)
    cover = measure_coverage(test, widths, test_unit)

    one = pd.DataFrame({"actual": test.actual[:, 0]} | {name: fc[:, 0] for name, fc in
                                                       test.forecasts.items()},
                       index=dates[test.origins + 1].rename("date"))
    first_target, last_target = one.index[0].date(), one.index[-1].date()
    metrics: dict[str, Any] = {
        "test": {name: summary(one["actual"], one[name]) for name in ("model", "persistence")},
        "test_period": {"first": str(first_target), "last": str(last_target), "days": len(one)},
        "skill_rmse_vs_persistence": scores["h1"]["skill_rmse"],
        "target": target,
        "backtest": {"horizon": horizon, "origins": int(test.origins.size),
                     "mase_scale": scale, "drift_per_day": slope, "ma_window": ma_window,
                     **scores},
        "intervals": {"calibration_origins": int(n_val), "volatility_days": volatility_days,
                      **cover},
    }

    by_h = pd.DataFrame({"horizon": np.arange(1, horizon + 1)})
    for metric in ("rmse", "mase"):
        for name in PREDICTORS:
            by_h[f"{name}_{metric}"] = [scores[f"h{h}"][name][metric] for h in by_h["horizon"]]
    by_h["skill_rmse"] = [scores[f"h{h}"]["skill_rmse"] for h in by_h["horizon"]]
    for key, entry in cover.items():
        by_h[f"coverage_{key}"] = [entry[f"h{h}"]["coverage"] for h in by_h["horizon"]]
        by_h[f"nominal_{key}"] = entry["nominal"]

    # Target dates reached from every horizon: the h-day-ahead view of the test period.
    last = horizon - 1
    rows = np.arange(last, test.origins.size)
    view = pd.DataFrame({
        "actual": test.actual[rows - last, last],
        "model_1_day_ahead": test.forecasts["model"][rows, 0],
        "model_h_days_ahead": test.forecasts["model"][rows - last, last],
        "persistence_h_days_ahead": test.forecasts["persistence"][rows - last, last],
    }, index=dates[test.origins[rows] + 1].rename("date"))
    for level, q in widths.items():
        lower, upper = band(view["model_h_days_ahead"].to_numpy(), q[last] * test_unit[rows - last])
        view[f"lower_{level_name(level)}"] = lower
        view[f"upper_{level_name(level)}"] = upper
    return Evaluation(metrics=_finite(metrics), by_horizon=by_h, one_step=one,
                      horizon_view=view.dropna(subset=["actual"]), backtest_seconds=seconds)


def mlflow_metrics(metrics: dict[str, Any]) -> dict[str, float]:
    """Flat MLflow metrics, the horizon in the name (e.g. `backtest_model_rmse_h3`)."""
    out: dict[str, float] = {f"test_{name}_{k}": v for name, vals in metrics["test"].items()
                             for k, v in vals.items()}
    out["test_skill_rmse"] = metrics["skill_rmse_vs_persistence"]
    bt = metrics["backtest"]
    for h in range(1, int(bt["horizon"]) + 1):
        entry = bt[f"h{h}"]
        out[f"backtest_skill_rmse_h{h}"] = entry["skill_rmse"]
        for name in PREDICTORS:
            for k, v in entry[name].items():
                if v is not None:
                    out[f"backtest_{name}_{k}_h{h}"] = v
    for key, entry in metrics["intervals"].items():
        if isinstance(entry, dict):
            out[f"interval_{key}_coverage"] = entry["coverage"]
            for h in range(1, int(bt["horizon"]) + 1):
                out[f"interval_{key}_coverage_h{h}"] = entry[f"h{h}"]["coverage"]
                out[f"interval_{key}_half_width_pct_h{h}"] = entry[f"h{h}"]["half_width_pct"]
    return {k: float(v) for k, v in out.items()}


def _csv(frame: pd.DataFrame, index: bool = True) -> str:
    out = io.StringIO()
    frame.to_csv(out, index=index, date_format="%Y-%m-%d", float_format="%.6f")
    return out.getvalue()


def main() -> None:
    params: Params = load_params()
    info = read_json(paths.TRAIN_INFO, "train")
    scaler = MinMaxScaler.from_json(read_json(paths.SCALER, "preprocess"))
    series = read_series()

    net = load_network(paths.MODEL)

    import mlflow

    from stages import tracking

    cfg = params.evaluate
    with tracking.stage_run(params.mlflow.experiment, run_id=str(info["run_id"])):
        tracking.tag_stage_params(params, "evaluate")
        result = evaluate(net, series, scaler, params.preprocess.target,
                          params.preprocess.window, cfg.horizon, cfg.ma_window, cfg.interval_levels,
                          cfg.volatility_days if cfg.interval_scaling == "volatility" else 0)
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
