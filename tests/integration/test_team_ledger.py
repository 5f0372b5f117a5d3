"""The ledger in team mode: the same code on the team PostgreSQL (started by `make
team-server`'s own code), a real refresh recorded there, and one error line when it is gone."""

from __future__ import annotations

import copy
import csv
import datetime as dt
import io
from pathlib import Path

import psycopg
import pytest

from crypto_forecast.team import server as team
from tests.helpers import TINY_PARAMS, new_project, project_env, run
from tests.integration.test_refresh import write_yahoo_csv

pytestmark = [pytest.mark.slow, pytest.mark.long]


def test_refresh_records_into_the_team_postgres(team_server: team.Server, tmp_path: Path) -> None:
    params = copy.deepcopy(TINY_PARAMS)
    params["download"].update(source="csv", csv_path="prices.csv")
    project = new_project(tmp_path / "project", params)
    closes = write_yahoo_csv(project / "prices.csv", dt.date(2023, 1, 31))
    env = {**project_env(project, tmp_path / "store"),
           "CRYPTO_FORECAST_LEDGER_URI": team_server.db_url("ledger"),
           "PGPASSFILE": str(team_server.pgpass)}
    for day in ("2022-12-01", "2022-12-02"):
        result = run(["python", "-m", "crypto_forecast", "refresh", "--as-of", day], project, env)
        assert result.returncode == 0, result.stderr[-3000:]
        assert "postgresql+psycopg://team@127.0.0.1" in result.stderr
    assert not (project / "ledger.db").exists()  # nothing went to the default SQLite file
    export = run(["python", "-m", "crypto_forecast", "ledger", "export"], project, env)
    rows = list(csv.DictReader(io.StringIO(export.stdout)))
    assert {r["origin"] for r in rows} == {"2022-11-30", "2022-12-01"}
    first = [r for r in rows if r["target_date"] == "2022-12-01"]
    assert float(first[0]["actual"]) == pytest.approx(float(closes["2022-12-01"]))
    # The rows are in PostgreSQL's own tables, read back with psycopg directly.
    with psycopg.connect(host="127.0.0.1", port=team_server.pg_port, user=team.DB_USER,
                         dbname="ledger", passfile=str(team_server.pgpass)) as conn:
        count = conn.execute("select count(*) from forecasts").fetchone()
        version = conn.execute("select value from ledger_info where key = 'schema_version'"
                               ).fetchone()
    assert count is not None and count[0] >= len(rows)
    assert version == ("1",)


def test_a_stopped_team_database_is_one_error_line(team_server: team.Server,
                                                    tmp_path: Path) -> None:
    port = team.free_port()  # nothing listens there: the team server as if stopped
    project = new_project(tmp_path / "project")
    env = {**project_env(project),
           "CRYPTO_FORECAST_LEDGER_URI": f"postgresql+psycopg://team@127.0.0.1:{port}/ledger",
           "PGPASSFILE": str(team_server.pgpass)}
    result = run(["python", "-m", "crypto_forecast", "ledger", "export"], project, env)
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if "ERROR" in line]
    assert len(errors) == 1 and "cannot reach the ledger database" in errors[0], result.stderr
    assert "make team-server" in errors[0] and "Traceback" not in result.stderr
