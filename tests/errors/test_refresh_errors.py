"""A refresh that cannot run says so in one line and changes nothing: a damaged, foreign or
unreachable ledger, `source: auto` without a network, synthetic data, a bad --as-of."""

from __future__ import annotations

import copy
import datetime as dt
import os
import sqlite3
from pathlib import Path

import pytest

from crypto_forecast.cli import process_state_kept
from crypto_forecast.errors import RefreshError
from tests.errors import fake_yahoo
from tests.helpers import TINY_PARAMS, new_project, project_env, run, write_params

REFRESH = ["python", "-m", "crypto_forecast", "refresh", "--as-of", "2022-12-01"]


@pytest.fixture
def csv_project(tmp_path: Path) -> Path:
    params = copy.deepcopy(TINY_PARAMS)
    params["download"].update(source="csv", csv_path="prices.csv")
    return new_project(tmp_path / "project", params)


def one_error_line(stderr: str) -> str:
    errors = [line for line in stderr.splitlines() if "ERROR" in line]
    assert len(errors) == 1, stderr
    assert "Traceback" not in stderr
    return errors[0]


def damaged(path: Path) -> str:
    path.write_bytes(os.urandom(8192))
    return "is not a readable SQLite ledger"


def foreign(path: Path) -> str:
    with sqlite3.connect(path) as conn:
        conn.execute("create table experiments (id integer)")
    return "is not a crypto-forecast ledger (it holds tables experiments)"


@pytest.mark.parametrize("spoil", [damaged, foreign])
def test_a_bad_ledger_file_is_one_error_line(csv_project: Path, spoil: object) -> None:
    ledger = csv_project / "ledger.db"
    expected = spoil(ledger)  # type: ignore[operator]
    before = ledger.read_bytes()
    live = (csv_project / "live.yaml").read_text()
    for cmd in (REFRESH, ["python", "-m", "crypto_forecast", "ledger", "export"]):
        result = run(cmd, csv_project, project_env(csv_project))
        assert result.returncode == 1
        assert expected in one_error_line(result.stderr)
        assert "Running stage" not in result.stdout
    assert ledger.read_bytes() == before
    assert (csv_project / "live.yaml").read_text() == live


def test_an_unreachable_postgres_is_one_error_line(csv_project: Path) -> None:
    env = {**project_env(csv_project),
           "CRYPTO_FORECAST_LEDGER_URI": "postgresql+psycopg://ledger:pw-DO-NOT-SHOW@127.0.0.1:9/l"}
    result = run(REFRESH, csv_project, env)
    assert result.returncode == 1
    line = one_error_line(result.stderr)
    assert "cannot reach the ledger database" in line and "pw-DO-NOT-SHOW" not in line
    assert not (csv_project / "ledger.db").exists()


def test_synthetic_source_is_refused(project: Path, tmp_path: Path) -> None:
    result = run([*REFRESH, "--ledger", str(tmp_path / "l.db")], project, project_env(project))
    assert result.returncode == 1
    assert "download.source is synthetic" in one_error_line(result.stderr)
    assert "Running stage" not in result.stdout


@pytest.mark.parametrize("argv", [["--as-of", "2022-13-01"], ["--as-of", "tomorrow"]])
def test_a_bad_day_is_a_usage_error(csv_project: Path, argv: list[str]) -> None:
    result = run(["python", "-m", "crypto_forecast", "refresh", *argv], csv_project,
                 project_env(csv_project))
    assert result.returncode == 2
    assert "is not a day — write YYYY-MM-DD" in result.stderr and "Traceback" not in result.stderr


def test_offline_auto_refuses_and_changes_nothing(project: Path, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """Yahoo's transport fails as it does offline (curl's DNS error); yfinance's own code runs."""
    import yfinance.data

    from crypto_forecast.data import yahoo
    from crypto_forecast.live.ledger import Ledger, ledger_uri
    from crypto_forecast.live.refresh import refresh

    params = copy.deepcopy(TINY_PARAMS)
    params["download"]["source"] = "auto"
    write_params(project, params)
    ledger_path = tmp_path / "ledger.db"
    Ledger.open(ledger_uri(ledger_path)).close()
    before = ledger_path.read_bytes()
    live = (project / "live.yaml").read_text()
    sessions: list[fake_yahoo.FakeYahooSession] = []

    def offline() -> fake_yahoo.FakeYahooSession:
        sessions.append(fake_yahoo.FakeYahooSession(fault="dns"))
        return sessions[-1]

    fake_yahoo.reset_yfinance()
    monkeypatch.setattr(yfinance.data, "new_session", offline)
    monkeypatch.setattr(yahoo, "BACKOFF_SECONDS", 0.01)
    monkeypatch.chdir(project)
    with process_state_kept(), pytest.raises(RefreshError, match=(
            r"Yahoo cannot be reached for ETH-USD, and download.source: auto would fall back to "
            r"SYNTHETIC data")):
        refresh(as_of=dt.date(2022, 12, 1), ledger_path=str(ledger_path))
    fake_yahoo.reset_yfinance()
    assert any(fake_yahoo.CHART in call for s in sessions for call in s.calls)
    assert ledger_path.read_bytes() == before
    assert (project / "live.yaml").read_text() == live
    assert not (project / "data").exists()  # no stage ran
