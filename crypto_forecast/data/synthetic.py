"""A seeded price series per ticker for offline use. Never presented as real data."""

from __future__ import annotations

import datetime as dt
import zlib

import numpy as np
import pandas as pd

# Rough waypoints of ETH-USD's 2018-2023 path (crash, recovery, 2021 bull run, 2022
# bear market), so the offline sample has realistic regimes and price levels. Prices
# are noise around a log-linear path through them; outside the range the path is flat.
_WAYPOINTS = (
    ("2018-01-01", 770.0), ("2018-12-15", 85.0), ("2019-06-25", 310.0), ("2020-03-13", 110.0),
    ("2021-05-12", 4200.0), ("2021-07-20", 1800.0), ("2021-11-09", 4800.0),
    ("2022-06-18", 1000.0), ("2022-11-09", 1100.0), ("2023-12-31", 2300.0),
)
_DAILY_VOL = 0.04
_PERSISTENCE = 0.97  # day-to-day persistence of the deviation from the path
_SEED = 20180101

# Each coin's price level relative to ETH's (closes at the end of 2023, rounded), so an
# offline BTC-USD sample trades near 40,000 and SOL-USD near 100. Symbols not listed here
# keep ETH's level; every symbol gets its own seed, so no two coins move alike.
_LEVEL_VS_ETH = {
    "ETH-USD": 1.0, "BTC-USD": 18.0, "SOL-USD": 0.045, "BNB-USD": 0.14, "XRP-USD": 0.00027,
    "ADA-USD": 0.00026, "DOGE-USD": 0.000040, "AVAX-USD": 0.017, "DOT-USD": 0.0036,
    "LTC-USD": 0.032, "LINK-USD": 0.0066, "MATIC-USD": 0.00042,
}


def synthetic_level(ticker: str) -> float:
    """The offline sample's price level for `ticker`, as a multiple of ETH's."""
    return _LEVEL_VS_ETH.get(ticker, 1.0)


def synthetic_seed(ticker: str) -> int:
    """ETH-USD keeps the seed the pipeline always had (so its numbers do not change); every
    other symbol a stable seed of its own (crc32, the same in every process)."""
    return _SEED if ticker == "ETH-USD" else _SEED + zlib.crc32(ticker.encode("utf-8"))


def synthetic_prices(start: dt.date, end: dt.date, ticker: str = "ETH-USD",
                     seed: int | None = None) -> pd.DataFrame:
    """Daily closes of `ticker`'s sample from `start` (inclusive) to `end` (exclusive), like
    yfinance's range."""
    days = pd.date_range(start, end, freq="D", inclusive="left", name="Date")
    origin = pd.Timestamp(_WAYPOINTS[0][0])
    anchor_days = (pd.DatetimeIndex([d for d, _ in _WAYPOINTS]) - origin).days.to_numpy()
    anchor_logs = np.log([p * synthetic_level(ticker) for _, p in _WAYPOINTS])
    # Day offsets from the first waypoint: they place the path and index the noise, so a
    # sub-range gives the same prices on the days it shares with a longer one.
    offsets = (days - origin).days.to_numpy()
    trend = np.interp(offsets, anchor_days, anchor_logs)
    lo = min(0, int(offsets.min())) if len(days) else 0
    hi = int(offsets.max()) + 1 if len(days) else 0
    rng = np.random.default_rng(synthetic_seed(ticker) if seed is None else seed)
    shocks = rng.standard_t(df=4, size=hi - lo) * _DAILY_VOL / np.sqrt(2.0)
    deviation = np.empty_like(shocks)
    level = 0.0
    for i, shock in enumerate(shocks):
        level = _PERSISTENCE * level + shock
        deviation[i] = level
    close = np.exp(trend + deviation[offsets - lo])
    return pd.DataFrame({"Close": close}, index=days)
