"""Where the prices come from: Yahoo, a saved CSV or the synthetic sample, chosen by
`download.source` (`auto` falls back to synthetic only when Yahoo cannot be reached)."""

from __future__ import annotations

import importlib.metadata
import logging
import os
import platform
from collections.abc import Callable
from typing import TYPE_CHECKING

from crypto_forecast.data.yahoo import fetch_yahoo
from crypto_forecast.errors import DataError, SourceUnavailableError
from crypto_forecast.params import DownloadParams

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger("stages.download")

# Set by `crypto_forecast refresh`: the live ledger records forecasts from real closes only, so
# `source: auto` must fail rather than fall back to the synthetic sample.
REAL_DATA_ONLY_ENV = "CRYPTO_FORECAST_REAL_DATA_ONLY"


def library_versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in ("yfinance", "pandas", "numpy"):
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def acquire(cfg: DownloadParams, ticker: str, fetch: Callable[..., pd.DataFrame] | None = None
            ) -> tuple[pd.DataFrame, str, str]:
    """Prices of `ticker` as (frame, source_used, note), trimmed to cfg's [start, end)."""
    import pandas as pd

    from crypto_forecast.data.prices import read_price_csv
    from crypto_forecast.data.synthetic import synthetic_prices

    if cfg.source == "csv":
        csv_path = cfg.csv_file(ticker)
        setting = ("download.csv_path" if cfg.csv_path else
                   f"download.csv_dir (it should hold {ticker}.csv)")
        frame, used, note = read_price_csv(csv_path, setting), "csv", f"from {csv_path}"
    elif cfg.source == "synthetic":
        frame, used, note = (synthetic_prices(cfg.start, cfg.end, ticker), "synthetic",
                             "chosen in params")
    else:
        try:
            frame, used, note = (fetch or fetch_yahoo)(ticker, cfg.start, cfg.end), "yahoo", \
                "Yahoo Finance"
        except SourceUnavailableError as exc:
            if cfg.source == "yahoo":
                raise
            if os.environ.get(REAL_DATA_ONLY_ENV) == "1":
                raise SourceUnavailableError(
                    f"Yahoo cannot be reached ({exc}) and a refresh records real closes only, so "
                    "it will not fall back to synthetic data — retry online, or set "
                    "download.source: csv with download.csv_dir") from None
            log.warning("!! Yahoo unreachable (%s). FALLING BACK TO SYNTHETIC DATA: a seeded, "
                        "simulated series, NOT real prices of %s. Once online run "
                        "`dvc repro -f download@%s` for real data.", exc, ticker, ticker)
            frame, used, note = (synthetic_prices(cfg.start, cfg.end, ticker), "synthetic",
                                 "fallback: Yahoo unreachable")
    start, end = pd.Timestamp(cfg.start), pd.Timestamp(cfg.end)
    in_range = frame[(frame.index >= start) & (frame.index < end)]
    if in_range.empty and not frame.empty:
        raise DataError(
            f"no rows in {cfg.start} .. {cfg.end} (the data covers {frame.index.min().date()} .. "
            f"{frame.index.max().date()}) — adjust download.start/end"
        )
    return in_range, used, note
