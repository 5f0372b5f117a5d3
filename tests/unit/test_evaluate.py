"""The evaluate stage's pure part: the long backtest table, the scores computed from it,
the typed report, metrics.json's headline, the plot tables."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from crypto_forecast.data.series import split_and_scale
from crypto_forecast.errors import DataError
from crypto_forecast.evaluation.backtest import PREDICTORS
from crypto_forecast.evaluation.metrics import SCORE_KEYS, mase, rmse
from crypto_forecast.evaluation.scoring import (
    evaluate,
    evaluate_table,
    mlflow_metrics,
    table_metrics,
)


def _frame(target: str = "price", n: int = 300, flat: bool = False):  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(11)
    values = 1000 * np.exp(np.cumsum(rng.normal(0, 0.02, n)))
    if flat:  # prices stop moving from mid-validation on: the whole test period is constant
        values[n // 2:] = values[n // 2]
    close = pd.Series(values, index=pd.date_range("2020-01-01", periods=n, freq="D"))
    return split_and_scale(close, 10, 0.2, 0.2, target)  # type: ignore[arg-type]


def _last_value(x: np.ndarray) -> np.ndarray:
    return x[:, -1, 0]


def test_the_long_table_has_a_row_per_origin_and_horizon_inside_each_split() -> None:
    frame, scaler, _ = _frame()
    result = evaluate(model=_last_value, series=frame, scaler=scaler,
                      target="price", window=10, horizon=4,
                      ma_window=5, levels=(0.8,))
    table = result.table
    assert list(table.columns) == ["origin", "horizon", "date", "actual", *PREDICTORS, "split"]
    assert set(table["split"]) == {"val", "test"}
    test = table[table["split"] == "test"]
    n_test = int((frame["split"] == "test").sum())
    assert test["origin"].nunique() == n_test
    # h days ahead of every origin whose target is still a test day: n - (h - 1) rows
    assert test.groupby("horizon").size().tolist() == [n_test - h for h in range(4)]
    assert ((test["date"] - test["origin"]).dt.days == test["horizon"]).all()
    close = frame["close"]
    np.testing.assert_allclose(test["actual"], close.loc[test["date"]].to_numpy())
    np.testing.assert_allclose(test["persistence"], close.loc[test["origin"]].to_numpy())
    assert test["date"].max() == frame.index[-1]  # never beyond the split


def test_scores_come_from_the_table_like_utilsforecast_evaluate() -> None:
    frame, scaler, _ = _frame()
    result = evaluate(model=_last_value, series=frame, scaler=scaler,
                      target="price", window=10, horizon=3,
                      ma_window=5, levels=(0.8,))
    scores = result.scores
    assert list(scores.columns) == ["horizon", "metric", *PREDICTORS]
    test = result.table[result.table["split"] == "test"]
    at2 = test[test["horizon"] == 2]
    row = scores[(scores["horizon"] == 2) & (scores["metric"] == "rmse")].iloc[0]
    assert row["drift"] == rmse(at2["actual"], at2["drift"])
    assert result.report.at(2).drift.rmse == row["drift"]
    pooled = scores[scores["horizon"].isna() & (scores["metric"] == "mae")].iloc[0]
    assert pooled["lstm"] == pytest.approx(np.mean(np.abs(test["actual"] - test["lstm"])))
    assert tuple(table_metrics(mase_scale=1.0)) == SCORE_KEYS
    custom = evaluate_table(test, metrics={"bias": lambda a, p, r: float(np.mean(p - a))},
                            predictors=("persistence",))
    assert custom["metric"].unique().tolist() == ["bias"] and len(custom) == 3


def test_a_persistence_network_scores_skill_one_everywhere() -> None:
    frame, scaler, _ = _frame()
    result = evaluate(model=_last_value, series=frame, scaler=scaler,
                      target="price", window=10, horizon=4,
                      ma_window=5, levels=(0.8, 0.95), param_count=123)
    report = result.report
    n_test = int((frame["split"] == "test").sum())
    assert report.backtest.horizon == 4 and report.backtest.origins == n_test
    for scores in (*report.horizons, report.pooled):
        assert scores.skill_rmse == pytest.approx(1.0)
        assert scores.persistence.direction is None  # flat: no direction, JSON null
    assert [s.horizon for s in report.horizons] == [1, 2, 3, 4] and report.pooled.horizon is None
    assert report.test_period.days == n_test
    for b, nominal in zip(report.bands, (0.8, 0.95), strict=True):
        assert b.nominal == nominal and b.name == str(round(nominal * 100))
        assert 0 <= b.coverage <= 1 and b.volatility_days == 0
        widths = [h.score_quantile for h in b.horizons]
        assert widths[-1] > widths[0]  # random-walk errors grow with the horizon
    assert report.bands[1].horizons[0].score_quantile > report.bands[0].horizons[0].score_quantile

    head = report.headline.metrics_file()
    assert list(head) == ["skill_h1", "skill_h4", "rmse_h1", "mae_h1", "mase_h1", "coverage_80",
                          "coverage_95", "param_count", "test_first", "test_last"]
    assert head["rmse_h1"] == report.at(1).lstm.rmse and head["param_count"] == 123
    assert head["skill_h4"] == report.at(4).skill_rmse
    assert head["test_first"] == report.test_period.first
    json.dumps(report.model_dump(mode="json"), allow_nan=False)  # valid JSON: no NaN anywhere

    flat = mlflow_metrics(report.headline)
    assert set(flat) == {k for k in head if k not in ("test_first", "test_last")}
    assert len(flat) <= 12

    assert list(result.by_horizon["horizon"]) == [1, 2, 3, 4]
    assert {"lstm_rmse", "persistence_mase", "coverage_80", "nominal_95"} <= set(result.by_horizon)
    assert list(result.one_step.columns) == ["actual", *PREDICTORS]
    view = result.horizon_view
    assert len(view) == n_test - 3
    np.testing.assert_allclose(view["lstm_h_days_ahead"], view["persistence_h_days_ahead"])
    assert (view["lower_95"] <= view["lower_80"]).all() and (view["upper_80"] <= view["upper_95"]).all()


def test_constant_prices_give_undefined_skill_not_a_crash() -> None:
    frame, scaler, _ = _frame(flat=True)
    result = evaluate(model=_last_value, series=frame, scaler=scaler,
                      target="price", window=10, horizon=3,
                      ma_window=5, levels=(0.8,))
    head = result.report.headline
    assert head.skill_h1 is None and head.skill_hmax is None
    assert head.rmse_h1 is not None and head.rmse_h1 < 1e-3  # float32 round trip
    text = json.dumps(head.metrics_file(), allow_nan=False)
    assert '"skill_h1": null' in text
    flat = mlflow_metrics(head)
    assert "skill_h1" not in flat and "skill_h3" not in flat and "rmse_h1" in flat
    assert all(math.isfinite(v) for v in flat.values())
    result.report.to_json()  # the whole report is valid JSON too
    assert math.isnan(mase([1.0, 2.0], [1.5, 2.5], 0.0))  # a zero MASE scale: undefined


def test_log_return_target_runs_the_same_way() -> None:
    frame, scaler, _ = _frame("log_return")
    zero = np.float32(scaler.transform(np.array([0.0]))[0])
    result = evaluate(model=lambda x: np.full(x.shape[0], zero), series=frame, scaler=scaler,
                      target="log_return",
                      window=10, horizon=3, ma_window=5, levels=(0.8,))
    assert result.report.at(3).skill_rmse == pytest.approx(1.0)
    assert result.report.target == "log_return"


def test_a_horizon_longer_than_the_split_is_refused() -> None:
    frame, scaler, _ = _frame(n=120)
    with pytest.raises(DataError, match=r"lower evaluate\.horizon"):
        evaluate(model=_last_value, series=frame, scaler=scaler, target="price", window=10,
                 horizon=40, ma_window=5, levels=(0.8,))


def test_volatility_scaled_bands_are_recorded_and_rebuilt_by_the_forecasters() -> None:
    from crypto_forecast.serving.build import pipeline_forecasters, recent_closes
    from tests.helpers import random_network

    frame, scaler, _ = _frame()
    result = evaluate(model=_last_value, series=frame, scaler=scaler,
                      target="price", window=10, horizon=3, ma_window=5,
                      levels=(0.8,), volatility_days=10)
    (b,) = result.report.bands
    assert b.volatility_days == 10 and 0 < b.coverage <= 1
    forecasters = pipeline_forecasters(network=random_network((4, 4)), scaler=scaler,
                                       report=result.report, series=frame, ticker="ETH-USD",
                                       window=10, target="price", data_sha256="")
    close = frame["close"].to_numpy()
    sigma = np.std(np.diff(np.log(close))[-10:], ddof=1)
    lstm = forecasters["lstm"].forecast(recent_closes(frame))
    np.testing.assert_allclose(np.log(lstm["upper_80"] / lstm["forecast"]),
                               sigma * np.array([h.score_quantile for h in b.horizons]))
    naive = forecasters["naive"].forecast(recent_closes(frame))
    assert (naive["forecast"] == close[-1]).all()
    np.testing.assert_allclose(np.log(naive["upper_80"] / naive["forecast"]),
                               sigma * np.array(result.report.serving.naive_quantiles["80"]))


def test_the_gate_serves_the_naive_forecast_when_the_lstm_does_not_beat_it() -> None:
    from crypto_forecast.evaluation.gate import GateThresholds

    frame, scaler, _ = _frame()
    kwargs = {"model": _last_value, "series": frame, "scaler": scaler, "target": "price",
              "window": 10, "horizon": 3, "ma_window": 5, "levels": (0.8,)}
    # _last_value is persistence itself: skill exactly 1, which is not below 1.
    tie = evaluate(**kwargs).report.serving  # type: ignore[arg-type]
    assert tie.served == "naive" and tie.skill_h1 == pytest.approx(1.0)
    assert "1-day skill 1.000 is not below 1" in tie.reasons
    lenient = evaluate(**kwargs, gate=GateThresholds(max_skill_h1=1.5, max_skill_mean=1.5)).report.serving  # type: ignore[arg-type]
    assert lenient.served == "lstm" and lenient.max_skill_h1 == 1.5
