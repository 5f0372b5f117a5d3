"""The served forecaster in-process: its request checks, and that it computes what the
pipeline's own backtest engine computes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from crypto_forecast.data.series import MinMaxScaler, model_series, to_prices
from crypto_forecast.evaluation.backtest import feedback_forecast, input_windows
from crypto_forecast.evaluation.intervals import recent_volatility
from crypto_forecast.serving.bundle import BandCalibration, ForecasterSpec, load_bundle, save_bundle
from crypto_forecast.serving.price_forecaster import ForecastInputError, PriceForecaster, check_closes
from tests.helpers import random_network


def spec(kind: str = "lstm", target: str = "log_return", window: int = 12, horizon: int = 5,
         volatility_days: int = 10) -> ForecasterSpec:
    return ForecasterSpec(
        kind=kind, ticker="ETH-USD", window=window, horizon=horizon, target=target,  # type: ignore[arg-type]
        scaler_min=-0.1 if target == "log_return" else 500.0,
        scaler_max=0.1 if target == "log_return" else 3000.0, volatility_days=volatility_days,
        bands=(BandCalibration(level=0.8, score_quantiles=tuple(np.linspace(0.5, 2.0, horizon))),
               BandCalibration(level=0.95, score_quantiles=tuple(np.linspace(1.0, 3.0, horizon)))))


def closes(days: int = 40, seed: int = 1, start: str = "2023-03-01") -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    dates = pd.date_range(start, periods=days, freq="D").strftime("%Y-%m-%d")
    return pd.DataFrame({"date": dates, "close": 1800 * np.exp(np.cumsum(rng.normal(0, 0.03, days)))})


@pytest.mark.parametrize("target", ["price", "log_return"])
def test_forecast_equals_the_feedback_recursion_with_bands(target: str) -> None:
    s, net = spec(target=target), random_network()
    frame = closes()
    out = PriceForecaster(s, net).forecast(frame)
    close = frame["close"].to_numpy()
    scaler = MinMaxScaler(s.scaler_min, s.scaler_max)
    scaled = scaler.transform(model_series(close, s.target))
    last = np.array([close.size - 1])
    raw = feedback_forecast(net.predict, input_windows(scaled, last, s.window), s.horizon)
    expected = to_prices(scaler.inverse(raw), close[last], s.target)[0]
    np.testing.assert_allclose(out["forecast"], expected, rtol=1e-5)
    unit = recent_volatility(close, last, s.volatility_days)[0]
    np.testing.assert_allclose(out["upper_95"], expected * np.exp(np.linspace(1, 3, 5) * unit), rtol=1e-5)
    assert list(out["date"]) == [f"2023-04-{d:02d}" for d in range(10, 15)]
    assert list(out.columns) == ["date", "forecast", "lower_80", "upper_80", "lower_95", "upper_95"]


def test_only_the_last_window_matters() -> None:
    s, net = spec(), random_network()
    frame = closes(60)
    tail = frame.tail(s.min_days).reset_index(drop=True)
    pd.testing.assert_frame_equal(PriceForecaster(s, net).forecast(frame),
                                  PriceForecaster(s, net).forecast(tail))


def test_naive_forecaster_repeats_the_last_close_inside_its_bands() -> None:
    frame = closes()
    out = PriceForecaster(spec(kind="naive", volatility_days=0)).forecast(frame)
    assert (out["forecast"] == frame["close"].iloc[-1]).all()
    assert (out["lower_95"] < out["lower_80"]).all() and (out["upper_80"] < out["upper_95"]).all()


def test_bundle_round_trip(tmp_path: Path) -> None:
    s, net = spec(), random_network()
    save_bundle(tmp_path / "b", s, net)
    s2, net2 = load_bundle(tmp_path / "b")
    assert s2 == s and net2 is not None
    frame = closes()
    pd.testing.assert_frame_equal(PriceForecaster(s, net).forecast(frame),
                                  PriceForecaster(s2, net2).forecast(frame))


def _bad(kind: str) -> pd.DataFrame:
    frame = closes(30)
    if kind == "columns":
        return frame.rename(columns={"close": "price"})
    if kind == "few":
        return frame.head(5)
    if kind == "unsorted":
        return frame.iloc[::-1].reset_index(drop=True)
    if kind == "duplicate":
        return pd.concat([frame, frame.tail(1)], ignore_index=True)
    if kind == "gap":
        return frame.drop(index=15).reset_index(drop=True)
    if kind == "nonpositive":
        return frame.assign(close=frame["close"].where(frame.index != 20, -3.0))
    if kind == "missing":
        return frame.assign(close=frame["close"].where(frame.index != 20, np.nan))
    if kind == "jump":  # inside the days the forecast reads (the last min_days)
        return frame.assign(close=frame["close"].where(frame.index != 28, frame["close"] * 1000))
    if kind == "date":
        return frame.assign(date=frame["date"].where(frame.index != 3, "yesterday"))
    raise AssertionError(kind)


BAD = {"columns": "expected the columns date, close", "few": "too few days: got 5",
       "unsorted": "not in increasing order", "duplicate": "duplicate date 2023-03-30",
       "gap": "gap after 2023-03-15", "nonpositive": "close on 2023-03-21 is -3.0",
       "missing": "close on 2023-03-21 is missing", "date": "could not be read",
       "jump": "close on 2023-03-29 is 1,006× the day before's"}


@pytest.mark.parametrize("kind", sorted(BAD))
def test_each_bad_request_names_its_problem(kind: str) -> None:
    with pytest.raises(ForecastInputError, match=BAD[kind]):
        PriceForecaster(spec(), random_network()).forecast(_bad(kind))


def test_a_jump_before_the_days_it_reads_is_history_not_a_refusal() -> None:
    """download warns about such a jump (on_jump: warn) and every later stage goes on; the
    forecast reads only its last min_days closes, so it is the same as from those alone."""
    s, net = spec(), random_network()
    frame = closes(s.min_days + 20)
    jumped = frame.assign(close=frame["close"].where(frame.index != 5, frame["close"] * 1000))
    pd.testing.assert_frame_equal(PriceForecaster(s, net).forecast(jumped),
                                  PriceForecaster(s, net).forecast(frame.tail(s.min_days)))


# Plausible close columns (enough consecutive days, moves well inside the jump check) and
# anything at all: the property must see both answers often, not only refusals.
PLAUSIBLE = st.lists(st.floats(100, 200, allow_nan=False), min_size=8, max_size=30)
ANYTHING = st.lists(st.one_of(st.floats(allow_nan=True, allow_infinity=True),
                              st.integers(-5, 10**6), st.text(max_size=4), st.none()),
                    min_size=0, max_size=30)


def test_any_close_column_is_forecast_or_refused_cleanly() -> None:
    # Whatever arrives in `close`, the forecaster answers with finite bands or one
    # ForecastInputError, never another exception; each answer is counted, and both must
    # come often enough for the property to prove anything about either.
    seen = {"forecast": 0, "refused": 0}

    @settings(max_examples=80, deadline=None, database=None, derandomize=True)
    @given(st.one_of(PLAUSIBLE, ANYTHING), st.integers(0, 3))
    def answers(values: list[object], shift: int) -> None:
        frame = pd.DataFrame({"date": pd.date_range("2024-01-01", periods=len(values) + shift)
                              .strftime("%Y-%m-%d")[shift:],
                              "close": pd.Series(values, dtype=object)})
        try:
            out = PriceForecaster(spec(window=3, horizon=2, volatility_days=2),
                                  random_network()).forecast(frame)
        except ForecastInputError:
            event("refused")
            seen["refused"] += 1
            return
        event("forecast")
        seen["forecast"] += 1
        assert np.isfinite(out.drop(columns="date").to_numpy(dtype=float)).all()
        assert check_closes(frame, 1)[1].size == len(values)

    answers()
    assert seen["forecast"] >= 10 and seen["refused"] >= 10, seen
