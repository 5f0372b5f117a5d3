"""Yahoo Finance faults, with only the HTTP transport faked (tests/errors/fake_yahoo.py):
yfinance's real cookie/crumb, timezone probe, chart request and JSON parsing all run.

Network faults and rate limits get bounded retries with back-off, then one line; an
unknown ticker fails at once; `auto` falls back to synthetic data only when Yahoo cannot
be reached; a range starting before the asset existed is kept with a warning naming the
actual range.
"""

from __future__ import annotations

import datetime as dt
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from crypto_forecast.data.prices import normalize_yahoo_frame
from crypto_forecast.data.yahoo import MAX_ATTEMPTS, fetch_yahoo
from crypto_forecast.errors import SourceEmptyError, SourceUnavailableError
from tests.errors import fake_yahoo
from tests.errors.conftest import (
    assert_one_line_error,
    new_project,
    params_with,
    snapshot,
    stage,
    with_outputs,
)
from tests.helpers import project_env

START, END = dt.date(2022, 1, 1), dt.date(2022, 3, 1)


@pytest.fixture(autouse=True)
def fresh_yfinance() -> Iterator[None]:
    """yfinance keeps a process-wide singleton (session, cookie, crumb) and a response cache."""
    fake_yahoo.reset_yfinance()
    yield
    fake_yahoo.reset_yfinance()


def fetch(session: fake_yahoo.FakeYahooSession, ticker: str = "ETH-USD",
          start: dt.date = START, end: dt.date = END) -> tuple[pd.DataFrame, list[float]]:
    sleeps: list[float] = []
    frame = fetch_yahoo(ticker, start, end, session=session, sleep=sleeps.append)
    return frame, sleeps


def test_fake_transport_runs_yfinance_parsing() -> None:
    session = fake_yahoo.FakeYahooSession()
    frame, sleeps = fetch(session)
    expected = fake_yahoo.chart_json("ETH-USD", START, END - dt.timedelta(days=1))
    closes = expected["chart"]["result"][0]["indicators"]["quote"][0]["close"]
    assert list(frame.columns) == ["Close"] and frame.index.name == "Date"
    assert frame.index.tz is None
    assert frame.index[0] == pd.Timestamp(START) and frame.index[-1] == pd.Timestamp("2022-02-28")
    np.testing.assert_allclose(frame["Close"].to_numpy(), closes)
    assert sleeps == []
    assert any("/v8/finance/chart/ETH-USD" in call for call in session.calls)


@pytest.mark.parametrize(("fault", "shown"), [
    ("dns", "DNSError: Failed to perform, curl: (6) Could not resolve host"),
    ("timeout", "Timeout: Failed to perform, curl: (28) Connection timed out"),
    ("refused", "ConnectionError: Failed to perform, curl: (7) Failed to connect"),
    ("503", "JSONDecodeError"),  # Yahoo's HTML "Will be right back" page
])
def test_unreachable_retries_with_backoff_then_one_clear_error(fault: str, shown: str) -> None:
    session = fake_yahoo.FakeYahooSession(fault=fault)
    with pytest.raises(SourceUnavailableError) as info:
        fetch(session)
    message = str(info.value)
    assert f"unreachable or down after {MAX_ATTEMPTS} attempts" in message
    assert shown in message and "download.source: csv" in message
    assert "\n" not in message


@pytest.mark.parametrize("fault", ["dns", "429"])
def test_backoff_is_bounded_and_doubles(fault: str) -> None:
    sleeps: list[float] = []
    with pytest.raises(SourceUnavailableError):
        fetch_yahoo("ETH-USD", START, END, session=fake_yahoo.FakeYahooSession(fault=fault),
                    sleep=sleeps.append)
    assert sleeps == [1.0, 2.0]  # MAX_ATTEMPTS - 1 waits, doubling


def test_rate_limit_says_wait() -> None:
    session = fake_yahoo.FakeYahooSession(fault="429")
    with pytest.raises(SourceUnavailableError, match=r"rate-limiting requests \(3 attempts\) — wait"):
        fetch(session)
    assert sum("/v8/finance/chart/" in c for c in session.calls) >= MAX_ATTEMPTS


def test_transient_failure_recovers_on_retry() -> None:
    frame, sleeps = fetch(fake_yahoo.FakeYahooSession(fault="dns", fail_first=1))
    assert sleeps == [1.0] and len(frame) == (END - START).days


def test_unknown_ticker_fails_at_once() -> None:
    with pytest.raises(SourceEmptyError, match=r"Yahoo does not know NOPE-USD \(HTTP 404\) — check "
                                                r"download\.ticker"):
        fetch(fake_yahoo.FakeYahooSession(), ticker="NOPE-USD")


def test_listed_after_the_range_is_empty_not_unreachable() -> None:
    session = fake_yahoo.FakeYahooSession(listed={"ETH-USD": dt.date(2023, 1, 1)})
    with pytest.raises(SourceEmptyError, match=r"no daily prices for ETH-USD in 2022-01-01 \.\. 2022-03-01"):
        fetch(session)


def test_range_before_listing_returns_what_exists() -> None:
    session = fake_yahoo.FakeYahooSession(listed={"ETH-USD": dt.date(2022, 2, 1)})
    frame, _ = fetch(session)
    assert frame.index[0] == pd.Timestamp("2022-02-01") and len(frame) == 28


# --- normalize: every shape yfinance 1.x returns ------------------------------------------

def _ohlcv(n: int = 40, tz: str | None = None) -> pd.DataFrame:
    close = np.linspace(100.0, 140.0, n)
    idx = pd.date_range("2023-01-01", periods=n, freq="D", tz=tz, name="Date")
    return pd.DataFrame({"Open": close - 1, "High": close + 1, "Low": close - 2,
                         "Close": close, "Volume": np.full(n, 1e6)}, index=idx)


def _multi(frame: pd.DataFrame, ticker_first: bool) -> pd.DataFrame:
    pairs = [("ETH-USD", c) if ticker_first else (c, "ETH-USD") for c in frame.columns]
    names = ["Ticker", "Price"] if ticker_first else ["Price", "Ticker"]
    out = frame.copy()
    out.columns = pd.MultiIndex.from_tuples(pairs, names=names)
    return out


@pytest.mark.parametrize("shape", ["price-ticker", "ticker-price", "flat-no-adj-close",
                                   "flat-with-adj-close", "asia-tz-index"])
def test_normalize_every_yfinance_shape(shape: str) -> None:
    base = _ohlcv()
    frame = {
        "price-ticker": _multi(base, ticker_first=False),        # yf.download default
        "ticker-price": _multi(base, ticker_first=True),         # group_by="ticker"
        "flat-no-adj-close": base,                               # auto_adjust=True
        "flat-with-adj-close": base.assign(**{"Adj Close": base["Close"] * 0.5}),
        "asia-tz-index": _ohlcv(tz="Asia/Tokyo"),                # 00:00+09:00 each day
    }[shape]
    out = normalize_yahoo_frame(frame, "ETH-USD")
    assert list(out.columns) == ["Close"] and out.index.tz is None
    assert out.index[0] == pd.Timestamp("2023-01-01")  # the exchange's calendar day
    np.testing.assert_allclose(out["Close"].to_numpy(), base["Close"].to_numpy())


def test_normalize_without_close_is_a_clear_error() -> None:
    frame = _multi(_ohlcv().drop(columns="Close"), ticker_first=False)
    with pytest.raises(Exception, match="no Close column"):
        normalize_yahoo_frame(frame, "ETH-USD")


# --- the whole stage in a subprocess, on the fake transport -------------------------------

@pytest.fixture(scope="module")
def proj(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    yield with_outputs(new_project(tmp_path_factory.mktemp("yahoo") / "project"), "download")


def run_download(project: Path, source: str, fake: dict[str, object], ticker: str = "ETH-USD"
                 ) -> tuple[subprocess.CompletedProcess[str], dict[str, bytes]]:
    params = params_with(download__source=source, download__tickers=[ticker])
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    before = snapshot(project)
    result = stage(project, "download", project_env(project), harness=fake_yahoo.HARNESS,
                   args=(json.dumps(fake),))
    return result, before


def test_stage_yahoo_offline_one_line_nothing_touched(proj: Path) -> None:
    result, before = run_download(proj, "yahoo", {"fault": "dns"})
    assert_one_line_error(
        result, 1, "Yahoo Finance is unreachable or down after 3 attempts", "DNSError",
        "use download.source: csv")
    assert snapshot(proj) == before
    chart = [c for c in fake_yahoo.harness_calls(result.stderr) if fake_yahoo.CHART in c]
    assert len(chart) == MAX_ATTEMPTS, chart  # the fake answered every attempt, not the network


def test_stage_unknown_ticker_one_line_nothing_touched(proj: Path) -> None:
    result, before = run_download(proj, "auto", {}, ticker="NOPE-USD")
    assert_one_line_error(result, 1, "Yahoo does not know NOPE-USD", "check download.tickers")
    assert "FALLING BACK" not in result.stderr  # an unknown ticker is not an outage
    assert snapshot(proj) == before


def test_stage_auto_offline_falls_back_loudly(proj: Path) -> None:
    result, _ = run_download(proj, "auto", {"fault": "timeout"})
    assert result.returncode == 0, result.stderr
    assert "FALLING BACK TO SYNTHETIC DATA" in result.stderr
    chart = [c for c in fake_yahoo.harness_calls(result.stderr) if fake_yahoo.CHART in c]
    assert len(chart) == MAX_ATTEMPTS, chart
    meta = json.loads((proj / "data/ETH-USD/raw/meta.json").read_text())
    assert meta["source_used"] == "synthetic" and meta["source_note"] == "fallback: Yahoo unreachable"


def test_stage_range_before_listing_warns_with_actual_range(proj: Path) -> None:
    result, _ = run_download(proj, "yahoo", {"listed": {"ETH-USD": "2022-03-01"}})
    assert result.returncode == 0, result.stderr
    assert ("ETH-USD: data covers only 2022-03-01 .. 2022-12-30, starting later than "
            "download.start 2022-01-01") in result.stderr
    meta = json.loads((proj / "data/ETH-USD/raw/meta.json").read_text())
    assert meta["source_used"] == "yahoo" and meta["first_date"] == "2022-03-01"
