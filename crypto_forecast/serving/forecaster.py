"""The forecast from the last known day: the network's recursion rebuilt into prices, with
the conformal bands evaluate calibrated, scaled by the latest volatility."""

from __future__ import annotations

import numpy as np
import pandas as pd

from crypto_forecast.data.series import MinMaxScaler, Target, to_prices
from crypto_forecast.errors import ArtifactError
from crypto_forecast.evaluation.backtest import Predictor, recursive_model_forecast
from crypto_forecast.evaluation.intervals import band, recent_volatility
from crypto_forecast.io import paths
from crypto_forecast.io.contracts import EvaluationReport


def band_widths(evaluation: EvaluationReport, horizon: int, close: np.ndarray
                ) -> dict[str, np.ndarray]:
    """Per band name ('80'), the log half-width of the band for h = 1..horizon from the last
    day: evaluate's calibrated quantile, times the recent volatility if it scaled by it."""
    out: dict[str, np.ndarray] = {}
    for b in evaluation.bands:
        if len(b.horizons) < horizon:
            raise ArtifactError(
                f"{paths.EVALUATION} has no {b.name}% band for {horizon} days ahead — rerun "
                "`dvc repro evaluate` (forecast.horizon must not exceed evaluate.horizon)")
        days = b.volatility_days
        unit = float(recent_volatility(close, [close.size - 1], days)[0]) if days else 1.0
        out[b.name] = unit * np.array([np.inf if h.score_quantile is None else h.score_quantile
                                       for h in b.horizons[:horizon]])
    return out


def forecast_frame(model: Predictor, series: pd.DataFrame, scaler: MinMaxScaler, *, target: Target,
                   window: int, horizon: int, widths: dict[str, np.ndarray]) -> pd.DataFrame:
    """The next `horizon` days after the last date: forecast and (lower, upper) per level."""
    close = series["close"].to_numpy(dtype=np.float64)
    last = np.array([close.size - 1])
    scaled = recursive_model_forecast(model, series["scaled"].to_numpy(dtype=np.float64), last,
                                      window, horizon)
    prices = to_prices(scaler.inverse(scaled), close[last], target)[0]
    days = pd.date_range(series.index[-1] + pd.Timedelta(days=1), periods=horizon, freq="D")
    fc = pd.DataFrame({"forecast": prices}, index=days.rename("date"))
    for name, q in widths.items():
        fc[f"lower_{name}"], fc[f"upper_{name}"] = band(prices, q)
    return fc
