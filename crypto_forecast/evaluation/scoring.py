"""Scoring the walk-forward folds: one long backtest table over every fold's validation and
scored origins, every metric computed from it (in the manner of Nixtla utilsforecast's
`evaluate(df, metrics)`), pooled and per fold; conformal bands calibrated on each fold's
validation slice and checked on its scored days (coverage, interval score, pinball loss);
the gate's choice; and the typed report evaluate writes."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial

import numpy as np
import pandas as pd

from crypto_forecast.data.series import Target
from crypto_forecast.errors import DataError
from crypto_forecast.evaluation.backtest import PREDICTORS
from crypto_forecast.evaluation.baselines import train_drift
from crypto_forecast.evaluation.gate import DEFAULT_GATE, Champion, GateThresholds, decide
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
    interval_score,
    mae,
    mape,
    mase,
    naive_scale,
    pinball_loss,
    rmse,
    safe_ratio,
    smape,
)
from crypto_forecast.evaluation.walk_forward import FoldModel, walk_forward_table
from crypto_forecast.io.contracts import (
    BacktestSetup,
    BandAtHorizon,
    BandCalibration,
    EvaluationReport,
    FoldScores,
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
    table: pd.DataFrame  # the long walk-forward table: every fold's val and test rows
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


def one_step_table(test: pd.DataFrame) -> pd.DataFrame:
    """The test period one day ahead: actual and every predictor, by target date."""
    one = test[test["horizon"] == 1]
    return one.set_index(pd.DatetimeIndex(one["date"]).rename("date"))[["actual", *PREDICTORS]]


def band_columns(rows: pd.DataFrame, *, widths: dict[float, np.ndarray], unit: np.ndarray,
                 predictor: str, prefix: str = "") -> pd.DataFrame:
    """`rows` with `<prefix>lower_<level>` and `<prefix>upper_<level>` around `predictor`."""
    out = rows.copy()
    horizons = rows["horizon"].to_numpy()
    for level, q in widths.items():
        lower, upper = band(rows[predictor].to_numpy(dtype=np.float64), q[horizons - 1] * unit)
        out[f"{prefix}lower_{level_name(level)}"] = lower
        out[f"{prefix}upper_{level_name(level)}"] = upper
    return out


def with_bands(table: pd.DataFrame, *, levels: tuple[float, ...], units: Callable[[pd.DataFrame],
               np.ndarray]) -> pd.DataFrame:
    """Every fold's test rows with its LSTM and naive bands, each calibrated on that fold's
    own validation rows (as the live model's served bands are on its own)."""
    parts = []
    for _, rows in table.groupby("fold", sort=False):
        val = rows[rows["split"] == "val"]
        test = rows[rows["split"] == "test"]
        if test.empty:
            continue
        unit = units(test)
        for predictor, prefix in (("lstm", ""), ("persistence", "naive_")):
            widths = calibrate_bands(val, levels=levels, unit=units(val), predictor=predictor)
            test = band_columns(test, widths=widths, unit=unit, predictor=predictor,
                                prefix=prefix)
        parts.append(test)
    return pd.concat(parts, ignore_index=True)


def _band_scores(rows: pd.DataFrame, level: float, prefix: str) -> tuple[float, float, float]:
    """(coverage, interval score, mean pinball of the two quantiles) of one band on `rows`."""
    name = level_name(level)
    a = rows["actual"].to_numpy(dtype=np.float64)
    lo = rows[f"{prefix}lower_{name}"].to_numpy(dtype=np.float64)
    hi = rows[f"{prefix}upper_{name}"].to_numpy(dtype=np.float64)
    tail = (1.0 - level) / 2.0
    return (coverage(a, lo, hi), interval_score(a, lo, hi, level),
            (pinball_loss(a, lo, tail) + pinball_loss(a, hi, 1.0 - tail)) / 2.0)


def measure_bands(test: pd.DataFrame, *, served: dict[float, np.ndarray], levels: tuple[float, ...],
                  volatility_days: int) -> list[BandCalibration]:
    """Per level: the served quantiles (the live model's), and the walk-forward coverage,
    interval score and pinball loss of the LSTM's and the naive forecaster's bands."""
    horizons = test["horizon"].to_numpy()
    out = []
    for level in levels:
        name = level_name(level)
        per_h = []
        for h in range(1, served[level].size + 1):
            at = test[horizons == h]
            lo = at[f"lower_{name}"].to_numpy(dtype=np.float64)
            fc = at["lstm"].to_numpy(dtype=np.float64)
            half = np.log(np.where(lo > 0, fc / np.where(lo > 0, lo, 1.0), np.inf))
            per_h.append(BandAtHorizon(
                horizon=h, score_quantile=_finite(float(served[level][h - 1])),
                coverage=coverage(at["actual"], lo, at[f"upper_{name}"]),
                half_width_pct=_finite(float(np.mean(np.expm1(half)) * 100.0))))
        cov, score, pin = _band_scores(test, level, "")
        naive_cov, naive_score, naive_pin = _band_scores(test, level, "naive_")
        out.append(BandCalibration(
            nominal=level, volatility_days=volatility_days, coverage=cov, horizons=per_h,
            interval_score=_finite(score), pinball=_finite(pin), naive_coverage=naive_cov,
            naive_interval_score=_finite(naive_score), naive_pinball=_finite(naive_pin)))
    return out


def fold_scores(test: pd.DataFrame, *, levels: tuple[float, ...], horizon: int
                ) -> list[FoldScores]:
    """Skill per horizon, coverage and interval skill of each fold on its own scored rows."""
    out = []
    for name, rows in test.groupby("fold", sort=False):
        skill: list[float | None] = []
        for h in range(1, horizon + 1):
            at = rows[rows["horizon"] == h]
            skill.append(_finite(safe_ratio(rmse(at["actual"], at["lstm"]),
                                            rmse(at["actual"], at["persistence"]))))
        cov, inter = {}, {}
        for level in levels:
            c, score, _ = _band_scores(rows, level, "")
            _, naive, _ = _band_scores(rows, level, "naive_")
            cov[level_name(level)] = c
            inter[level_name(level)] = _finite(safe_ratio(score, naive))
        one = rows[rows["horizon"] == 1]
        out.append(FoldScores(name=str(name), cutoff=str(pd.Timestamp(one["date"].min()).date()),
                              last=str(pd.Timestamp(one["date"].max()).date()),
                              origins=int(rows["origin"].nunique()), skill=skill, coverage=cov,
                              interval_skill=inter))
    return out


def by_horizon_table(report: EvaluationReport) -> pd.DataFrame:
    """The plot table of errors and coverage against days ahead (walk-forward, pooled)."""
    steps = report.horizons
    out = pd.DataFrame({"horizon": [s.horizon for s in steps]})
    for metric in ("rmse", "mase"):
        for name in PREDICTORS:
            out[f"{name}_{metric}"] = [getattr(dict(s.predictors())[name], metric) for s in steps]
    out["skill_rmse"] = [s.skill_rmse for s in steps]
    for fold in report.folds:
        out[f"skill_{fold.name}"] = fold.skill
    for b in report.bands:
        out[f"coverage_{b.name}"] = [h.coverage for h in b.horizons]
        out[f"nominal_{b.name}"] = b.nominal
    return out


def horizon_view_table(test: pd.DataFrame, *, horizon: int, levels: tuple[float, ...]
                       ) -> pd.DataFrame:
    """Each target date reached from every horizon: the actual, the LSTM's 1-day and
    `horizon`-day forecasts of it, persistence's `horizon`-day one, and the bands."""
    one = test[test["horizon"] == 1].set_index("date")
    far = test[test["horizon"] == horizon].set_index("date")
    view = pd.DataFrame({
        "actual": far["actual"],
        "lstm_1_day_ahead": one["lstm"].reindex(far.index),
        "lstm_h_days_ahead": far["lstm"],
        "persistence_h_days_ahead": far["persistence"],
    })
    for level in levels:
        for side in ("lower", "upper"):
            view[f"{side}_{level_name(level)}"] = far[f"{side}_{level_name(level)}"]
    view.index = pd.DatetimeIndex(view.index).rename("date")
    return view.dropna(subset=["actual"])


def headline(*, horizons: list[HorizonScores], bands: list[BandCalibration],
             period: ScoredPeriod, param_count: int) -> Headline:
    """The few numbers metrics.json holds."""
    first, last = horizons[0], horizons[-1]
    return Headline(horizon=len(horizons), skill_h1=first.skill_rmse,
                    skill_hmax=last.skill_rmse, rmse_h1=first.lstm.rmse, mae_h1=first.lstm.mae,
                    mase_h1=first.lstm.mase, coverage={b.name: b.coverage for b in bands},
                    interval_skill={b.name: _finite(safe_ratio(
                        b.interval_score if b.interval_score is not None else math.nan,
                        b.naive_interval_score if b.naive_interval_score is not None
                        else math.nan)) for b in bands},
                    param_count=param_count, test_first=period.first, test_last=period.last)


def check_fold_lengths(table: pd.DataFrame, *, horizon: int) -> None:
    """Every fold must hold at least `horizon` scored and validation origins."""
    for (fold, split), rows in table.groupby(["fold", "split"], sort=False):
        origins = rows["origin"].nunique()
        if origins < horizon:
            raise DataError(
                f"walk-forward {fold} has {origins} {split} origins, fewer than "
                f"evaluate.horizon={horizon} — lower evaluate.horizon or preprocess.folds, or "
                f"raise preprocess.{'val' if split == 'val' else 'test'}_fraction")


def skill_vs_best_baseline(step: HorizonScores) -> tuple[float | None, str]:
    """The LSTM's RMSE over the best baseline's (persistence or drift) and which that is."""
    candidates = [(s.rmse, n) for n, s in (("persistence", step.persistence),
                                            ("drift", step.drift)) if s.rmse is not None]
    if not candidates or step.lstm.rmse is None:
        return None, "none"
    best, name = min(candidates)
    return _finite(safe_ratio(step.lstm.rmse, best)), name


def serving_decision(*, steps: list[HorizonScores], gate: GateThresholds,
                     champion: Champion | None, naive_widths: dict[float, np.ndarray]
                     ) -> ServingDecision:
    """The gate's choice on the walk-forward scores, recorded with every number it used."""
    pairs = [skill_vs_best_baseline(h) for h in steps]
    skills = [v for v, _ in pairs]
    defined = [v for v in skills if v is not None]
    mean = float(np.mean(defined)) if len(defined) == len(skills) else None
    decision = decide(skill_h1=skills[0], skill_mean=mean, thresholds=gate, champion=champion)
    return ServingDecision(
        served=decision.served, reasons=list(decision.reasons), skill_h1=skills[0],
        skill_mean=mean, best_baseline_h1=pairs[0][1], max_skill_h1=gate.max_skill_h1,
        max_skill_mean=gate.max_skill_mean, min_gain_vs_champion=gate.min_gain_vs_champion,
        champion=champion.label if champion else None,
        champion_skill_mean=champion.skill_mean if champion else None,
        naive_quantiles={level_name(level): [_finite(float(v)) for v in q]
                         for level, q in naive_widths.items()})


def evaluate(*, models: list[FoldModel], close: np.ndarray, dates: pd.DatetimeIndex,
             target: Target, window: int, horizon: int, ma_window: int,
             levels: tuple[float, ...], volatility_days: int = 0, param_count: int = 0,
             gate: GateThresholds = DEFAULT_GATE, champion: Champion | None = None
             ) -> Evaluation:
    """Walk-forward: every fold's model scored on its own origins (bands calibrated on its
    own validation slice), the scores pooled and per fold; the live model's validation
    slice calibrates the served bands; and the gate's choice of what to serve.

    `models` are the folds in time order, then the live model. `volatility_days` > 0 scales
    the bands by each origin's recent volatility.
    """
    close = np.asarray(close, dtype=np.float64)
    table, seconds = walk_forward_table(models, close=close, dates=dates, target=target,
                                        window=window, horizon=horizon, ma_window=ma_window)
    check_fold_lengths(table, horizon=horizon)
    units = partial(origin_units, close=close, dates=dates, volatility_days=volatility_days)
    test = with_bands(table, levels=levels, units=units)
    first_fold = models[0].fold
    scale = (naive_scale(close[: first_fold.train_end])
             if np.any(np.diff(close[: first_fold.train_end]) != 0) else math.nan)
    metrics = table_metrics(mase_scale=scale)
    scores = pd.concat([evaluate_table(test, metrics=metrics),
                        evaluate_table(test, metrics=metrics, by_horizon=False)],
                       ignore_index=True)
    steps = [horizon_scores(scores, horizon=h) for h in range(1, horizon + 1)]

    live_val = table[table["fold"] == models[-1].fold.name]
    served = calibrate_bands(live_val, levels=levels, unit=units(live_val))
    naive_served = calibrate_bands(live_val, levels=levels, unit=units(live_val),
                                   predictor="persistence")
    bands = measure_bands(test, served=served, levels=levels, volatility_days=volatility_days)

    one = one_step_table(test)
    period = ScoredPeriod(first=str(one.index[0].date()), last=str(one.index[-1].date()),
                          days=len(one))
    report = EvaluationReport(
        target=target,
        headline=headline(horizons=steps, bands=bands, period=period, param_count=param_count),
        test_period=period,
        backtest=BacktestSetup(horizon=horizon, folds=len(models) - 1,
                               origins=int(test["origin"].nunique()),
                               calibration_origins=int(live_val["origin"].nunique()),
                               mase_scale=scale if math.isfinite(scale) else 0.0,
                               drift_per_day=train_drift(close[: models[-1].fold.cutoff]),
                               ma_window=ma_window),
        horizons=steps, pooled=horizon_scores(scores, horizon=None),
        folds=fold_scores(test, levels=levels, horizon=horizon), bands=bands,
        serving=serving_decision(steps=steps, gate=gate, champion=champion,
                                 naive_widths=naive_served))
    return Evaluation(report=report, table=table, scores=scores,
                      by_horizon=by_horizon_table(report), one_step=one,
                      horizon_view=horizon_view_table(test, horizon=horizon, levels=levels),
                      backtest_seconds=seconds)


def mlflow_metrics(head: Headline) -> dict[str, float]:
    """The headline numbers as MLflow metrics: undefined ones (null) left out."""
    return {k: v for k, v in head.tracked().items() if v is not None and math.isfinite(v)}
