"""Scoring a trained network: the rolling-origin backtest over validation and test, every
predictor's metrics per horizon, and the conformal bands calibrated on validation and
checked on test."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from crypto_forecast.data.series import MinMaxScaler, Target
from crypto_forecast.errors import DataError
from crypto_forecast.evaluation.backtest import (
    Backtest,
    Predictor,
    model_forecasts,
    run_backtest,
    split_origins,
)
from crypto_forecast.evaluation.baselines import BASELINES, train_drift
from crypto_forecast.evaluation.intervals import (
    band,
    conformal_quantile,
    coverage,
    level_name,
    log_ratio_scores,
    recent_volatility,
)
from crypto_forecast.evaluation.metrics import naive_scale, score, summary

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


def evaluate(model: Predictor, series: pd.DataFrame, scaler: MinMaxScaler, *, target: Target,
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
