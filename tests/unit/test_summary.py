"""The portfolio summary from cards: listed tickers only, in the listed order; a missing,
damaged or failed ticker is a FAILED row with no numbers; DVC's headline keeps one ticker's
shape and gives several one column each. Also the ticker a command runs for."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from crypto_forecast.cli import stage_ticker
from crypto_forecast.errors import ConfigError
from crypto_forecast.io import paths
from crypto_forecast.io.contracts import CardDay, Headline, TickerCard
from crypto_forecast.report.summary import headline, read_rows, render_markdown, write_summary


def card(ticker: str, skill: float | None, close: float, source: str = "csv") -> TickerCard:
    head = Headline(horizon=2, skill_h1=skill, skill_hmax=1.1, rmse_h1=3.0, mae_h1=2.0,
                    mase_h1=0.9, coverage={"80": 0.78, "95": 0.94},
                    interval_skill={"80": 0.97, "95": None}, param_count=30651,
                    test_first="2022-10-01", test_last="2022-12-30")
    days = [CardDay(date=f"2022-12-3{i}", forecast=close * (1 + i / 100),
                    lower={"80": close * 0.9, "95": close * 0.8},
                    upper={"80": close * 1.1, "95": None}) for i in (0, 1)]
    return TickerCard(ticker=ticker, source_used=source, data_first="2022-01-01",
                      data_last="2022-12-29", last_close=close, data_sha256="ab" * 32,
                      run_id="0" * 32, served="lstm" if skill and skill < 1 else "naive",
                      reasons=[f"{ticker} reason"], headline=head, days=days)


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    paths.CARDS_DIR.mkdir(parents=True)
    paths.for_ticker("ETH-USD").card.write_text(card("ETH-USD", 0.95, 2300.0).to_json())
    paths.for_ticker("BTC-USD").card.write_text(card("BTC-USD", 1.05, 42000.0,
                                                     "synthetic").to_json())
    paths.for_ticker("SOL-USD").card.write_text(card("SOL-USD", 1.2, 100.0).to_json())
    return tmp_path


def test_only_listed_tickers_in_the_listed_order(workdir: Path) -> None:
    rows = read_rows(("BTC-USD", "ETH-USD"))  # SOL's card is there; it is not listed
    assert [r.ticker for r in rows] == ["BTC-USD", "ETH-USD"]
    assert headline(rows) == {"BTC-USD": {"skill_h1": 1.05}, "ETH-USD": {"skill_h1": 0.95}}
    md = render_markdown(rows, "summary.png")
    assert "SOL-USD" not in md and "SYNTHETIC DATA for BTC-USD" in md
    assert md.index("| BTC-USD") < md.index("| ETH-USD")


def test_one_ticker_keeps_its_own_flat_headline(workdir: Path) -> None:
    rows = read_rows(("ETH-USD",))
    assert headline(rows) == card("ETH-USD", 0.95, 2300.0).headline.metrics_file()


def test_missing_damaged_and_failed_tickers_show_no_numbers(workdir: Path) -> None:
    paths.for_ticker("SOL-USD").card.write_bytes(os.urandom(64))
    rows = write_summary(("ETH-USD", "BTC-USD", "SOL-USD", "ADA-USD"),
                         failed={"BTC-USD": "download@BTC-USD: no such file"})
    assert [r.card is None for r in rows] == [False, True, True, True]
    summary = json.loads(paths.SUMMARY_JSON.read_text())["tickers"]
    assert [r["status"] for r in summary] == ["ok", "failed", "failed", "failed"]
    assert summary[1] == {"ticker": "BTC-USD", "status": "failed",
                          "failure": "download@BTC-USD: no such file"}
    assert "forecast@SOL-USD" in summary[2]["failure"]  # damaged: the stage to rerun
    assert "ADA-USD.json is missing" in summary[3]["failure"]
    metrics = json.loads(paths.METRICS.read_text())
    assert metrics["BTC-USD"] == metrics["ADA-USD"] == {"failed": 1}
    md = paths.SUMMARY_MD.read_text()
    assert "FAILED: BTC-USD, SOL-USD, ADA-USD" in md
    btc = next(line for line in md.splitlines() if line.startswith("| BTC-USD"))
    assert "42,000" not in btc and "1.050" not in btc and "FAILED" in btc
    html = paths.SUMMARY_HTML.read_text()
    assert 'class="failed"' in html and "data:image/png;base64," in html
    assert paths.SUMMARY_PNG.read_bytes().startswith(b"\x89PNG")


def test_the_table_shows_the_served_forecast_and_its_band(workdir: Path) -> None:
    md = render_markdown(read_rows(("ETH-USD",)), "summary.png")
    row = next(line for line in md.splitlines() if line.startswith("| ETH-USD"))
    # skill h1, h2, coverage 80/95, interval skill 80/95 (95 undefined), last, forecast, band
    assert "| LSTM | 0.950 | 1.100 | 78.0 | 94.0 | 0.970 | undefined |" in row
    assert "2,300.00 (2022-12-29)" in row and "2,323.00 (2022-12-31)" in row
    assert "2,070.00 .. 2,530.00" in row


@pytest.mark.parametrize(("listed", "given", "expected"), [
    (("ETH-USD",), None, "ETH-USD"),
    (("ETH-USD", "BTC-USD"), "BTC-USD", "BTC-USD"),
])
def test_the_ticker_a_command_runs_for(listed: tuple[str, ...], given: str | None,
                                       expected: str) -> None:
    assert stage_ticker(listed, given) == expected


@pytest.mark.parametrize(("given", "words"), [
    (None, ["lists 2 symbols (ETH-USD, BTC-USD)", "--ticker ETH-USD", "TICKER=ETH-USD"]),
    ("SOL-USD", ["'SOL-USD' is not in download.tickers (ETH-USD, BTC-USD)"]),
])
def test_an_unnamed_or_unlisted_ticker_is_one_line(given: str | None, words: list[str]) -> None:
    with pytest.raises(ConfigError) as info:
        stage_ticker(("ETH-USD", "BTC-USD"), given, option="--ticker")
    for word in words:
        assert word in str(info.value)
