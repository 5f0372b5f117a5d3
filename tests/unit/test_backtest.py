"""The rolling-origin recursive backtest: batching, price rebuilding, and no lookahead."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from crypto_forecast.data.series import MinMaxScaler, model_series, split_and_scale, to_prices
from crypto_forecast.evaluation.backtest import (
    actual_matrix,
    feedback_forecast,
    input_windows,
    model_forecasts,
    split_origins,
)


def _window_mean(x: np.ndarray) -> np.ndarray:
    """A stand-in network that uses every input of its window, nonlinearly."""
    w = x[..., 0].astype(np.float64)
    return (0.6 * w[:, -1] + 0.4 * w.mean(axis=1) + 0.01 * np.tanh(w.sum(axis=1))).astype(np.float32)


def test_recursive_forecast_feeds_back_its_own_predictions_in_one_call_per_step() -> None:
    calls: list[int] = []

    def next_is_sum_of_last_two(x: np.ndarray) -> np.ndarray:
        calls.append(x.shape[0])
        return (x[:, -1, 0] + x[:, -2, 0]).astype(np.float32)

    out = feedback_forecast(next_is_sum_of_last_two, np.array([[1.0, 1.0, 2.0], [0.0, 1.0, 1.0]]), 4)
    np.testing.assert_array_equal(out, [[3, 5, 8, 13], [2, 3, 5, 8]])
    assert calls == [2, 2, 2, 2]  # one batched call per step over all origins


def test_input_windows_end_at_the_origin() -> None:
    x = input_windows(np.arange(10.0), np.array([3, 9]), window=4)
    np.testing.assert_array_equal(x, [[0, 1, 2, 3], [6, 7, 8, 9]])
    with pytest.raises(ValueError, match="full window"):
        input_windows(np.arange(10.0), np.array([2]), window=4)


def test_actual_matrix_stops_at_the_split_end() -> None:
    a = actual_matrix(np.arange(10.0), np.array([6, 7]), 3, stop=9)
    np.testing.assert_array_equal(a, [[7, 8, np.nan], [8, np.nan, np.nan]])


def test_split_origins_start_the_day_before_the_split() -> None:
    labels = np.array(["train"] * 5 + ["val"] * 3 + ["test"] * 4)
    origins, stop = split_origins(labels, "val")
    np.testing.assert_array_equal(origins, [4, 5, 6])
    assert stop == 8
    origins, stop = split_origins(labels, "test")
    np.testing.assert_array_equal(origins, [7, 8, 9, 10])
    assert stop == 12


def test_log_returns_rebuild_prices_from_the_origin_close() -> None:
    close = np.array([100.0, 110.0, 99.0, 120.0])
    r = model_series(close, "log_return")
    assert np.isnan(r[0])
    # the true returns after origin 0, rebuilt, give back the true prices
    np.testing.assert_allclose(to_prices(r[np.newaxis, 1:], close[:1], "log_return"), [close[1:]])
    np.testing.assert_array_equal(to_prices(np.array([[5.0]]), np.array([1.0]), "price"), [[5.0]])


def _series(n: int = 160, seed: int = 3) -> pd.Series:
    rng = np.random.default_rng(seed)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.03, n)))
    return pd.Series(close, index=pd.date_range("2021-01-01", periods=n, freq="D"))


@pytest.mark.parametrize("target", ["price", "log_return"])
def test_no_lookahead_corrupting_the_future_leaves_forecasts_unchanged(target: str) -> None:
    window, horizon = 8, 5
    close = _series()
    frame, scaler, _ = split_and_scale(close, window, 0.15, 0.2, target)  # type: ignore[arg-type]
    origins, _ = split_origins(frame["split"].to_numpy(), "test")
    reference = model_forecasts(_window_mean, frame["scaled"].to_numpy(), frame["close"].to_numpy(),
                                origins, window, horizon, scaler, target)  # type: ignore[arg-type]
    for k in (0, len(origins) // 2, len(origins) - 2):
        origin = int(origins[k])
        bad = close.copy()
        bad.iloc[origin + 1:] = bad.iloc[origin + 1:] * 7.0 + 1000.0  # every later price
        frame2, scaler2, _ = split_and_scale(bad, window, 0.15, 0.2, target)  # type: ignore[arg-type]
        assert scaler2 == scaler  # fitted on the training days only
        got = model_forecasts(_window_mean, frame2["scaled"].to_numpy(), frame2["close"].to_numpy(),
                              origins, window, horizon, scaler2, target)  # type: ignore[arg-type]
        np.testing.assert_array_equal(got[: k + 1], reference[: k + 1])  # up to this origin: same
        assert not np.allclose(got[k + 1 :], reference[k + 1 :])  # later origins do see it


def test_persistence_network_reproduces_the_persistence_baseline() -> None:
    close = _series()
    frame, scaler, _ = split_and_scale(close, 8, 0.15, 0.2, "price")
    origins, _ = split_origins(frame["split"].to_numpy(), "test")
    fc = model_forecasts(lambda x: x[:, -1, 0], frame["scaled"].to_numpy(),
                         frame["close"].to_numpy(), origins, 8, 4, scaler, "price")
    np.testing.assert_allclose(fc, np.repeat(close.to_numpy()[origins][:, None], 4, axis=1), rtol=1e-6)
    # a zero-return network is persistence for the log-return target
    frame, scaler, _ = split_and_scale(close, 8, 0.15, 0.2, "log_return")
    zero = np.float32(scaler.transform(np.array([0.0]))[0])
    fc = model_forecasts(lambda x: np.full(x.shape[0], zero), frame["scaled"].to_numpy(),
                         frame["close"].to_numpy(), origins, 8, 4, scaler, "log_return")
    np.testing.assert_allclose(fc, np.repeat(close.to_numpy()[origins][:, None], 4, axis=1), rtol=1e-6)
    assert isinstance(scaler, MinMaxScaler)
