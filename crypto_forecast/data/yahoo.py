"""Daily closes from Yahoo Finance through yfinance: bounded retries, and every failure
sorted into "unreachable" (worth a fallback) or "no such data" (the user's to fix)."""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from crypto_forecast.errors import SourceEmptyError, SourceUnavailableError

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger("stages.download")

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

    from crypto_forecast.data.prices import normalize_yahoo_frame

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
                "download.tickers (e.g. ETH-USD) and the date range"
            ) from None
        except Exception as exc:
            status = _http_status(exc)
            if status in (401, 403, 404):
                # Yahoo answers an unknown symbol's follow-up lookups with 404.
                raise SourceEmptyError(
                    f"Yahoo does not know {ticker} (HTTP {status}) — check download.tickers "
                    "(e.g. ETH-USD)"
                ) from None
            if status is None and not (_is_network_error(exc) or _is_outage_page(exc)):
                raise
            last = exc  # unreachable, down, or a 429/5xx: worth retrying
        else:
            if frame is None or frame.empty:
                raise SourceEmptyError(
                    f"Yahoo returned no rows for {ticker} in {start} .. {end} — check "
                    "download.tickers (e.g. ETH-USD) and the date range"
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
