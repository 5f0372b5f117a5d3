"""The baselines every model forecast is scored against, on the same origins and horizons.

Each takes the daily closes, the origin indices (the last known day of each forecast) and
the horizon, and returns forecasts of shape (n_origins, horizon) in price units, using
only `close[:origin + 1]` for each origin.
"""

from __future__ import annotations

import numpy as np

from crypto_forecast.data.series import FloatArray

# Names as they appear in metrics.json, CSV columns and reports.
BASELINES = ("persistence", "drift", "moving_average")


def _origins(close: FloatArray, origins: np.ndarray) -> tuple[FloatArray, np.ndarray]:
    values = np.asarray(close, dtype=np.float64)
    idx = np.asarray(origins, dtype=np.int64)
    if idx.size and (idx.min() < 0 or idx.max() >= values.size):
        raise ValueError("origins must index into close")
    return values, idx


def persistence(close: FloatArray, origins: np.ndarray, horizon: int) -> FloatArray:
    """Every future day equals the origin's close."""
    values, idx = _origins(close, origins)
    return np.repeat(values[idx][:, np.newaxis], horizon, axis=1)


def train_drift(train_close: FloatArray) -> float:
    """Mean daily change over the training part: (last - first) / (days - 1)."""
    values = np.asarray(train_close, dtype=np.float64)
    if values.size < 2:
        raise ValueError("need at least two training closes for the drift")
    return float((values[-1] - values[0]) / (values.size - 1))


def drift(close: FloatArray, origins: np.ndarray, horizon: int, slope: float) -> FloatArray:
    """The origin's close plus `h` times the training part's mean daily change."""
    values, idx = _origins(close, origins)
    steps = np.arange(1, horizon + 1, dtype=np.float64)
    return np.asarray(values[idx][:, np.newaxis] + slope * steps[np.newaxis, :], dtype=np.float64)


def moving_average(close: FloatArray, origins: np.ndarray, horizon: int, k: int) -> FloatArray:
    """Every future day equals the mean of the last `k` closes up to the origin."""
    values, idx = _origins(close, origins)
    if k < 1 or (idx.size and idx.min() < k - 1):
        raise ValueError(f"moving average over {k} days needs {k} closes up to every origin")
    means = np.lib.stride_tricks.sliding_window_view(values, k)[idx - k + 1].mean(axis=1)
    return np.repeat(means[:, np.newaxis], horizon, axis=1)
