"""The ledger on a real SQLite file: revisions, closes, export, one transaction per refresh,
and one clear error for a damaged, foreign or newer database."""

from __future__ import annotations

import csv
import datetime as dt
import io
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from crypto_forecast.errors import LedgerError
from crypto_forecast.live import ledger as ledger_mod
from crypto_forecast.live.ledger import (
    EXPORT_COLUMNS,
    ForecastDay,
    Ledger,
    RefreshFacts,
    ServedForecast,
    ledger_uri,
)

D0 = dt.date(2023, 12, 1)


def served(origin: dt.date, level: float = 100.0, run_id: str = "a" * 32, horizon: int = 3,
           ticker: str = "ETH-USD") -> ServedForecast:
    days = [ForecastDay(origin + dt.timedelta(days=h), h, level + h,
                        {"80": (level + h - 5, level + h + 5), "95": (level + h - 9, level + h + 9)})
            for h in range(1, horizon + 1)]
    return ServedForecast(ticker=ticker, origin=origin, as_of=origin + dt.timedelta(days=1),
                          days=days, served="naive", model_name="ETH-USD-lstm-network",
                          model_version="1", run_id=run_id, data_sha256="f" * 64,
                          git_commit="c" * 40)


def facts(origin: dt.date, ticker: str = "ETH-USD", retrained: bool = False) -> RefreshFacts:
    return RefreshFacts(ticker=ticker, as_of=origin + dt.timedelta(days=1), origin=origin,
                        trained_through=D0, retrained=retrained, reason="test",
                        params_digest="p" * 16, stages=("download", "preprocess", "forecast"))


def closes(first: dt.date, n: int, base: float = 90.0) -> list[tuple[dt.date, float]]:
    return [(first + dt.timedelta(days=i), base + i) for i in range(n)]


def export(ledger: Ledger, ticker: str | None = None) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(ledger.export_csv(ticker))))


def count(path: Path, table: str) -> int:
    with sqlite3.connect(path) as conn:
        return int(conn.execute(f"select count(*) from {table}").fetchone()[0])  # noqa: S608


def test_first_forecast_is_revision_0_and_a_repeat_writes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "ledger.db"
    with Ledger.open(ledger_uri(path)) as ledger:
        first = ledger.record(served(D0), closes(D0 - dt.timedelta(days=9), 10), facts(D0))
        assert (first.revision, first.new_closes) == (0, 10)
        again = ledger.record(served(D0), closes(D0 - dt.timedelta(days=9), 10), facts(D0))
        assert again.nothing
    assert count(path, "forecasts") == 3
    assert count(path, "refreshes") == 1


def test_a_different_forecast_for_the_same_origin_is_a_revision(tmp_path: Path) -> None:
    with Ledger.open(ledger_uri(tmp_path / "ledger.db")) as ledger:
        ledger.record(served(D0), [], facts(D0))
        rev = ledger.record(served(D0, level=200.0, run_id="b" * 32), [], facts(D0))
        assert rev.revision == 1
        rows = export(ledger)
    assert [r["revision"] for r in rows] == ["0"] * 3 + ["1"] * 3
    # The first forecast is never rewritten.
    assert [float(r["forecast"]) for r in rows[:3]] == [101.0, 102.0, 103.0]
    assert [float(r["forecast"]) for r in rows[3:]] == [201.0, 202.0, 203.0]


def test_export_columns_and_actuals(tmp_path: Path) -> None:
    with Ledger.open(ledger_uri(tmp_path / "ledger.db")) as ledger:
        ledger.record(served(D0), closes(D0 - dt.timedelta(days=2), 3), facts(D0))
        text = ledger.export_csv()
        assert text.splitlines()[0] == ",".join(EXPORT_COLUMNS)
        assert [r["actual"] for r in export(ledger)] == ["", "", ""]
        # A later refresh sees the closes of the first two target days.
        later = D0 + dt.timedelta(days=2)
        ledger.record(served(later), closes(D0 + dt.timedelta(days=1), 2, base=500.0),
                      facts(later))
        rows = [r for r in export(ledger) if r["origin"] == D0.isoformat()]
    assert [r["actual"] for r in rows] == ["500.0", "501.0", ""]
    assert rows[0]["target_date"] == "2023-12-02" and rows[0]["horizon"] == "1"
    assert (rows[0]["lower_80"], rows[0]["upper_95"]) == ("96.0", "110.0")


def test_first_close_seen_is_kept(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with Ledger.open(ledger_uri(tmp_path / "ledger.db")) as ledger:
        ledger.record(served(D0), [(D0, 100.0)], facts(D0))
        later = D0 + dt.timedelta(days=1)
        ledger.record(served(later), [(D0, 150.0), (later, 101.0)], facts(later))
    with sqlite3.connect(tmp_path / "ledger.db") as conn:
        assert conn.execute("select close from closes where date = ?",
                            (D0.isoformat(),)).fetchone()[0] == 100.0
    assert "the ledger kept 100" in caplog.text


def test_export_filters_by_ticker(tmp_path: Path) -> None:
    with Ledger.open(ledger_uri(tmp_path / "ledger.db")) as ledger:
        ledger.record(served(D0), [], facts(D0))
        ledger.record(served(D0, ticker="BTC-USD"), [], facts(D0, ticker="BTC-USD"))
        assert {r["ticker"] for r in export(ledger, "BTC-USD")} == {"BTC-USD"}
        assert len(export(ledger)) == 6


def test_interrupted_write_leaves_the_ledger_as_it_was(tmp_path: Path) -> None:
    path = tmp_path / "ledger.db"
    with Ledger.open(ledger_uri(path)) as ledger:
        ledger.record(served(D0), closes(D0, 1), facts(D0))
        later = D0 + dt.timedelta(days=1)

        def stop_after_forecasts(conn: sa.Connection, clauseelement: object, *args: object) -> None:
            if getattr(clauseelement, "table", None) is ledger_mod.closes_table:
                raise KeyboardInterrupt  # Ctrl-C between the forecast rows and the closes

        sa.event.listen(ledger._engine, "before_execute", stop_after_forecasts)
        with pytest.raises(KeyboardInterrupt):
            ledger.record(served(later), closes(later, 1), facts(later))
        sa.event.remove(ledger._engine, "before_execute", stop_after_forecasts)
        assert (count(path, "forecasts"), count(path, "closes"), count(path, "refreshes")) == (3, 1, 1)
        assert ledger.record(served(later), closes(later, 1), facts(later)).revision == 0
    assert (count(path, "forecasts"), count(path, "closes"), count(path, "refreshes")) == (6, 2, 2)


KILL_MID_WRITE = """
import datetime as dt, os, signal, sys
import sqlalchemy as sa
from crypto_forecast.live import ledger as L
from tests.unit.test_ledger import served, facts, closes
day = dt.date.fromisoformat(sys.argv[2])
with L.Ledger.open(L.ledger_uri(sys.argv[1])) as led:
    def kill(conn, clauseelement, *args):
        if getattr(clauseelement, "table", None) is L.closes_table:
            os.kill(os.getpid(), signal.SIGKILL)  # the forecast rows are in, not committed
    sa.event.listen(led._engine, "before_execute", kill)
    led.record(served(day), closes(day, 1), facts(day))
"""


def test_killed_mid_write_loses_nothing(tmp_path: Path) -> None:
    path = tmp_path / "ledger.db"
    with Ledger.open(ledger_uri(path)) as ledger:
        ledger.record(served(D0), closes(D0, 1), facts(D0))
    later = D0 + dt.timedelta(days=1)
    root = Path(__file__).resolve().parents[2]
    proc = subprocess.run([sys.executable, "-c", KILL_MID_WRITE, str(path), later.isoformat()],
                          cwd=root, capture_output=True, text=True, timeout=120)
    assert proc.returncode == -9, proc.stderr
    assert (count(path, "forecasts"), count(path, "closes"), count(path, "refreshes")) == (3, 1, 1)
    with Ledger.open(ledger_uri(path)) as ledger:
        assert ledger.record(served(later), closes(later, 1), facts(later)).revision == 0
        assert len(export(ledger)) == 6


def test_foreign_sqlite_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "other.db"
    with sqlite3.connect(path) as conn:
        conn.execute("create table runs (id integer)")
    with pytest.raises(LedgerError, match=r"is not a crypto-forecast ledger \(it holds tables runs\)"):
        Ledger.open(ledger_uri(path))
    with sqlite3.connect(path) as conn:  # and left as it was
        assert [r[0] for r in conn.execute("select name from sqlite_master")] == ["runs"]


def test_damaged_file_is_one_error(tmp_path: Path) -> None:
    path = tmp_path / "ledger.db"
    path.write_bytes(os.urandom(4096))
    with pytest.raises(LedgerError, match=r"is not a readable SQLite ledger .* move it aside"):
        Ledger.open(ledger_uri(path))


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "ledger.db"
    Ledger.open(ledger_uri(path)).close()
    with sqlite3.connect(path) as conn:
        conn.execute("update ledger_info set value = '99' where key = 'schema_version'")
    with pytest.raises(LedgerError, match="schema version 99; this code reads version 1"):
        Ledger.open(ledger_uri(path))


def test_unreachable_postgres_is_one_error_without_the_password() -> None:
    with pytest.raises(LedgerError) as caught:
        Ledger.open("postgresql+psycopg://ledger:s3cret@127.0.0.1:9/ledger")
    message = str(caught.value)
    assert "cannot reach the ledger database" in message and "make team-server" in message
    assert "s3cret" not in message


def test_uri_from_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(ledger_mod.LEDGER_URI_ENV, f"sqlite:///{tmp_path}/team.db")
    assert ledger_uri() == f"sqlite:///{tmp_path}/team.db"
    assert ledger_uri(tmp_path / "x.db") == f"sqlite:///{tmp_path / 'x.db'}"
    monkeypatch.delenv(ledger_mod.LEDGER_URI_ENV)
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DVC_ROOT", raising=False)
    assert ledger_uri() == f"sqlite:///{tmp_path.resolve() / 'ledger.db'}"


@pytest.fixture(scope="module")
def good_ledger(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    path = tmp_path_factory.mktemp("ledger") / "ledger.db"
    with Ledger.open(ledger_uri(path)) as ledger:
        for i in range(5):
            day = D0 + dt.timedelta(days=i)
            ledger.record(served(day, level=100.0 + i), closes(day, 1), facts(day))
    return path.read_bytes()


def test_a_damaged_text_byte_is_one_error_line(good_ledger: bytes, tmp_path: Path) -> None:
    """Found by the property below: byte 0x80 inside a stored text value made sqlite3 raise
    UnicodeDecodeError while the rows were read."""
    damaged = bytearray(good_ledger)
    for offset in range(len(damaged) - 1, 0, -1):  # the last text byte of the last page
        if 0x41 <= damaged[offset] <= 0x7A:
            damaged[offset] = 0x80
            break
    path = tmp_path / "ledger.db"
    path.write_bytes(bytes(damaged))
    try:
        with Ledger.open(ledger_uri(path)) as ledger:
            export(ledger)
            ledger.refreshes()
    except LedgerError as exc:
        assert "\n" not in str(exc) and " — " in str(exc)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_generated_damage_is_an_error_line_or_a_readable_ledger(
        good_ledger: bytes, tmp_path_factory: pytest.TempPathFactory, data: st.DataObject) -> None:
    damaged = bytearray(good_ledger)
    cuts = data.draw(st.lists(st.tuples(st.integers(0, len(damaged) - 1), st.integers(0, 255)),
                              min_size=1, max_size=8))
    for offset, value in cuts:
        damaged[offset] = value
    truncate = data.draw(st.one_of(st.none(), st.integers(1, len(damaged))))
    if truncate is not None:
        del damaged[truncate:]
    if bytes(damaged) == good_ledger:
        return
    path = tmp_path_factory.mktemp("damaged") / "ledger.db"
    path.write_bytes(bytes(damaged))
    try:
        with Ledger.open(ledger_uri(path)) as ledger:
            rows = export(ledger)
    except LedgerError as exc:
        assert "\n" not in str(exc) and " — " in str(exc)
        event("refused with one line")
        return
    event("read past the damage")
    # SQLite read past the damage (an unused byte, a page it did not need): what it read is
    # still export-shaped.
    assert all(set(r) == set(EXPORT_COLUMNS) for r in rows)
