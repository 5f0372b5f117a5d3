"""Daily price frames: normalising what each source returns, and one validation for all.

The pipeline's canonical frame has a `DatetimeIndex` named `Date` (tz-naive, daily,
sorted, unique) and one float column `Close`, finite and positive.
"""

from __future__ import annotations

import hashlib
import io
import logging
from pathlib import Path

import numpy as np
import pandas as pd

from crypto_forecast.errors import DataError

log = logging.getLogger(__name__)

MIN_ROWS = 30
# A CSV larger than this is refused before it is read: daily bars for 100 years are ~8 MB.
MAX_CSV_BYTES = 64 * 1024 * 1024
# Closes the arithmetic downstream can square, sum and scale without overflowing or losing
# every digit (squares of 1e15 are 1e30; float64 goes to 1.8e308): no asset trades outside
# this range in any currency, so a value beyond it is a unit or parsing mistake.
MIN_CLOSE = 1e-9
MAX_CLOSE = 1e15


def normalize_yahoo_frame(frame: pd.DataFrame, ticker: str) -> pd.DataFrame:
    """Reduce any frame yfinance 1.x returns to the canonical Date/Close frame.

    Copes with `(Price, Ticker)` MultiIndex columns from `yf.download`, flat columns from
    `Ticker.history`, a tz-aware index, and no `Adj Close` (auto-adjust is the default, so
    `Close` is already adjusted).
    """
    if frame is None or frame.empty:
        raise DataError(f"no rows for {ticker}")
    df: pd.DataFrame = frame
    if isinstance(df.columns, pd.MultiIndex):
        level = _price_level(df.columns)
        if df.columns.nlevels > 1 and ticker in df.columns.get_level_values(1 - level):
            df = pd.DataFrame(df.xs(ticker, axis=1, level=1 - level))
        else:
            df = df.droplevel(1 - level, axis=1)
    if "Close" not in df.columns:
        raise DataError(f"Yahoo frame for {ticker} has no Close column (got {list(df.columns)})")
    index = pd.DatetimeIndex(df.index)
    if index.tz is not None:
        # Yahoo stamps each day at 00:00 in the exchange's zone (UTC for crypto): drop the
        # zone and keep that calendar day (converting to UTC would shift Asian days back).
        index = index.tz_localize(None)
    out = pd.DataFrame({"Close": pd.to_numeric(df["Close"], errors="coerce").to_numpy()},
                       index=index.normalize())
    out.index.name = "Date"
    return out


def _price_level(columns: pd.MultiIndex) -> int:
    for level in range(columns.nlevels):
        if "Close" in columns.get_level_values(level):
            return level
    raise DataError(f"Yahoo frame has no Close column (got {list(columns)})")


def read_price_csv(path: Path, setting: str = "download.csv_path") -> pd.DataFrame:
    """Read a Yahoo-format CSV (at least Date and Close) into the canonical frame; `setting`
    is the params key that named the file (for the fix in an error)."""
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise DataError(f"{path} does not exist — check {setting}") from None
    except OSError as exc:
        raise DataError(f"{path} cannot be read ({exc.strerror}) — check {setting}") from None
    if size > MAX_CSV_BYTES:
        raise DataError(
            f"{path} is {size / 2**20:.0f} MB, over the {MAX_CSV_BYTES // 2**20} MB limit for "
            "daily prices — pass a daily Date/Close file"
        )
    if size == 0:
        raise DataError(f"{path} is empty — it needs a header and rows with Date and Close")
    try:
        raw = pd.read_csv(path, usecols=lambda c: str(c).strip() in {"Date", "Close"})
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path} cannot be read as CSV ({exc}) — check {setting}") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, ValueError) as exc:
        raise DataError(f"{path} is not a valid CSV ({exc}) — expected Date,Close columns") from None
    raw.columns = [str(c).strip() for c in raw.columns]
    missing = [c for c in ("Date", "Close") if c not in raw.columns]
    if missing:
        raise DataError(
            f"{path} has no {' or '.join(missing)} column — expected Yahoo format (Date,...,Close)"
        )
    if raw.empty:
        raise DataError(f"{path} has a header but no rows — export the prices again")
    # Policy: each Date starts with YYYY-MM-DD; that calendar day is the row's day, whatever
    # time or UTC offset follows (yfinance writes "2024-01-02 00:00:00+09:00"). Other forms
    # (01/02/2024 is ambiguous) are refused rather than guessed.
    text = raw["Date"].astype("string").str.strip()
    day = text.str.extract(r"^(\d{4}-\d{2}-\d{2})(?:[T ][0-9:.]*(?:Z|[+-]\d{2}:?\d{2})?)?$")[0]
    dates = pd.to_datetime(day, errors="coerce", format="%Y-%m-%d")
    if dates.isna().any():
        bad = raw["Date"][dates.isna().to_numpy()].iloc[0]
        raise DataError(
            f"{path}: {int(dates.isna().sum())} Date value(s) are not dates in YYYY-MM-DD form "
            f"(first: {bad!r}) — write every date as YYYY-MM-DD"
        )
    close = pd.to_numeric(raw["Close"], errors="coerce")
    words = close.isna() & raw["Close"].notna()
    if words.any():
        raise DataError(
            f"{path}: {int(words.sum())} Close value(s) are not numbers (first: "
            f"{raw['Close'][words.to_numpy()].iloc[0]!r}) — fix or drop those rows"
        )
    frame = pd.DataFrame({"Close": close.to_numpy(dtype=float)}, index=pd.DatetimeIndex(dates))
    frame.index.name = "Date"
    return frame


def validate_prices(frame: pd.DataFrame, what: str, min_rows: int = MIN_ROWS, *,
                    max_daily_move: float | None = None, on_jump: str = "warn") -> pd.DataFrame:
    """The one validation every source passes; returns the frame sorted by date.

    Unsorted rows are sorted (and said so); duplicate dates, non-finite or non-positive
    closes, closes outside [MIN_CLOSE, MAX_CLOSE] and too few rows are errors. Gaps (missing
    calendar days) are allowed and counted in the log: weekends are normal for stocks, rare
    for crypto. A close more than `max_daily_move` times the previous one (or below it by
    that factor) is a loud warning, or an error with `on_jump="error"`.
    """
    if frame.empty:
        raise DataError(f"{what} has no rows — check the ticker and the date range")
    if not frame.index.is_monotonic_increasing:
        log.warning("%s: rows were not in date order; sorted them", what)
        frame = frame.sort_index(kind="stable")
    dupes = frame.index.duplicated()
    if dupes.any():
        first = frame.index[dupes][0].date()
        raise DataError(
            f"{what} has {int(dupes.sum())} duplicate date(s) (first: {first}) — keep one row per day"
        )
    close = frame["Close"].to_numpy(dtype=float)
    bad = ~np.isfinite(close) | (close <= 0)
    if bad.any():
        i = int(np.argmax(bad))
        raise DataError(
            f"{what} has {int(bad.sum())} Close value(s) that are missing, not finite or not "
            f"positive (first: {frame.index[i].date()} = {float(close[i])}) "
            "— fix or drop those rows"
        )
    extreme = (close < MIN_CLOSE) | (close > MAX_CLOSE)
    if extreme.any():
        i = int(np.argmax(extreme))
        raise DataError(
            f"{what} has {int(extreme.sum())} Close value(s) outside {MIN_CLOSE:g} .. "
            f"{MAX_CLOSE:g} (first: {frame.index[i].date()} = {float(close[i]):g}), beyond any "
            "real price — check the units or the file, and fix or drop those rows"
        )
    if max_daily_move is not None:
        _check_jumps(frame, close, what, max_daily_move, on_jump)
    if len(frame) < min_rows:
        raise DataError(
            f"{what} has only {len(frame)} rows, fewer than the {min_rows} needed "
            "— widen the date range"
        )
    gaps = int((np.diff(frame.index.to_numpy()).astype("timedelta64[D]").astype(int) > 1).sum())
    if gaps:
        log.warning("%s: %d gap(s) between consecutive dates (kept as is, not filled)", what, gaps)
    return frame


def _check_jumps(frame: pd.DataFrame, close: np.ndarray, what: str, limit: float,
                 on_jump: str) -> None:
    ratio = close[1:] / close[:-1]
    jumps = (ratio > limit) | (ratio < 1 / limit)
    if not jumps.any():
        return
    i = int(np.argmax(jumps)) + 1
    message = (f"{what} has {int(jumps.sum())} implausible daily move(s) of more than "
               f"{limit:g}x (first: {frame.index[i - 1].date()} {close[i - 1]:.6g} -> "
               f"{frame.index[i].date()} {close[i]:.6g})")
    if on_jump == "error":
        raise DataError(f"{message} — fix or drop those rows, or raise download.max_daily_move "
                        "(or set download.on_jump: warn) if the move is real")
    log.warning("%s — check the data: a bad row skews the scaler and every forecast (set "
                "download.on_jump: error to refuse such data)", message)


def to_csv_bytes(frame: pd.DataFrame) -> bytes:
    """The canonical frame as CSV bytes (Date as YYYY-MM-DD, full float precision)."""
    buf = io.StringIO()
    frame.to_csv(buf, date_format="%Y-%m-%d", float_format="%.10g")
    return buf.getvalue().encode("utf-8")


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
