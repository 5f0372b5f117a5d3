"""Split-conformal prediction intervals, one per horizon and level.

Scores are absolute log ratios `|log(actual / forecast)|` from the validation backtest, so
a band is a percentage around the forecast (prices are positive and their errors scale
with the price level). The band for level L at horizon h is `forecast × exp(±q·s)`, with
`q` the ⌈(n + 1)·L⌉-th smallest of the n validation scores at h: under exchangeability
it covers a new outcome with probability ≥ L. The test backtest then measures coverage.

`s` is 1 (fixed bands), or, with volatility scaling, the standard deviation of the daily
log returns over the days up to the origin: scores are divided by it, so the band widens
in turbulent weeks and narrows in calm ones (normalised conformal prediction). It uses
only prices known at the origin.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike

from crypto_forecast.data.series import FloatArray
from crypto_forecast.errors import DataError


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


def recent_volatility(close: ArrayLike, origins: ArrayLike, days: int) -> FloatArray:
    """Std of the last `days` daily log returns up to each origin (inclusive)."""
    values = np.asarray(close, dtype=np.float64)
    idx = np.asarray(origins, dtype=np.int64)
    if days < 2 or (idx.size and idx.min() < days):
        raise DataError(f"evaluate.volatility_days={days} needs that many days before every "
                        "backtest origin — lower evaluate.volatility_days")
    returns = np.diff(np.log(values))  # returns[i] is the move into day i + 1
    windows = np.lib.stride_tricks.sliding_window_view(returns, days)
    sigma = windows[idx - days].std(axis=1, ddof=1)
    return np.asarray(np.maximum(sigma, 1e-12), dtype=np.float64)


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
