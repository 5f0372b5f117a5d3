"""The evaluate stage's pure part: backtest, metrics.json's shape, the plot tables."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from crypto_forecast.data.series import split_and_scale
from crypto_forecast.errors import DataError
from crypto_forecast.evaluation.scoring import evaluate, mlflow_metrics


def _frame(target: str = "price", n: int = 300):  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(11)
    close = pd.Series(1000 * np.exp(np.cumsum(rng.normal(0, 0.02, n))),
                      index=pd.date_range("2020-01-01", periods=n, freq="D"))
    return split_and_scale(close, 10, 0.2, 0.2, target)  # type: ignore[arg-type]


def _last_value(x: np.ndarray) -> np.ndarray:
    return x[:, -1, 0]


def test_a_persistence_network_scores_skill_one_everywhere() -> None:
    frame, scaler, _ = _frame()
    result = evaluate(_last_value, frame, scaler, target="price", window=10, horizon=4,
                      ma_window=5, levels=(0.8, 0.95))
    m = result.metrics
    bt = m["backtest"]
    assert bt["horizon"] == 4 and bt["origins"] == (frame["split"] == "test").sum()
    for key in ("h1", "h2", "h3", "h4", "all"):
        assert bt[key]["skill_rmse"] == pytest.approx(1.0)
        assert set(bt[key]) == {"model", "persistence", "drift", "moving_average", "skill_rmse"}
        assert bt[key]["persistence"]["direction"] is None  # flat: no direction, JSON null
    assert m["skill_rmse_vs_persistence"] == pytest.approx(1.0)
    assert m["test"]["model"]["rmse"] == pytest.approx(bt["h1"]["model"]["rmse"])
    assert m["test_period"]["days"] == bt["origins"]
    for name, nominal in (("80", 0.8), ("95", 0.95)):
        entry = m["intervals"][name]
        assert entry["nominal"] == nominal and 0 <= entry["coverage"] <= 1
        widths = [entry[f"h{h}"]["score_quantile"] for h in range(1, 5)]
        assert widths[-1] > widths[0]  # random-walk errors grow with the horizon
    assert m["intervals"]["95"]["h1"]["score_quantile"] > m["intervals"]["80"]["h1"]["score_quantile"]
    json.dumps(m, allow_nan=False)  # valid JSON: no NaN anywhere

    assert list(result.by_horizon["horizon"]) == [1, 2, 3, 4]
    assert {"model_rmse", "persistence_mase", "coverage_80", "nominal_95"} <= set(result.by_horizon)
    assert list(result.one_step.columns) == ["actual", "model", "persistence", "drift",
                                             "moving_average"]
    view = result.horizon_view
    assert len(view) == bt["origins"] - 3
    np.testing.assert_allclose(view["model_h_days_ahead"], view["persistence_h_days_ahead"])
    assert (view["lower_95"] <= view["lower_80"]).all() and (view["upper_80"] <= view["upper_95"]).all()

    flat = mlflow_metrics({**m, "param_count": 1})
    assert flat["backtest_skill_rmse_h4"] == pytest.approx(1.0)
    assert "interval_80_coverage_h2" in flat and "test_model_rmse" in flat
    assert "backtest_persistence_direction_h1" not in flat


def test_log_return_target_runs_the_same_way() -> None:
    frame, scaler, _ = _frame("log_return")
    zero = np.float32(scaler.transform(np.array([0.0]))[0])
    result = evaluate(lambda x: np.full(x.shape[0], zero), frame, scaler, target="log_return",
                      window=10, horizon=3, ma_window=5, levels=(0.8,))
    assert result.metrics["backtest"]["h3"]["skill_rmse"] == pytest.approx(1.0)
    assert result.metrics["target"] == "log_return"


def test_a_horizon_longer_than_the_split_is_refused() -> None:
    frame, scaler, _ = _frame(n=120)
    with pytest.raises(DataError, match=r"lower evaluate\.horizon"):
        evaluate(_last_value, frame, scaler, target="price", window=10, horizon=40, ma_window=5,
                 levels=(0.8,))


def test_volatility_scaled_bands_are_recorded_and_rebuilt_by_forecast() -> None:
    from crypto_forecast.serving.forecaster import band_widths

    frame, scaler, _ = _frame()
    result = evaluate(_last_value, frame, scaler, target="price", window=10, horizon=3, ma_window=5,
                      levels=(0.8,), volatility_days=10)
    intervals = result.metrics["intervals"]
    assert intervals["volatility_days"] == 10 and 0 < intervals["80"]["coverage"] <= 1
    close = frame["close"].to_numpy()
    widths = band_widths(result.metrics, 3, close)["80"]
    sigma = np.std(np.diff(np.log(close))[-10:], ddof=1)
    np.testing.assert_allclose(widths, sigma * np.array(
        [intervals["80"][f"h{h}"]["score_quantile"] for h in (1, 2, 3)]))
