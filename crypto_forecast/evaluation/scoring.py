"""Scoring a trained network: one long backtest table over validation and test, every
metric computed from it (in the manner of Nixtla utilsforecast's `evaluate(df, metrics)`),
the conformal bands calibrated on validation and checked on test, and the typed report
evaluate writes."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial

import numpy as np
import pandas as pd

from crypto_forecast.data.series import MinMaxScaler, Target
from crypto_forecast.errors import DataError
from crypto_forecast.evaluation.backtest import (
    PREDICTORS,
    Predictor,
    backtest_table,
    model_forecasts,
    split_origins,
)
from crypto_forecast.evaluation.baselines import train_drift
from crypto_forecast.evaluation.gate import DEFAULT_GATE, GateThresholds, decide
from crypto_forecast.evaluation.intervals import (
    band,
    conformal_quantile,
    coverage,
    level_name,
    log_ratio_scores,
    recent_volatility,
)
from crypto_forecast.evaluation.metrics import (
    SCORE_KEYS,
    directional_accuracy,
    mae,
    mape,
    mase,
    naive_scale,
    rmse,
    safe_ratio,
    smape,
)
from crypto_forecast.io.contracts import (
    BacktestSetup,
    BandAtHorizon,
    BandCalibration,
    EvaluationReport,
    Headline,
    HorizonScores,
    PredictorScores,
    ScoredPeriod,
    ServingDecision,
)

# A metric of the backtest table: (actual, forecast, origin's close) -> a number (NaN where
# undefined). The origin's close is persistence's forecast; direction is measured from it.
Metric = Callable[[np.ndarray, np.ndarray, np.ndarray], float]


@dataclass(frozen=True)
class Evaluation:
    """What the stage writes: the typed report, the backtest table and scores it came from,
    and the plot tables."""

    report: EvaluationReport
    table: pd.DataFrame  # the long backtest table, validation and test
    scores: pd.DataFrame  # test scores: a row per (horizon, metric), a column per predictor
    by_horizon: pd.DataFrame
    one_step: pd.DataFrame
    horizon_view: pd.DataFrame
    backtest_seconds: float


def table_metrics(*, mase_scale: float) -> dict[str, Metric]:
    """The metrics every predictor is scored with, in the order of `SCORE_KEYS`
    (tests/unit/test_evaluate.py checks the two agree)."""
    return {
        "rmse": lambda a, p, r: rmse(a, p),
        "mae": lambda a, p, r: mae(a, p),
        "mape": lambda a, p, r: mape(a, p),
        "smape": lambda a, p, r: smape(a, p),
        "mase": lambda a, p, r: mase(a, p, mase_scale),
        "direction": lambda a, p, r: directional_accuracy(a, p, r),
    }


def evaluate_table(table: pd.DataFrame, *, metrics: Mapping[str, Metric],
                   predictors: tuple[str, ...] = PREDICTORS, by_horizon: bool = True
                   ) -> pd.DataFrame:
    """Every metric of every predictor from the long table: a row per (horizon, metric)
    (`by_horizon=False`: per metric, all horizons pooled), a column per predictor."""
    groups = table.groupby("horizon", sort=True) if by_horizon else [(None, table)]
    rows = []
    for horizon, part in groups:
        actual = part["actual"].to_numpy(dtype=np.float64)
        reference = part["persistence"].to_numpy(dtype=np.float64)
        for metric, fn in metrics.items():
            rows.append({"horizon": horizon, "metric": metric,
                         **{p: fn(actual, part[p].to_numpy(dtype=np.float64), reference)
                            for p in predictors}})
    return pd.DataFrame(rows)


def _finite(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


def horizon_scores(scores: pd.DataFrame, *, horizon: int | None) -> HorizonScores:
    """The typed scores of one horizon (None: the pooled rows) from `evaluate_table`."""
    rows = scores[scores["horizon"].isna()] if horizon is None else \
        scores[scores["horizon"] == horizon]
    metric_names = rows["metric"].tolist()

    def values(predictor: str) -> dict[str, float]:
        return dict(zip(metric_names, rows[predictor].to_numpy(dtype=np.float64).tolist(),
                        strict=True))

    def of(predictor: str) -> PredictorScores:
        got = values(predictor)
        return PredictorScores(**{m: _finite(got[m]) for m in SCORE_KEYS})

    skill = safe_ratio(values("lstm")["rmse"], values("persistence")["rmse"])
    return HorizonScores(horizon=horizon, lstm=of("lstm"), persistence=of("persistence"),
                         drift=of("drift"), moving_average=of("moving_average"),
                         skill_rmse=_finite(skill))


def origin_units(table: pd.DataFrame, *, close: np.ndarray, dates: pd.DatetimeIndex,
                 volatility_days: int) -> np.ndarray:
    """Per row, what the band's width is scaled by: 1, or the origin's recent volatility."""
    if not volatility_days:
        return np.ones(len(table))
    origins = dates.get_indexer(pd.DatetimeIndex(table["origin"]))
    return recent_volatility(close, origins, volatility_days)


def calibrate_bands(val: pd.DataFrame, *, levels: tuple[float, ...], unit: np.ndarray,
                    predictor: str = "lstm") -> dict[float, np.ndarray]:
    """Per level, the conformal quantile of `predictor`'s validation log-ratio scores (divided
    by each row's `unit`) for each horizon."""
    scores = log_ratio_scores(val["actual"], val[predictor]) / unit
    horizons = val["horizon"].to_numpy()
    steps = np.unique(horizons)
    return {level: np.array([conformal_quantile(scores[horizons == h], level) for h in steps])
            for level in levels}


def measure_bands(test: pd.DataFrame, *, widths: dict[float, np.ndarray], unit: np.ndarray,
                  volatility_days: int) -> list[BandCalibration]:
    """Nominal vs measured coverage on test, overall and per horizon, with the widths."""
    horizons = test["horizon"].to_numpy()
    actual = test["actual"].to_numpy(dtype=np.float64)
    out = []
    for level, q in widths.items():
        half = q[horizons - 1] * unit
        lower, upper = band(test["lstm"].to_numpy(dtype=np.float64), half)
        per_h = []
        for h in range(1, q.size + 1):
            at = horizons == h
            per_h.append(BandAtHorizon(
                horizon=h, score_quantile=_finite(float(q[h - 1])),
                coverage=coverage(actual[at], lower[at], upper[at]),
                half_width_pct=_finite(float(np.mean(np.expm1(half[at])) * 100.0))))
        out.append(BandCalibration(nominal=level, volatility_days=volatility_days,
                                   coverage=coverage(actual, lower, upper), horizons=per_h))
    return out


def one_step_table(test: pd.DataFrame) -> pd.DataFrame:
    """The test period one day ahead: actual and every predictor, by target date."""
    one = test[test["horizon"] == 1]
    return one.set_index(pd.DatetimeIndex(one["date"]).rename("date"))[["actual", *PREDICTORS]]


def by_horizon_table(report: EvaluationReport) -> pd.DataFrame:
    """The plot table of errors and coverage against days ahead."""
    steps = report.horizons
    out = pd.DataFrame({"horizon": [s.horizon for s in steps]})
    for metric in ("rmse", "mase"):
        for name in PREDICTORS:
            out[f"{name}_{metric}"] = [getattr(dict(s.predictors())[name], metric) for s in steps]
    out["skill_rmse"] = [s.skill_rmse for s in steps]
    for b in report.bands:
        out[f"coverage_{b.name}"] = [h.coverage for h in b.horizons]
        out[f"nominal_{b.name}"] = b.nominal
    return out


def horizon_view_table(test: pd.DataFrame, *, widths: dict[float, np.ndarray], unit: np.ndarray,
                       horizon: int) -> pd.DataFrame:
    """Each target date reached from every horizon: the actual, the LSTM's 1-day and
    `horizon`-day forecasts of it, persistence's `horizon`-day one, and the bands."""
    one = test[test["horizon"] == 1].set_index("date")
    at = (test["horizon"] == horizon).to_numpy()
    far = test[at].set_index("date")
    view = pd.DataFrame({
        "actual": far["actual"],
        "lstm_1_day_ahead": one["lstm"].reindex(far.index),
        "lstm_h_days_ahead": far["lstm"],
        "persistence_h_days_ahead": far["persistence"],
    })
    for level, q in widths.items():
        lower, upper = band(view["lstm_h_days_ahead"].to_numpy(), q[horizon - 1] * unit[at])
        view[f"lower_{level_name(level)}"] = lower
        view[f"upper_{level_name(level)}"] = upper
    view.index = pd.DatetimeIndex(view.index).rename("date")
    return view.dropna(subset=["actual"])


def headline(*, horizons: list[HorizonScores], bands: list[BandCalibration],
             period: ScoredPeriod, param_count: int) -> Headline:
    """The few numbers metrics.json holds."""
    first, last = horizons[0], horizons[-1]
    return Headline(horizon=len(horizons), skill_h1=first.skill_rmse,
                    skill_hmax=last.skill_rmse, rmse_h1=first.lstm.rmse, mae_h1=first.lstm.mae,
                    mase_h1=first.lstm.mase, coverage={b.name: b.coverage for b in bands},
                    param_count=param_count, test_first=period.first, test_last=period.last)


def check_split_lengths(parts: Mapping[str, tuple[np.ndarray, int]], *, horizon: int) -> None:
    """Every split must hold at least `horizon` origins."""
    for part, (origins, _) in parts.items():
        if origins.size < horizon:
            raise DataError(
                f"the {part} split has {origins.size} days, fewer than evaluate.horizon="
                f"{horizon} — lower evaluate.horizon or raise preprocess.{part}_fraction"
            )


def build_backtest(*, model: Predictor, series: pd.DataFrame, scaler: MinMaxScaler,
                   target: Target, window: int, horizon: int, ma_window: int
                   ) -> tuple[pd.DataFrame, float]:
    """The long backtest table over validation and test (`split` says which), and the
    seconds the network's recursive forecasts took."""
    labels = series["split"].to_numpy()
    close = series["close"].to_numpy(dtype=np.float64)
    dates = pd.DatetimeIndex(series.index)
    parts = {p: split_origins(labels, p) for p in ("val", "test")}
    check_split_lengths(parts, horizon=horizon)
    # One recursive run over the validation and test origins together.
    every = np.concatenate([parts["val"][0], parts["test"][0]])
    t0 = time.perf_counter()
    lstm = model_forecasts(model, series["scaled"].to_numpy(dtype=np.float64), close, every,
                           window, horizon, scaler, target)
    seconds = time.perf_counter() - t0
    slope = train_drift(close[labels == "train"])
    n_val = parts["val"][0].size
    tables = [backtest_table(lstm=fc, close=close, dates=dates, origins=origins, stop=stop,
                             drift_slope=slope, ma_window=ma_window, split=name)
              for name, fc, (origins, stop) in (("val", lstm[:n_val], parts["val"]),
                                                ("test", lstm[n_val:], parts["test"]))]
    return pd.concat(tables, ignore_index=True), seconds


def training_scale(series: pd.DataFrame) -> float:
    """MASE's denominator from the training closes; NaN (MASE undefined) if they never move."""
    train = series.loc[series["split"] == "train", "close"].to_numpy(dtype=np.float64)
    return naive_scale(train) if np.any(np.diff(train) != 0) else math.nan


def serving_decision(*, steps: list[HorizonScores], gate: GateThresholds,
                     naive_widths: dict[float, np.ndarray]) -> ServingDecision:
    """The gate's choice on the test scores, recorded with its thresholds and the naive
    forecaster's band calibration."""
    skills = [h.skill_rmse for h in steps]
    defined = [v for v in skills if v is not None]
    mean = float(np.mean(defined)) if len(defined) == len(skills) else None
    decision = decide(skill_h1=skills[0], skill_mean=mean, thresholds=gate)
    return ServingDecision(
        served=decision.served, reasons=list(decision.reasons), skill_h1=skills[0], skill_mean=mean,
        max_skill_h1=gate.max_skill_h1, max_skill_mean=gate.max_skill_mean,
        naive_quantiles={level_name(level): [_finite(float(v)) for v in q]
                         for level, q in naive_widths.items()})


def evaluate(*, model: Predictor, series: pd.DataFrame, scaler: MinMaxScaler, target: Target,
             window: int, horizon: int, ma_window: int, levels: tuple[float, ...],
             volatility_days: int = 0, param_count: int = 0,
             gate: GateThresholds = DEFAULT_GATE) -> Evaluation:
    """Backtest on validation (to calibrate the bands) and test (to score everything), and
    the gate's choice of what to serve.

    `volatility_days` > 0 scales the bands by each origin's recent volatility.
    """
    table, seconds = build_backtest(model=model, series=series, scaler=scaler, target=target, window=window,
                                    horizon=horizon, ma_window=ma_window)
    val, test = (table[table["split"] == s].reset_index(drop=True) for s in ("val", "test"))
    close = series["close"].to_numpy(dtype=np.float64)
    dates = pd.DatetimeIndex(series.index)
    scale = training_scale(series)
    metrics = table_metrics(mase_scale=scale)
    scores = pd.concat([evaluate_table(test, metrics=metrics),
                        evaluate_table(test, metrics=metrics, by_horizon=False)],
                       ignore_index=True)
    steps = [horizon_scores(scores, horizon=h) for h in range(1, horizon + 1)]

    units = partial(origin_units, close=close, dates=dates, volatility_days=volatility_days)
    widths = calibrate_bands(val, levels=levels, unit=units(val))
    naive_widths = calibrate_bands(val, levels=levels, unit=units(val), predictor="persistence")
    test_unit = units(test)
    bands = measure_bands(test, widths=widths, unit=test_unit, volatility_days=volatility_days)

    one = one_step_table(test)
    period = ScoredPeriod(first=str(one.index[0].date()), last=str(one.index[-1].date()),
                        days=len(one))
    n_origins = int(test["origin"].nunique())
    report = EvaluationReport(
        target=target,
        headline=headline(horizons=steps, bands=bands, period=period, param_count=param_count),
        test_period=period,
        backtest=BacktestSetup(horizon=horizon, origins=n_origins,
                               calibration_origins=int(val["origin"].nunique()),
                               mase_scale=scale if math.isfinite(scale) else 0.0,
                               drift_per_day=train_drift(
                                   series.loc[series["split"] == "train", "close"].to_numpy()),
                               ma_window=ma_window),
        horizons=steps, pooled=horizon_scores(scores, horizon=None), bands=bands,
        serving=serving_decision(steps=steps, gate=gate, naive_widths=naive_widths))
    return Evaluation(report=report, table=table, scores=scores,
                      by_horizon=by_horizon_table(report), one_step=one,
                      horizon_view=horizon_view_table(test, widths=widths, unit=test_unit,
                                                      horizon=horizon),
                      backtest_seconds=seconds)


def mlflow_metrics(head: Headline) -> dict[str, float]:
    """The headline numbers as MLflow metrics: undefined ones (null) left out."""
    return {k: v for k, v in head.numbers().items() if v is not None and math.isfinite(v)}
