"""Forecast error metrics in price units. Pure functions on arrays."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike


def _pair(actual: ArrayLike, predicted: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    a = np.asarray(actual, dtype=np.float64)
    p = np.asarray(predicted, dtype=np.float64)
    if a.shape != p.shape or a.size == 0:
        raise ValueError(f"actual {a.shape} and predicted {p.shape} must be equal, non-empty")
    return a, p


def rmse(actual: ArrayLike, predicted: ArrayLike) -> float:
    a, p = _pair(actual, predicted)
    return float(np.sqrt(np.mean((a - p) ** 2)))


def mae(actual: ArrayLike, predicted: ArrayLike) -> float:
    a, p = _pair(actual, predicted)
    return float(np.mean(np.abs(a - p)))


def mape(actual: ArrayLike, predicted: ArrayLike) -> float:
    """Mean absolute percentage error, in percent (prices are positive)."""
    a, p = _pair(actual, predicted)
    return float(np.mean(np.abs((a - p) / a)) * 100.0)


def summary(actual: ArrayLike, predicted: ArrayLike) -> dict[str, float]:
    return {"rmse": rmse(actual, predicted), "mae": mae(actual, predicted),
            "mape": mape(actual, predicted)}
