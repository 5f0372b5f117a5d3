"""A fake Yahoo Finance *transport*: a curl_cffi Session that answers by URL.

Only the HTTP layer is replaced. yfinance's own code (cookie and crumb handling, the
timezone probe, the chart request, its JSON parsing, `Ticker.history`) runs for real on
answers shaped like Yahoo's: the fc.yahoo.com cookie, /v1/test/getcrumb, and
/v8/finance/chart/<ticker> with `chart.result[0]` (meta, timestamp, indicators) or
`chart.error`. Network faults are raised as the exceptions curl_cffi itself raises.

Also used from a `python -c` harness (see `HARNESS`) so a whole stage can run in a
subprocess against this transport.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Callable
from typing import Any
from urllib.parse import urlparse

from curl_cffi.requests import Response, Session
from curl_cffi.requests import exceptions as curl_exc

DAY = 86_400
CHART = "/v8/finance/chart/"


def chart_json(symbol: str, first: dt.date, last: dt.date, *, base: float = 1500.0) -> dict[str, Any]:
    """A daily crypto chart as Yahoo returns it: bars at 00:00 UTC, first..last inclusive."""
    t0 = int(dt.datetime(first.year, first.month, first.day, tzinfo=dt.UTC).timestamp())
    n = (last - first).days + 1
    stamps = [t0 + i * DAY for i in range(max(n, 0))]
    close = [round(base * (1 + 0.1 * math.sin(i / 9)) + i * 0.5, 4) for i in range(len(stamps))]
    quote = {
        "open": [round(c * 0.99, 4) for c in close],
        "high": [round(c * 1.02, 4) for c in close],
        "low": [round(c * 0.97, 4) for c in close],
        "close": close,
        "volume": [10_000_000_000 + 1000 * i for i in range(len(stamps))],
    }
    last_ts = stamps[-1] if stamps else t0
    period = {"timezone": "UTC", "start": last_ts, "end": last_ts + DAY, "gmtoffset": 0}
    meta = {
        "currency": "USD", "symbol": symbol, "exchangeName": "CCC", "fullExchangeName": "CCC",
        "instrumentType": "CRYPTOCURRENCY", "firstTradeDate": t0,
        "regularMarketTime": last_ts, "hasPrePostMarketData": False, "gmtoffset": 0,
        "timezone": "UTC", "exchangeTimezoneName": "UTC",
        "regularMarketPrice": close[-1] if close else None, "priceHint": 2,
        "currentTradingPeriod": {"pre": dict(period), "regular": dict(period),
                                 "post": dict(period)},
        "dataGranularity": "1d", "range": "",
        "validRanges": ["1d", "5d", "1mo", "3mo", "6mo", "1y", "2y", "5y", "10y", "ytd", "max"],
    }
    result: dict[str, Any] = {"meta": meta, "indicators": {"quote": [quote if stamps else {}]}}
    if stamps:
        result["timestamp"] = stamps
        result["indicators"]["adjclose"] = [{"adjclose": list(close)}]
    return {"chart": {"result": [result], "error": None}}


def not_found_json() -> dict[str, Any]:
    return {"chart": {"result": None, "error": {
        "code": "Not Found", "description": "No data found, symbol may be delisted"}}}


def response(url: str, status: int, body: bytes | str | dict[str, Any]) -> Response:
    """A real curl_cffi Response carrying `body`."""
    resp = Response()
    resp.url = url
    resp.status_code = status
    resp.ok = status < 400
    resp.reason = "OK" if status < 400 else ("Too Many Requests" if status == 429 else "Error")
    if isinstance(body, dict):
        resp.content = json.dumps(body).encode()
        resp.headers["content-type"] = "application/json;charset=utf-8"
    else:
        resp.content = body.encode() if isinstance(body, str) else body
    return resp


Fault = Callable[[str], Exception]

FAULTS: dict[str, Fault] = {
    "dns": lambda url: curl_exc.DNSError(
        f"Failed to perform, curl: (6) Could not resolve host: {urlparse(url).hostname}. "
        "See https://curl.se/libcurl/c/libcurl-errors.html first for more details."),
    "timeout": lambda url: curl_exc.Timeout(
        "Failed to perform, curl: (28) Connection timed out after 20001 milliseconds."),
    "refused": lambda url: curl_exc.ConnectionError(
        f"Failed to perform, curl: (7) Failed to connect to {urlparse(url).hostname} port 443: "
        "Connection refused."),
}


class FakeYahooSession(Session):  # type: ignore[misc]
    """Answers Yahoo's endpoints from memory.

    `listed`: the symbols Yahoo knows, each with the first day it traded.
    `fault`: a key of FAULTS raised on *every* request, or "429" / "503" answered to every
    request.
    `fail_first`: how many chart requests fail with `fault` before answering normally.
    """

    def __init__(self, *, listed: dict[str, dt.date] | None = None, fault: str | None = None,
                 fail_first: int | None = None, last_day: dt.date = dt.date(2024, 6, 30)) -> None:
        super().__init__()
        self.listed = {"ETH-USD": dt.date(2017, 11, 9)} if listed is None else listed
        self.fault = fault
        self.fail_first = fail_first
        self.last_day = last_day
        self.calls: list[str] = []

    # Every verb goes through here; yfinance uses get and post.
    def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> Response:
        params = kwargs.get("params") or {}
        self.calls.append(f"{method} {url}")
        failing = self.fault is not None and (
            self.fail_first is None or (CHART in url and self._chart_calls() <= self.fail_first))
        if failing and self.fault == "429":
            return response(url, 429, "Too Many Requests\r\n")
        if failing and self.fault == "503":
            return response(url, 503, "<html><body>Will be right back...</body></html>")
        if failing and self.fault in FAULTS:
            raise FAULTS[self.fault](url)
        host, path = urlparse(url).hostname or "", urlparse(url).path
        if host == "fc.yahoo.com":
            return response(url, 404, "<html>not found</html>")  # sets a cookie in real life
        if path == "/v1/test/getcrumb":
            return response(url, 200, "Xy7AbCdEfGh")
        if path.startswith(CHART):
            return self._chart(url, path.removeprefix(CHART), params)
        return response(url, 404, "<html>not found</html>")

    def get(self, url: str, *args: Any, **kwargs: Any) -> Response:
        return self.request("GET", url, *args, **kwargs)

    def post(self, url: str, *args: Any, **kwargs: Any) -> Response:
        return self.request("POST", url, *args, **kwargs)

    def _chart_calls(self) -> int:
        return sum(1 for c in self.calls if CHART in c)

    def _chart(self, url: str, symbol: str, params: dict[str, Any]) -> Response:
        if symbol not in self.listed:
            return response(url, 404, not_found_json())
        listed = self.listed[symbol]
        if "period1" in params:
            first = dt.datetime.fromtimestamp(int(params["period1"]), dt.UTC).date()
            end = dt.datetime.fromtimestamp(int(params["period2"]), dt.UTC).date()
            first, last = max(first, listed), min(end - dt.timedelta(days=1), self.last_day)
        else:  # range=1d: yfinance's timezone probe
            first = last = self.last_day
        return response(url, 200, chart_json(symbol, first, last))


def reset_yfinance() -> None:
    """Forget yfinance's process-wide state: the YfData singleton (session, cookie, crumb),
    its response cache, and the on-disk timezone/cookie caches (replaced by no-op ones)."""
    import yfinance.base as yf_base
    import yfinance.cache as yf_cache
    from yfinance.data import YfData

    yf_base._tz_info_fetch_ctr = 0  # timezone look-ups via `info`, capped per process
    YfData.cache_get.cache_clear()
    type(YfData)._instances.pop(YfData, None)
    yf_cache._TzCacheManager._tz_cache = yf_cache._TzCacheDummy()
    yf_cache._CookieCacheManager._Cookie_cache = yf_cache._CookieCacheDummy()


def harness_calls(stderr: str) -> list[str]:
    """The requests the fake transport answered in a HARNESS run (its last stderr report)."""
    lines = [line for line in stderr.splitlines() if line.startswith("fake-yahoo calls: ")]
    assert lines, "the harness did not report the fake transport's calls"
    calls: list[str] = json.loads(lines[-1].removeprefix("fake-yahoo calls: "))
    return calls


# Runs `python -m stages.download` in-process with Yahoo's transport replaced by a
# FakeYahooSession built from the JSON in argv[1]; back-off shortened to keep tests fast.
HARNESS = """
import datetime, json, sys
import yfinance.data
import stages.download as d
import crypto_forecast.data.yahoo as y
from tests.errors import fake_yahoo as f
f.reset_yfinance()
kw = json.loads(sys.argv[1])
listed = kw.get("listed", {"ETH-USD": "2017-11-09"})
kw["listed"] = {k: datetime.date.fromisoformat(v) for k, v in listed.items()}
sessions = []
def fake_session():
    sessions.append(f.FakeYahooSession(**kw))
    return sessions[-1]
yfinance.data.new_session = fake_session
# Proof for the tests that this transport answered (the hook above is yfinance-private: if
# yfinance stopped calling it, an offline run would fail the same way on the real network).
import atexit
atexit.register(lambda: sys.stderr.write("fake-yahoo calls: " + json.dumps(
    [c for s in sessions for c in s.calls]) + chr(10)))
y.BACKOFF_SECONDS = 0.01
from crypto_forecast.cli import run_stage
run_stage("download", d.main)
"""
