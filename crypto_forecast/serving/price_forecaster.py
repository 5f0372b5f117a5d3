"""From a frame of recent daily closes to the next days' prices with their bands.

One class serves the pipeline's own `forecast` stage, the registry's MLflow model and
`make serve`: what is served is what the report shows. Requests are checked first; each
problem is a `ForecastInputError` whose message names it and what to send instead."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from crypto_forecast.data.prices import MAX_CLOSE, MIN_CLOSE
from crypto_forecast.data.series import MinMaxScaler, model_series, to_prices
from crypto_forecast.evaluation.intervals import band, recent_volatility
from crypto_forecast.model.numpy_net import Network, shared_prefix_forecast
from crypto_forecast.serving.bundle import ForecasterSpec

INPUT_COLUMNS = ("date", "close")
# A day-to-day move beyond this factor is a data error (a misplaced decimal), not a market:
# the same bound as `download.max_daily_move`'s default.
MAX_DAILY_MOVE = 10.0


class ForecastInputError(ValueError):
    """The closes sent cannot be forecast from; the message says why and what to send."""


def check_closes(frame: pd.DataFrame, min_days: int) -> tuple[pd.DatetimeIndex, np.ndarray]:
    """The request's dates and closes, or a `ForecastInputError` naming the first problem:
    wrong columns, too few days, unparseable/unsorted/duplicate dates, gaps, or missing,
    non-finite or non-positive closes."""
    columns = [str(c) for c in frame.columns]
    if sorted(columns) != sorted(INPUT_COLUMNS):
        raise ForecastInputError(
            f"expected the columns date, close; got {', '.join(columns) or 'none'} — send one row "
            "per day with a date (YYYY-MM-DD) and that day's close")
    if len(frame) < min_days:
        raise ForecastInputError(
            f"too few days: got {len(frame)}, this forecaster needs at least {min_days} "
            "consecutive daily closes ending on the last known day")
    try:
        dates = pd.DatetimeIndex(pd.to_datetime(frame["date"], format="ISO8601"))
    except (ValueError, TypeError) as exc:
        raise ForecastInputError(f"a date could not be read ({exc}) — use YYYY-MM-DD") from None
    if dates.tz is not None:
        dates = dates.tz_localize(None)
    if dates.hasnans:
        raise ForecastInputError("a date is missing — every row needs a date (YYYY-MM-DD)")
    if dates.has_duplicates:
        dup = dates[dates.duplicated()][0]
        raise ForecastInputError(f"duplicate date {dup.date()} — send one close per day")
    if not dates.is_monotonic_increasing:
        raise ForecastInputError("dates are not in increasing order — sort the rows by date")
    if (dates != dates.normalize()).any():
        raise ForecastInputError("dates carry a time of day — send daily dates (YYYY-MM-DD)")
    steps = np.diff(dates.to_numpy()).astype("timedelta64[D]").astype(np.int64)
    if steps.size and (steps != 1).any():
        at = int(np.flatnonzero(steps != 1)[0])
        raise ForecastInputError(
            f"dates have a gap after {dates[at].date()} (next is {dates[at + 1].date()}) — send "
            "consecutive daily closes")
    close = pd.to_numeric(frame["close"], errors="coerce").to_numpy(dtype=np.float64)
    bad = ~np.isfinite(close) | (close <= 0)
    if bad.any():
        at = int(np.flatnonzero(bad)[0])
        raw = frame["close"].iloc[at]
        shown = "missing" if raw is None or (isinstance(raw, float) and np.isnan(raw)) else str(raw)
        raise ForecastInputError(
            f"the close on {dates[at].date()} is {shown} — every close must be a positive number")
    extreme = (close < MIN_CLOSE) | (close > MAX_CLOSE)
    if extreme.any():
        at = int(np.flatnonzero(extreme)[0])
        raise ForecastInputError(
            f"the close on {dates[at].date()} is {close[at]:g}, outside {MIN_CLOSE:g} .. {MAX_CLOSE:g} "
            "— check the units of the closes")
    # Only the days the forecast reads (the last `min_days`): a jump further back is history
    # download already warned about (download.on_jump), and no longer enters the forecast.
    first_used = max(close.size - min_days, 0)
    moves = close[first_used + 1:] / close[first_used:-1]
    jumps = (moves > MAX_DAILY_MOVE) | (moves < 1 / MAX_DAILY_MOVE)
    if jumps.any():
        at = first_used + int(np.flatnonzero(jumps)[0]) + 1
        raise ForecastInputError(
            f"the close on {dates[at].date()} is {_times(close[at] / close[at - 1])} the day "
            "before's — check the data (a misplaced decimal?)")
    return dates, close


def _times(ratio: float) -> str:
    """'1,010×' or '0.0781×': readable at both ends."""
    return f"{ratio:,.0f}×" if ratio >= 100 else f"{ratio:.3g}×"


@dataclass(frozen=True)
class PriceForecaster:
    """A calibrated forecaster: the LSTM's recursion (or persistence) plus conformal bands."""

    spec: ForecasterSpec
    network: Network | None = None

    def __post_init__(self) -> None:
        if (self.spec.kind == "lstm") != (self.network is not None):
            raise ValueError("an lstm forecaster needs its network; a naive one has none")

    @property
    def columns(self) -> list[str]:
        """The output columns: date, forecast, then lower/upper per band."""
        return ["date", "forecast", *(f"{side}_{b.name}" for b in self.spec.bands
                                      for side in ("lower", "upper"))]

    def point_forecast(self, close: np.ndarray) -> np.ndarray:
        """The next `horizon` closes after the last one, in prices."""
        spec = self.spec
        if self.network is None:
            return np.full(spec.horizon, close[-1], dtype=np.float64)
        scaler = MinMaxScaler(spec.scaler_min, spec.scaler_max)
        scaled = scaler.transform(model_series(close, spec.target))
        last = np.array([close.size - 1])
        raw = shared_prefix_forecast(self.network, scaled, last, spec.window, spec.horizon)
        return np.asarray(to_prices(scaler.inverse(raw), close[last], spec.target)[0], dtype=np.float64)

    def forecast(self, frame: pd.DataFrame) -> pd.DataFrame:
        """One row per day ahead: date (YYYY-MM-DD), forecast and each band's bounds."""
        dates, close = check_closes(frame, self.spec.min_days)
        prices = self.point_forecast(close)
        days = self.spec.volatility_days
        unit = float(recent_volatility(close, [close.size - 1], days)[0]) if days else 1.0
        ahead = pd.date_range(dates[-1] + pd.Timedelta(days=1), periods=self.spec.horizon, freq="D")
        out = {"date": ahead.strftime("%Y-%m-%d"), "forecast": prices}
        for b in self.spec.bands:
            q = np.array([np.inf if v is None else v for v in b.score_quantiles[: self.spec.horizon]])
            lower, upper = band(prices, q * unit)
            out[f"lower_{b.name}"], out[f"upper_{b.name}"] = lower, upper
        return pd.DataFrame(out, columns=self.columns)
