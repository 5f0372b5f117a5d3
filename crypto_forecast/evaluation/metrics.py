"""Forecast error metrics in price units. Pure functions on arrays.

Each is a few lines of NumPy, checked against hand-computed values and (RMSE, MAE, MAPE)
against scikit-learn in tests/unit/test_metrics.py. scikit-learn itself is not imported
here: its import alone (~1.5 s) cost evaluate more than all of its arithmetic.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike

# The keys of `score`, in the order reports show them.
SCORE_KEYS = ("rmse", "mae", "mape", "smape", "mase", "direction")


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
    """Mean absolute percentage error, in percent (prices are positive; like scikit-learn,
    a zero actual divides by machine epsilon instead)."""
    a, p = _pair(actual, predicted)
    return float(np.mean(np.abs(a - p) / np.maximum(np.abs(a), np.finfo(np.float64).eps)) * 100.0)


def smape(actual: ArrayLike, predicted: ArrayLike) -> float:
    """Symmetric MAPE in percent: mean of 2|a - p| / (|a| + |p|), 0..200."""
    a, p = _pair(actual, predicted)
    denom = np.abs(a) + np.abs(p)
    ratio = np.divide(2.0 * np.abs(a - p), denom, out=np.zeros_like(a), where=denom > 0)
    return float(np.mean(ratio) * 100.0)


def naive_scale(train: ArrayLike) -> float:
    """MASE's denominator: the in-sample MAE of the one-step naive forecast on `train`."""
    values = np.asarray(train, dtype=np.float64)
    if values.size < 2:
        raise ValueError("need at least two training values for the naive scale")
    scale = float(np.mean(np.abs(np.diff(values))))
    if not scale > 0:
        raise ValueError("training values never change; MASE is undefined")
    return scale


def safe_ratio(numerator: float, denominator: float) -> float:
    """`numerator / denominator`, or NaN where that is undefined (a zero or non-finite
    denominator: constant prices give persistence a zero error and MASE a zero scale)."""
    if not (math.isfinite(denominator) and denominator != 0 and math.isfinite(numerator)):
        return math.nan
    return numerator / denominator


def mase(actual: ArrayLike, predicted: ArrayLike, scale: float) -> float:
    """Mean absolute scaled error: MAE / `scale` (below 1 beats in-sample one-step naive);
    NaN when `scale` is zero."""
    return safe_ratio(mae(actual, predicted), scale)


def directional_accuracy(actual: ArrayLike, predicted: ArrayLike, reference: ArrayLike) -> float:
    """Share of forecasts whose move from `reference` (the origin's close) has the sign of
    the actual move. A forecast of no move never counts as right; NaN when every forecast
    is flat (persistence has no direction to score)."""
    a, p = _pair(actual, predicted)
    r = np.broadcast_to(np.asarray(reference, dtype=np.float64), a.shape)
    moved = np.sign(p - r)
    if not np.any(moved):
        return math.nan
    return float(np.mean(moved == np.sign(a - r)))


def summary(actual: ArrayLike, predicted: ArrayLike) -> dict[str, float]:
    return {"rmse": rmse(actual, predicted), "mae": mae(actual, predicted),
            "mape": mape(actual, predicted)}


def score(actual: ArrayLike, predicted: ArrayLike, reference: ArrayLike, scale: float
          ) -> dict[str, float]:
    """Every metric of SCORE_KEYS for one predictor, skipping pairs whose actual is NaN
    (targets beyond the end of the split)."""
    a, p = _pair(actual, predicted)
    r = np.broadcast_to(np.asarray(reference, dtype=np.float64), a.shape)
    keep = ~np.isnan(a)
    a, p, r = a[keep], p[keep], r[keep]
    return {"rmse": rmse(a, p), "mae": mae(a, p), "mape": mape(a, p), "smape": smape(a, p),
            "mase": mase(a, p, scale), "direction": directional_accuracy(a, p, r)}


def pinball_loss(actual: ArrayLike, quantile_forecast: ArrayLike, tau: float) -> float:
    """Mean pinball (quantile) loss of a forecast of the `tau` quantile: under-forecasts
    cost `tau` per unit, over-forecasts `1 - tau`. Lower is better; 0 only if exact."""
    a, q = _pair(actual, quantile_forecast)
    if not 0 < tau < 1:
        raise ValueError(f"tau must be in (0, 1), got {tau}")
    diff = a - q
    return float(np.mean(np.maximum(tau * diff, (tau - 1) * diff)))


def interval_score(actual: ArrayLike, lower: ArrayLike, upper: ArrayLike, level: float) -> float:
    """Mean interval (Winkler) score of central `level` bands (Gneiting & Raftery 2007): the
    band's width, plus 2 / (1 - level) times how far an outcome falls outside it. Rewards
    narrow bands that still hold the outcomes; lower is better, in price units."""
    a, lo = _pair(actual, lower)
    _, hi = _pair(actual, upper)
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    alpha = 1.0 - level
    below = np.maximum(lo - a, 0.0)
    above = np.maximum(a - hi, 0.0)
    return float(np.mean((hi - lo) + (2.0 / alpha) * (below + above)))
