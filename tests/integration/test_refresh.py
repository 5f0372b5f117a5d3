"""The daily refresh end to end: real DVC, MLflow and SQLite on a CSV source, tiny params.

One scenario runs consecutive refreshes once per module; the tests read what it left: the
stages DVC ran each day, the ledger, its export. Faults (a kill in the ledger write, a
damaged or foreign ledger, an unreachable PostgreSQL, no network) get their own projects.
"""

from __future__ import annotations

import copy
import csv
import datetime as dt
import io
import re
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from crypto_forecast.data.synthetic import synthetic_prices
from tests.helpers import TINY_PARAMS, new_project, project_env, run

# 20 daily refreshes, then a replay of the same days, and the faults (~9 min on 2 cores): CI runs
# them (`pytest -m long`).
pytestmark = [pytest.mark.slow, pytest.mark.long]

FIRST = dt.date(2022, 12, 1)  # the first as-of day of the scenario
DAYS = 20
EVERY = 7  # refresh.retrain_every_days: retrains as of FIRST, FIRST+7, FIRST+14
REFRESH = ["python", "-m", "crypto_forecast", "refresh"]
EXPORT = ["python", "-m", "crypto_forecast", "ledger", "export"]


def write_yahoo_csv(path: Path, last: dt.date, scale_after: dt.date | None = None) -> pd.Series:
    """A Yahoo-format CSV (Date,Open,High,Low,Close,Adj Close,Volume) of the synthetic closes
    through `last`; closes after `scale_after` doubled."""
    close = synthetic_prices(dt.date(2022, 1, 1), last + dt.timedelta(days=1))["Close"]
    if scale_after is not None:
        close = close.where(close.index <= pd.Timestamp(scale_after), close * 2)
    frame = pd.DataFrame({"Open": close, "High": close * 1.01, "Low": close * 0.99,
                          "Close": close, "Adj Close": close, "Volume": 1_000_000})
    frame.to_csv(path, date_format="%Y-%m-%d", float_format="%.6f")
    return pd.read_csv(path, index_col="Date", parse_dates=["Date"])["Close"]


def csv_params(csv_path: str = "prices.csv") -> dict[str, Any]:
    params = copy.deepcopy(TINY_PARAMS)
    params["download"].update(source="csv", csv_path=csv_path, end="2023-06-01")
    params["refresh"]["retrain_every_days"] = EVERY
    return params


# The stages a refresh runs on its one ticker: every day, and on retrain days.
DAILY = ["download@ETH-USD", "preprocess@ETH-USD", "forecast@ETH-USD", "summary"]
RETRAIN = ["download@ETH-USD", "preprocess@ETH-USD", "train@ETH-USD", "evaluate@ETH-USD",
           "forecast@ETH-USD", "summary"]


def stages_ran(stdout: str) -> list[str]:
    return re.findall(r"^Running stage '([^']+)'", stdout, flags=re.M)


@dataclass
class Scenario:
    project: Path
    env: dict[str, str]
    closes: pd.Series
    days: list[dt.date]
    ran: dict[dt.date, list[str]]
    seconds: dict[dt.date, float]

    def export(self, *extra: str) -> list[dict[str, str]]:
        result = run([*EXPORT, *extra], self.project, self.env)
        assert result.returncode == 0, result.stderr
        return list(csv.DictReader(io.StringIO(result.stdout)))


@pytest.fixture(scope="module")
def scenario(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scenario]:
    base = tmp_path_factory.mktemp("refresh")
    project = new_project(base / "project", csv_params())
    closes = write_yahoo_csv(project / "prices.csv", dt.date(2023, 1, 31))
    env = project_env(project, base / "store")
    days = [FIRST + dt.timedelta(days=i) for i in range(DAYS)]
    ran, seconds = {}, {}
    for day in days:
        started = dt.datetime.now()
        result = run([*REFRESH, "--as-of", day.isoformat()], project, env)
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
        ran[day] = stages_ran(result.stdout)
        seconds[day] = (dt.datetime.now() - started).total_seconds()
    yield Scenario(project, env, closes, days, ran, seconds)


def test_retrains_exactly_on_the_due_days(scenario: Scenario) -> None:
    for i, day in enumerate(scenario.days):
        if i % EVERY == 0:
            assert scenario.ran[day] == RETRAIN
        else:  # the cut stands still: DVC itself skips train and evaluate
            assert scenario.ran[day] == DAILY, day
    with sqlite3.connect(scenario.project / "ledger.db") as conn:
        rows = conn.execute("select as_of, retrained, trained_through, stages from refreshes "
                            "order by as_of").fetchall()
    assert [r[0] for r in rows] == [d.isoformat() for d in scenario.days]
    assert [bool(r[1]) for r in rows] == [i % EVERY == 0 for i in range(DAYS)]
    # The training cut is the last close seen on each retrain day, and stays until the next.
    cuts = [scenario.days[i - i % EVERY] - dt.timedelta(days=1) for i in range(DAYS)]
    assert [r[2] for r in rows] == [c.isoformat() for c in cuts]
    assert [r[3].split(",") for r in rows] == [scenario.ran[d] for d in scenario.days]


def test_one_first_forecast_per_origin_and_horizon(scenario: Scenario) -> None:
    rows = scenario.export()
    keys = [(r["origin"], r["horizon"]) for r in rows if r["revision"] == "0"]
    assert len(keys) == len(set(keys)) == DAYS * TINY_PARAMS["forecast"]["horizon"]
    origins = sorted({r["origin"] for r in rows})
    assert origins == [(d - dt.timedelta(days=1)).isoformat() for d in scenario.days]
    for r in rows:
        origin = dt.date.fromisoformat(r["origin"])
        assert dt.date.fromisoformat(r["target_date"]) == origin + dt.timedelta(days=int(r["horizon"]))
        assert float(r["lower_95"]) <= float(r["lower_80"]) <= float(r["forecast"]) \
            <= float(r["upper_80"]) <= float(r["upper_95"])
        assert r["served"] in {"lstm", "naive"} and re.fullmatch(r"[0-9a-f]{32}", r["run_id"])


def test_exported_actuals_are_the_csv_closes(scenario: Scenario) -> None:
    rows = scenario.export("--ticker", "ETH-USD")
    last_seen = scenario.days[-1] - dt.timedelta(days=1)
    filled = 0
    for r in rows:
        target = dt.date.fromisoformat(r["target_date"])
        if target <= last_seen:
            assert float(r["actual"]) == pytest.approx(
                float(scenario.closes[pd.Timestamp(target)]), rel=1e-9)
            filled += 1
        else:  # not seen by any refresh yet: empty, not a guess
            assert r["actual"] == ""
    assert filled > 0
    assert scenario.export("--ticker", "BTC-USD") == []


def test_export_to_a_file_in_column_order(scenario: Scenario) -> None:
    out = scenario.project / "export.csv"
    result = run([*EXPORT, "--csv", str(out)], scenario.project, scenario.env)
    assert result.returncode == 0, result.stderr
    header = out.read_text().splitlines()[0]
    assert header == ("ticker,origin,target_date,horizon,forecast,lower_80,upper_80,lower_95,"
                      "upper_95,served,model_version,run_id,revision,actual")


def test_the_report_says_when_trained_and_made(scenario: Scenario) -> None:
    md = (scenario.project / "reports" / "ETH-USD" / "forecast.md").read_text()
    last = scenario.days[-1]
    cut = scenario.days[(DAYS - 1) - (DAYS - 1) % EVERY] - dt.timedelta(days=1)
    assert (f"Forecast made on {last} from the closes through {last - dt.timedelta(days=1)}; "
            f"models trained through {cut}") in md


def test_a_second_refresh_for_the_same_day_runs_and_writes_nothing(scenario: Scenario) -> None:
    db = scenario.project / "ledger.db"
    before = db.read_bytes()
    live = (scenario.project / "live.yaml").read_text()
    result = run([*REFRESH, "--as-of", scenario.days[-1].isoformat()], scenario.project,
                 scenario.env)
    assert result.returncode == 0, result.stderr
    assert stages_ran(result.stdout) == []
    assert "nothing written" in result.stderr
    assert db.read_bytes() == before
    assert (scenario.project / "live.yaml").read_text() == live


def test_an_earlier_day_is_refused_in_one_line(scenario: Scenario) -> None:
    db = scenario.project / "ledger.db"
    before = db.read_bytes()
    result = run([*REFRESH, "--as-of", scenario.days[2].isoformat()], scenario.project,
                 scenario.env)
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if "ERROR" in line]
    assert len(errors) == 1 and "before the ledger's last refresh" in errors[0], result.stderr
    assert "Traceback" not in result.stderr and stages_ran(result.stdout) == []
    assert db.read_bytes() == before


def test_closes_after_the_origin_change_nothing(scenario: Scenario, tmp_path: Path) -> None:
    """The forecast for origin D from a CSV whose closes after D are doubled is the same."""
    day = scenario.days[0]
    project = new_project(tmp_path / "project", csv_params())
    write_yahoo_csv(project / "prices.csv", dt.date(2023, 1, 31),
                    scale_after=day - dt.timedelta(days=1))
    env = project_env(project, tmp_path / "store")
    result = run([*REFRESH, "--as-of", day.isoformat()], project, env)
    assert result.returncode == 0, result.stderr[-3000:]
    changed = run([*EXPORT], project, env)
    theirs = list(csv.DictReader(io.StringIO(changed.stdout)))
    ours = [r for r in scenario.export() if r["origin"] == theirs[0]["origin"]]
    columns = ["target_date", "forecast", "lower_80", "upper_80", "lower_95", "upper_95", "served"]
    assert [[r[c] for c in columns] for r in theirs] == [[r[c] for c in columns] for r in ours]


KILL_IN_LEDGER_WRITE = """
import os, signal, sys
import sqlalchemy as sa
from crypto_forecast.live import ledger as L
from crypto_forecast.__main__ import main
def kill(conn, clauseelement, *args):
    if getattr(clauseelement, "table", None) is L.closes_table:
        os.kill(os.getpid(), signal.SIGKILL)  # the forecast rows are in, not committed
sa.event.listen(sa.Engine, "before_execute", kill)
main(["refresh", "--as-of", sys.argv[1]])
"""


def test_a_refresh_killed_in_its_ledger_write_loses_nothing(scenario: Scenario) -> None:
    """Last in this module: it adds a day."""
    day = scenario.days[-1] + dt.timedelta(days=1)
    db = scenario.project / "ledger.db"

    def counts() -> tuple[int, int, int]:
        with sqlite3.connect(db) as conn:  # a reader rolls a hot journal back first
            f, c, r = (int(conn.execute(f"select count(*) from {t}").fetchone()[0])  # noqa: S608
                       for t in ("forecasts", "closes", "refreshes"))
        return f, c, r

    before = counts()
    killed = run(["python", "-c", KILL_IN_LEDGER_WRITE, day.isoformat()], scenario.project,
                 scenario.env)
    assert killed.returncode == -9, killed.stderr[-2000:]
    retrain = DAYS % EVERY == 0
    assert stages_ran(killed.stdout) == (RETRAIN
                                         if retrain else DAILY)
    assert counts() == before
    rerun = run([*REFRESH, "--as-of", day.isoformat()], scenario.project, scenario.env)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert stages_ran(rerun.stdout) == []  # DVC finished before the kill: only the write is left
    rows = [r for r in scenario.export() if r["origin"] == (day - dt.timedelta(days=1)).isoformat()]
    assert [r["revision"] for r in rows] == ["0"] * TINY_PARAMS["forecast"]["horizon"]
    assert counts() == (before[0] + len(rows), before[1] + 1, before[2] + 1)


def test_replay_interrupted_and_resumed_equals_the_daily_refreshes(
        scenario: Scenario, tmp_path: Path) -> None:
    """`replay` over the scenario's days, stopped with Ctrl-C (SIGINT) after its second day and
    rerun, fills its own ledger with the forecasts the day-by-day refreshes recorded."""
    import signal
    import subprocess

    project = new_project(tmp_path / "project", csv_params())
    write_yahoo_csv(project / "prices.csv", dt.date(2023, 1, 31))
    env = project_env(project, tmp_path / "store")
    cmd = ["python", "-m", "crypto_forecast", "replay", "--from", scenario.days[0].isoformat(),
           "--to", scenario.days[-1].isoformat()]
    proc = subprocess.Popen(cmd, cwd=project, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    seen = []
    assert proc.stderr is not None
    for line in proc.stderr:
        seen.append(line)
        if f"[2/{DAYS}]" in line:
            proc.send_signal(signal.SIGINT)
            break
    proc.communicate(timeout=600)
    assert proc.returncode == 130, "".join(seen)
    resumed = run(cmd, project, env)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resuming: that ledger already holds" in resumed.stderr
    assert f"[1/{DAYS - 2}] {scenario.days[2]}" in resumed.stderr  # days 3.. only
    assert "# ETH-USD: track record of the served forecasts" in resumed.stdout
    assert not (project / "ledger.db").exists()  # never the live ledger
    replayed = run([*EXPORT, "--ledger", "ledger-replay.db"], project, env)
    theirs = list(csv.DictReader(io.StringIO(replayed.stdout)))
    ours = [r for r in scenario.export() if dt.date.fromisoformat(r["origin"]) < scenario.days[-1]]
    columns = ["origin", "target_date", "horizon", "forecast", "lower_80", "upper_80", "lower_95",
               "upper_95", "served", "revision", "actual"]
    assert len(theirs) == DAYS * TINY_PARAMS["forecast"]["horizon"]
    # The scenario has since seen more closes: compare the actuals the replay could know.
    assert [[r[c] for c in columns[:-1]] for r in theirs] == [[r[c] for c in columns[:-1]] for r in ours]


def test_after_an_alarm_the_next_refresh_retrains(tmp_path: Path) -> None:
    from crypto_forecast.live.ledger import Ledger, ledger_uri

    params = csv_params()
    params["refresh"]["retrain_every_days"] = 30
    project = new_project(tmp_path / "project", params)
    write_yahoo_csv(project / "prices.csv", dt.date(2023, 1, 31))
    env = project_env(project, tmp_path / "store")
    days = [FIRST + dt.timedelta(days=i) for i in range(4)]
    for day in days[:2]:  # a retrain, then a forecast-only day
        done = run([*REFRESH, "--as-of", day.isoformat()], project, env)
        assert done.returncode == 0, done.stderr[-3000:]
    assert stages_ran(done.stdout) == DAILY
    # The alarm as the second day's refresh notes it (the firing itself: test_track_record).
    with Ledger.open(ledger_uri(project / "ledger.db")) as ledger:
        ledger.record_alarm("ETH-USD", days[1], ["the 80 % band held 9 of the last 30 outcomes"])
    second = run([*REFRESH, "--as-of", days[2].isoformat()], project, env)
    assert second.returncode == 0, second.stderr[-3000:]
    assert stages_ran(second.stdout) == RETRAIN
    assert "retrain: yes — alarm: the 80 % band held 9" in second.stderr
    third = run([*REFRESH, "--as-of", days[3].isoformat()], project, env)
    assert stages_ran(third.stdout) == DAILY  # once, not daily


def test_an_alarm_is_a_warning_a_run_tag_and_exit_3(tmp_path: Path) -> None:
    """A ledger whose last 30 served forecasts were 20 % off (constructed), then a real
    refresh: the record it scores raises the alarm."""
    from crypto_forecast.live.ledger import (
        ForecastDay,
        Ledger,
        RefreshFacts,
        ServedForecast,
        ledger_uri,
    )

    project = new_project(tmp_path / "project", csv_params())
    closes = write_yahoo_csv(project / "prices.csv", dt.date(2023, 1, 31))
    env = project_env(project, tmp_path / "store")
    with Ledger.open(ledger_uri(project / "ledger.db")) as ledger:
        for i in range(32, 0, -1):
            origin = FIRST - dt.timedelta(days=i + 1)
            base = float(closes[pd.Timestamp(origin)]) * 1.2
            days = [ForecastDay(origin + dt.timedelta(days=h), h, base,
                                {"80": (base * 0.5, base * 1.5), "95": (base * 0.4, base * 1.6)})
                    for h in (1, 2, 3)]
            ledger.record(
                ServedForecast("ETH-USD", origin, origin + dt.timedelta(days=1), days, "naive",
                               "m", "1", "0" * 32, "", ""),
                [(d.date(), float(c)) for d, c in closes[:pd.Timestamp(origin)].items()],
                RefreshFacts("ETH-USD", origin + dt.timedelta(days=1), origin, origin, False,
                             "constructed", "", ()))
    result = run([*REFRESH, "--as-of", FIRST.isoformat()], project, env)
    assert result.returncode == 3, result.stderr[-3000:]
    warnings = [line for line in result.stderr.splitlines() if "WARNING ALARM ETH-USD:" in line]
    # Both cases fire: 20 % off persistence, and +-50 % bands that hold every outcome.
    assert any("above refresh.alarm_max_skill 1.25" in w for w in warnings), result.stderr[-2000:]
    assert any("band held 30 of the last 30 1-day outcomes" in w for w in warnings)
    assert all("the next refresh retrains it (exit 3)" in w for w in warnings)
    md = (project / "reports" / "ETH-USD" / "track_record.md").read_text()
    assert "**FIRED**" in md
    with sqlite3.connect(tmp_path / "store" / "mlflow.db") as conn:
        tags = conn.execute("select value from tags where key = 'live_alarm'").fetchall()
        live = {k for (k,) in conn.execute("select key from metrics where key like 'live_%'")}
    assert len(tags) == 1 and "alarm_max_skill" in tags[0][0]
    assert {"live_rmse", "live_skill_vs_persistence", "live_coverage_80"} <= live
    with sqlite3.connect(project / "ledger.db") as conn:
        assert conn.execute("select as_of from alarms").fetchall() == [(FIRST.isoformat(),)]


def test_a_portfolio_refresh_records_each_ticker_and_one_bad_one_spoils_no_other(
        tmp_path: Path) -> None:
    """Two tickers from a CSV folder: each forecast goes into the ledger under its own symbol.
    Then BTC's CSV is gone: ETH's forecast for that day is still recorded whole, BTC's is not,
    and the refresh exits 1 with one line naming BTC and the cause."""
    params = csv_params()
    params["download"].update(tickers=["ETH-USD", "BTC-USD"], csv_path=None, csv_dir="prices")
    project = new_project(tmp_path / "project", params)
    write_yahoo_csv(project / "prices" / "ETH-USD.csv", dt.date(2023, 1, 31))
    write_yahoo_csv(project / "prices" / "BTC-USD.csv", dt.date(2023, 1, 31))
    env = project_env(project, tmp_path / "store")
    day = dt.date(2022, 12, 1)
    first = run([*REFRESH, "--as-of", day.isoformat()], project, env)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    rows = list(csv.DictReader(io.StringIO(run(EXPORT, project, env).stdout)))
    horizon = TINY_PARAMS["forecast"]["horizon"]
    assert sorted({r["ticker"] for r in rows}) == ["BTC-USD", "ETH-USD"]
    assert len(rows) == 2 * horizon
    for ticker in ("ETH-USD", "BTC-USD"):
        served = pd.read_csv(project / "reports" / ticker / "forecast.csv")
        mine = [float(r["forecast"]) for r in rows if r["ticker"] == ticker]
        assert mine == pytest.approx(served["forecast"].tolist(), abs=1e-4)
        assert (project / "reports" / ticker / "track_record.md").exists()

    (project / "prices" / "BTC-USD.csv").unlink()
    nxt = day + dt.timedelta(days=1)
    second = run([*REFRESH, "--as-of", nxt.isoformat()], project, env)
    assert second.returncode == 1, second.stdout[-3000:] + second.stderr[-3000:]
    assert "Traceback" not in second.stdout + second.stderr
    last = [line for line in second.stderr.splitlines() if " ERROR " in line][-1]
    assert "refresh" in last.split()[1] and "BTC-USD in download@BTC-USD" in last, last
    assert "prices/BTC-USD.csv does not exist" in last and "ETH-USD recorded" in last, last
    rows = list(csv.DictReader(io.StringIO(run(EXPORT, project, env).stdout)))
    origin = (nxt - dt.timedelta(days=1)).isoformat()
    assert len([r for r in rows if r["ticker"] == "ETH-USD" and r["origin"] == origin]) == horizon
    assert not [r for r in rows if r["ticker"] == "BTC-USD" and r["origin"] == origin]
    with sqlite3.connect(project / "ledger.db") as db:
        refreshed = db.execute("select ticker from refreshes where as_of = ?",
                               (nxt.isoformat(),)).fetchall()
    assert refreshed == [("ETH-USD",)]
