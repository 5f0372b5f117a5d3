"""The one validation every source passes, on realistic yfinance 1.x-shaped frames."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from crypto_forecast.data.prices import normalize_yahoo_frame, read_price_csv, to_csv_bytes, validate_prices
from crypto_forecast.errors import DataError


def _days(n: int, tz: str | None = None) -> pd.DatetimeIndex:
    return pd.date_range("2023-01-01", periods=n, freq="D", tz=tz, name="Date")


def _ohlcv(n: int) -> dict[str, np.ndarray]:
    close = np.linspace(100.0, 130.0, n)
    return {"Open": close - 1, "High": close + 2, "Low": close - 2, "Close": close,
            "Volume": np.arange(n) * 1000.0}


def test_download_style_multiindex_without_adj_close() -> None:
    # yf.download(...) in 1.x: columns (Price, Ticker), auto-adjusted, no 'Adj Close'.
    data = _ohlcv(40)
    cols = pd.MultiIndex.from_tuples([(k, "ETH-USD") for k in data], names=["Price", "Ticker"])
    frame = pd.DataFrame(np.column_stack(list(data.values())), index=_days(40), columns=cols)
    out = normalize_yahoo_frame(frame, "ETH-USD")
    assert list(out.columns) == ["Close"] and out.index.name == "Date"
    np.testing.assert_allclose(out["Close"], data["Close"])


def test_history_style_tz_aware_index() -> None:
    # Ticker.history(...): flat columns, index tz-aware at 00:00 UTC for crypto.
    frame = pd.DataFrame(_ohlcv(40), index=_days(40, tz="UTC"))
    out = normalize_yahoo_frame(frame, "ETH-USD")
    assert out.index.tz is None
    assert out.index[0] == pd.Timestamp("2023-01-01")


def test_empty_frame_is_an_error() -> None:
    with pytest.raises(DataError, match="no rows"):
        normalize_yahoo_frame(pd.DataFrame(), "NOPE-USD")


def test_validate_sorts_and_accepts_gaps() -> None:
    frame = pd.DataFrame({"Close": np.arange(1.0, 41.0)}, index=_days(40)).iloc[::-1]
    frame = frame.drop(frame.index[5])
    out = validate_prices(frame, "t")
    assert out.index.is_monotonic_increasing and len(out) == 39


@pytest.mark.parametrize(
    ("close", "words"),
    [(np.nan, "not finite"), (np.inf, "not finite"), (0.0, "not positive"), (-5.0, "positive")],
)
def test_validate_rejects_bad_closes(close: float, words: str) -> None:
    values = np.arange(1.0, 41.0)
    values[7] = close
    frame = pd.DataFrame({"Close": values}, index=_days(40))
    with pytest.raises(DataError, match="first: 2023-01-08"):
        validate_prices(frame, "t")


def test_validate_rejects_duplicates_and_short_data() -> None:
    idx = _days(40).append(_days(1))
    with pytest.raises(DataError, match="duplicate"):
        validate_prices(pd.DataFrame({"Close": np.arange(1.0, 42.0)}, index=idx), "t")
    with pytest.raises(DataError, match="widen the date range"):
        validate_prices(pd.DataFrame({"Close": [1.0, 2.0]}, index=_days(2)), "t")


def test_yahoo_format_csv_roundtrip(tmp_path: Path) -> None:
    path = tmp_path / "x.csv"
    pd.DataFrame(_ohlcv(40), index=_days(40)).assign(**{"Adj Close": 1.0}).to_csv(path)
    frame = validate_prices(read_price_csv(path), "x")
    assert list(frame.columns) == ["Close"]
    again = tmp_path / "y.csv"
    again.write_bytes(to_csv_bytes(frame))
    pd.testing.assert_frame_equal(read_price_csv(again), frame, check_freq=False)


@pytest.mark.parametrize(
    ("content", "words"),
    [
        ("", "empty"),
        ("Date,Close\n", "has only 0 rows|no rows"),
        ("Day,Close\n2023-01-01,1\n", "no Date column"),
        ("Date,Open\n2023-01-01,1\n", "no Close column"),
        ("Date,Close\nyesterday,1\n", "not dates"),
    ],
)
def test_broken_csvs_say_what_is_wrong(tmp_path: Path, content: str, words: str) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(content)
    with pytest.raises(DataError, match=words):
        validate_prices(read_price_csv(path), "bad")


def test_missing_csv(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"does not exist — check download\.csv_path"):
        read_price_csv(tmp_path / "nope.csv")
