"""Split-conformal prediction intervals, one per horizon and level.

Scores are absolute log ratios `|log(actual / forecast)|` from the validation backtest, so
a band is a percentage around the forecast (prices are positive and their errors scale
with the price level). The band for level L at horizon h is `forecast × exp(±q)`, with
`q` the ⌈(n + 1)·L⌉-th smallest of the n validation scores at h: under exchangeability
it covers a new outcome with probability ≥ L. The test backtest then measures coverage.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike

from stages.errors import DataError
from stages.windows import FloatArray


def log_ratio_scores(actual: ArrayLike, forecast: ArrayLike) -> FloatArray:
    """|log(actual / forecast)|; a non-positive forecast scores +inf (never covered)."""
    a = np.asarray(actual, dtype=np.float64)
    f = np.asarray(forecast, dtype=np.float64)
    safe = np.where(f > 0, f, np.nan)
    scores = np.abs(np.log(a / safe))
    return np.where(np.isnan(scores) & ~np.isnan(a), np.inf, scores)


def conformal_quantile(scores: ArrayLike, level: float) -> float:
    """The split-conformal quantile of `scores` (NaNs dropped) for coverage `level`."""
    s = np.sort(np.asarray(scores, dtype=np.float64)[~np.isnan(np.asarray(scores, dtype=np.float64))])
    n = s.size
    rank = math.ceil((n + 1) * level)
    if rank > n:
        raise DataError(
            f"{n} validation forecasts are too few to calibrate a {level:.0%} band (needs "
            f"{math.ceil(level / (1 - level))}) — raise preprocess.val_fraction or lower "
            "evaluate.interval_levels"
        )
    return float(s[rank - 1])


def band(forecast: ArrayLike, q: ArrayLike) -> tuple[FloatArray, FloatArray]:
    """(lower, upper) = forecast × exp(∓q); `q` broadcasts (e.g. one value per horizon)."""
    f = np.asarray(forecast, dtype=np.float64)
    width = np.asarray(q, dtype=np.float64)
    return f * np.exp(-width), f * np.exp(width)


def coverage(actual: ArrayLike, lower: ArrayLike, upper: ArrayLike) -> float:
    """Share of non-NaN actuals inside [lower, upper]."""
    a = np.asarray(actual, dtype=np.float64)
    lo = np.broadcast_to(np.asarray(lower, dtype=np.float64), a.shape)
    hi = np.broadcast_to(np.asarray(upper, dtype=np.float64), a.shape)
    keep = ~np.isnan(a)
    if not np.any(keep):
        raise ValueError("no actual values to measure coverage on")
    return float(np.mean((a[keep] >= lo[keep]) & (a[keep] <= hi[keep])))


def level_name(level: float) -> str:
    """'80' for 0.8: the key in metrics.json and the suffix of band columns."""
    return str(round(level * 100))
