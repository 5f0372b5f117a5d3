"""Stage `download`: daily closes for one ticker from Yahoo, a CSV, or a synthetic sample.

Writes data/raw/<TICKER>.csv (Date,Close) and data/raw/meta.json (source used, rows,
date range, sha256, library versions). `source: auto` tries Yahoo and, only when Yahoo
cannot be reached at all, falls back to a seeded synthetic series, loudly.
"""

from __future__ import annotations

import datetime as dt
import importlib.metadata
import json
import logging
import platform
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from stages import atomic, paths
from stages.cli import run_stage
from stages.errors import DataError, SourceEmptyError, SourceUnavailableError
from stages.params import DownloadParams, load_params

if TYPE_CHECKING:
    import pandas as pd

# pandas and the price modules are imported where used, after params.yaml is validated:
# a typo in params.yaml is reported in a fraction of a second.

log = logging.getLogger("stages.download")

# The params.yaml sections this stage reads (dvc.yaml declares exactly these).
PARAM_SECTIONS = ("download",)

MAX_ATTEMPTS = 3
BACKOFF_SECONDS = 1.0
REQUEST_TIMEOUT_S = 20


def _http_status(exc: BaseException) -> int | None:
    """The HTTP status of an error raised for an answer Yahoo gave (None: no answer)."""
    code = getattr(getattr(exc, "response", None), "status_code", None)
    return code if isinstance(code, int) and code >= 400 else None


def _is_outage_page(exc: BaseException) -> bool:
    """Yahoo answered, but with an HTML 'Will be right back' page instead of JSON."""
    from yfinance.exceptions import YFDataException

    return isinstance(exc, json.JSONDecodeError) or (
        isinstance(exc, YFDataException) and "CURRENTLY DOWN" in str(exc))


def _is_network_error(exc: BaseException) -> bool:
    """Transport failures: DNS, refused or reset connections, timeouts (curl_cffi's are
    OSErrors; plain `requests` errors are not). An HTTP error status is an answer, not one."""
    if _http_status(exc) is not None:
        return False
    if isinstance(exc, OSError | TimeoutError):
        return True
    name = type(exc).__module__
    return name.startswith(("curl_cffi", "requests", "urllib3"))


def fetch_yahoo(ticker: str, start: dt.date, end: dt.date, *, session: Any = None,
                sleep: Callable[[float], None] = time.sleep) -> pd.DataFrame:
    """Daily bars from Yahoo through yfinance, with bounded retries and back-off.

    Raises `SourceUnavailableError` when Yahoo cannot be reached after `MAX_ATTEMPTS`
    (the only case `auto` falls back on), `SourceEmptyError` for an unknown ticker or an
    empty range. `session` lets tests replace the HTTP transport and nothing else.
    """
    import yfinance as yf
    from yfinance.exceptions import YFRateLimitError, YFTickerMissingError

    from stages.prices import normalize_yahoo_frame

    yf.config.debug.hide_exceptions = False  # we classify the errors ourselves
    last: BaseException | None = None
    for attempt in range(1, MAX_ATTEMPTS + 1):
        log.info("Yahoo Finance: %s %s .. %s (attempt %d/%d)", ticker, start, end, attempt,
                 MAX_ATTEMPTS)
        try:
            frame = yf.Ticker(ticker, session=session).history(
                start=start.isoformat(), end=end.isoformat(), interval="1d",
                auto_adjust=True, actions=False, timeout=REQUEST_TIMEOUT_S)
        except YFRateLimitError as exc:
            last = exc
        except YFTickerMissingError as exc:
            raise SourceEmptyError(
                f"Yahoo has no daily prices for {ticker} in {start} .. {end} ({exc}) — check "
                "download.ticker (e.g. ETH-USD) and the date range"
            ) from None
        except Exception as exc:
            status = _http_status(exc)
            if status in (401, 403, 404):
                # Yahoo answers an unknown symbol's follow-up lookups with 404.
                raise SourceEmptyError(
                    f"Yahoo does not know {ticker} (HTTP {status}) — check download.ticker "
                    "(e.g. ETH-USD)"
                ) from None
            if status is None and not (_is_network_error(exc) or _is_outage_page(exc)):
                raise
            last = exc  # unreachable, down, or a 429/5xx: worth retrying
        else:
            if frame is None or frame.empty:
                raise SourceEmptyError(
                    f"Yahoo returned no rows for {ticker} in {start} .. {end} — check "
                    "download.ticker (e.g. ETH-USD) and the date range"
                )
            return normalize_yahoo_frame(frame, ticker)
        if attempt < MAX_ATTEMPTS:
            wait = BACKOFF_SECONDS * 2 ** (attempt - 1)
            log.warning("Yahoo request failed (%s); retrying in %.0f s", _short(last), wait)
            sleep(wait)
    if isinstance(last, YFRateLimitError) or _http_status(last or Exception()) == 429:
        raise SourceUnavailableError(
            f"Yahoo is rate-limiting requests ({MAX_ATTEMPTS} attempts) — wait a few minutes "
            "and rerun, or use download.source: csv"
        )
    raise SourceUnavailableError(
        f"Yahoo Finance is unreachable or down after {MAX_ATTEMPTS} attempts ({_short(last)}) — check "
        "the network, or use download.source: csv with a saved file"
    )


def _short(exc: BaseException | None) -> str:
    text = str(exc).split(". See ")[0].strip() if exc else ""
    return f"{type(exc).__name__}: {text[:120]}" if exc else "unknown"


def _library_versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in ("yfinance", "pandas", "numpy"):
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def acquire(cfg: DownloadParams, fetch: Callable[..., pd.DataFrame] | None = None
            ) -> tuple[pd.DataFrame, str, str]:
    """Prices for `cfg` as (frame, source_used, note), trimmed to [start, end)."""
    import pandas as pd

    from stages.prices import read_price_csv
    from stages.synthetic import synthetic_prices

    if cfg.source == "csv":
        csv_path = Path(cfg.csv_path or "")  # non-empty: checked by the params model
        frame, used, note = read_price_csv(csv_path), "csv", f"from {csv_path}"
    elif cfg.source == "synthetic":
        frame, used, note = synthetic_prices(cfg.start, cfg.end), "synthetic", "chosen in params"
    else:
        try:
            frame, used, note = (fetch or fetch_yahoo)(cfg.ticker, cfg.start, cfg.end), "yahoo", \
                "Yahoo Finance"
        except SourceUnavailableError as exc:
            if cfg.source == "yahoo":
                raise
            log.warning("!! Yahoo unreachable (%s). FALLING BACK TO SYNTHETIC DATA: a seeded, "
                        "simulated ETH-like series, NOT real prices. Once online run "
                        "`dvc repro -f download` for real data.", exc)
            frame, used, note = (synthetic_prices(cfg.start, cfg.end), "synthetic",
                                 "fallback: Yahoo unreachable")
    start, end = pd.Timestamp(cfg.start), pd.Timestamp(cfg.end)
    in_range = frame[(frame.index >= start) & (frame.index < end)]
    if in_range.empty and not frame.empty:
        raise DataError(
            f"no rows in {cfg.start} .. {cfg.end} (the data covers {frame.index.min().date()} .. "
            f"{frame.index.max().date()}) — adjust download.start/end"
        )
    return in_range, used, note


def main() -> None:
    cfg = load_params().download
    from stages.prices import sha256, to_csv_bytes, validate_prices

    frame, used, note = acquire(cfg)
    frame = validate_prices(frame, str(cfg.csv_path) if used == "csv" else f"{cfg.ticker} ({used})")
    first, last = frame.index[0].date(), frame.index[-1].date()
    if first > cfg.start + dt.timedelta(days=7):
        log.warning("%s: data covers only %s .. %s, starting later than download.start %s (the "
                    "asset may not have traded earlier) — set download.start to %s to silence "
                    "this", cfg.ticker, first, last, cfg.start, first)
    data = to_csv_bytes(frame)
    meta = {
        "ticker": cfg.ticker,
        "source_requested": cfg.source,
        "source_used": used,
        "source_note": note,
        "rows": len(frame),
        "first_date": str(first),
        "last_date": str(last),
        "sha256": sha256(data),
        "versions": _library_versions(),
    }
    atomic.write_bytes(paths.raw_csv(cfg.ticker), data)
    atomic.write_json(paths.RAW_META, meta)
    log.info("%s: %d daily closes %s .. %s from %s -> %s", cfg.ticker, len(frame), first, last,
             used.upper() if used == "synthetic" else used, paths.raw_csv(cfg.ticker))


if __name__ == "__main__":
    run_stage("download", main)
