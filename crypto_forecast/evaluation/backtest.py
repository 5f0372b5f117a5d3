"""Rolling-origin, recursive multi-day forecasts: the model's and the baselines', in price
units, from every origin of a split. No TensorFlow here: the model comes in as the trained
network read by stages.network (the stages' path), or as any `predict` callable (Keras's,
in tests and the benchmark, or a plain function).

An origin `o` is the last known day. Its forecast for day `o + h` (h = 1..horizon) is
made recursively: the network sees the `window` model values up to `o`, predicts `o + 1`,
then sees its own prediction as the newest input, and so on. Only `close[:o + 1]` is used.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from crypto_forecast.data.series import Float32Array, FloatArray, MinMaxScaler, Target, first_valid, to_prices
from crypto_forecast.errors import DataError
from crypto_forecast.evaluation import baselines
from crypto_forecast.model.numpy_net import Network, shared_prefix_forecast

# The columns of the backtest table that hold forecasts, the network first.
PREDICTORS = ("lstm", *baselines.BASELINES)

# One batched forward pass: (n, window, 1) float32 in, n predictions (scaled) out.
Predict = Callable[[Float32Array], np.ndarray]
# What the stages forecast with: the NumPy network (shared-prefix recursion), or a callable
# (one full forward pass per step).
Predictor = Network | Predict


def feedback_forecast(predict: Predict, windows: Float32Array, horizon: int) -> FloatArray:
    """Predict `horizon` steps for every row of `windows` (n_origins, window), feeding each
    prediction back as the newest input: one `predict` call per step over all origins.

    Returns (n_origins, horizon) in model units (scaled).
    """
    win = np.asarray(windows, dtype=np.float32)
    if win.ndim == 1:
        win = win[np.newaxis, :]
    n, width = win.shape
    buf = np.empty((n, width + horizon), dtype=np.float32)
    buf[:, :width] = win
    for h in range(horizon):
        step = np.asarray(predict(buf[:, h : h + width, np.newaxis]), dtype=np.float32).reshape(-1)
        if step.shape != (n,):
            raise ValueError(f"predict returned {step.shape}, expected ({n},)")
        buf[:, width + h] = step
    return buf[:, width:].astype(np.float64)


def input_windows(scaled: FloatArray, origins: np.ndarray, window: int) -> Float32Array:
    """The model's inputs for each origin: `scaled[o - window + 1 : o + 1]`."""
    values = np.asarray(scaled, dtype=np.float64)
    idx = np.asarray(origins, dtype=np.int64)
    if idx.size and idx.min() < window - 1:
        raise ValueError("every origin needs a full window of history")
    view = np.lib.stride_tricks.sliding_window_view(values, window)
    out = view[idx - window + 1].astype(np.float32)
    if not np.all(np.isfinite(out)):
        raise DataError("a backtest window holds missing values — rerun `dvc repro -f preprocess`")
    return out


def actual_matrix(close: FloatArray, origins: np.ndarray, horizon: int, stop: int) -> FloatArray:
    """`close[o + h]` for each origin and h = 1..horizon; NaN where `o + h` is at or past
    `stop` (beyond the split being scored)."""
    values = np.asarray(close, dtype=np.float64)
    target = np.asarray(origins, dtype=np.int64)[:, np.newaxis] + np.arange(1, horizon + 1)
    inside = target < min(stop, values.size)
    out = np.full(target.shape, np.nan)
    out[inside] = values[target[inside]]
    return out


def recursive_model_forecast(model: Predictor, scaled: FloatArray, origins: np.ndarray, window: int,
                             horizon: int) -> FloatArray:
    """(n_origins, horizon) recursive forecasts in model units, from `scaled[:o + 1]` each."""
    if isinstance(model, Network):
        return shared_prefix_forecast(model, scaled, origins, window, horizon)
    return feedback_forecast(model, input_windows(scaled, origins, window), horizon)


def model_forecasts(model: Predictor, scaled: FloatArray, close: FloatArray, origins: np.ndarray,
                    window: int, horizon: int, scaler: MinMaxScaler, target: Target) -> FloatArray:
    """The model's recursive forecasts from every origin, rebuilt as prices."""
    if np.asarray(origins).size and int(np.min(origins)) - window + 1 < first_valid(target):
        raise ValueError("an origin's window reaches before the first valid model value")
    raw = recursive_model_forecast(model, scaled, origins, window, horizon)
    last = np.asarray(close, dtype=np.float64)[np.asarray(origins, dtype=np.int64)]
    return to_prices(scaler.inverse(raw), last, target)


def split_origins(labels: np.ndarray, part: str) -> tuple[np.ndarray, int]:
    """Origins whose 1-day target lies in `part` (from the day before its first day to the
    day before its last), and the end (exclusive) of `part`."""
    idx = np.flatnonzero(labels == part)
    if idx.size == 0:
        raise DataError(f"the series has no {part} days — rerun `dvc repro -f preprocess`")
    return np.arange(idx[0] - 1, idx[-1]), int(idx[-1]) + 1


def backtest_table(*, lstm: FloatArray, close: FloatArray, dates: pd.DatetimeIndex,
                   origins: np.ndarray, stop: int, drift_slope: float, ma_window: int,
                   split: str) -> pd.DataFrame:
    """The long backtest table of one split: a row per (origin, horizon) whose target lies
    inside the split, with the actual price and every predictor's forecast (`PREDICTORS`).

    `lstm` holds the network's forecasts in prices, (n_origins, horizon). Rows are ordered
    by origin, then horizon.
    """
    model_fc = np.asarray(lstm, dtype=np.float64)
    idx = np.asarray(origins, dtype=np.int64)
    horizon = model_fc.shape[1]
    forecasts = {
        "lstm": model_fc,
        "persistence": baselines.persistence(close, idx, horizon),
        "drift": baselines.drift(close, idx, horizon, drift_slope),
        "moving_average": baselines.moving_average(close, idx, horizon, ma_window),
    }
    actual = actual_matrix(close, idx, horizon, stop)
    inside = ~np.isnan(actual).reshape(-1)
    rows = np.repeat(idx, horizon)[inside]
    steps = np.tile(np.arange(1, horizon + 1), idx.size)[inside]
    table = pd.DataFrame({
        "origin": dates[rows],
        "horizon": steps,
        "date": dates[rows + steps],
        "actual": actual.reshape(-1)[inside],
        **{name: fc.reshape(-1)[inside] for name, fc in forecasts.items()},
    })
    table["split"] = split
    return table
