"""The team server's checks that need no cluster: a folder the `postgres` user cannot
enter is refused with the fix, and the exports name the server without its password."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from crypto_forecast.team import server as team
from crypto_forecast.team.dvc import TeamError


@pytest.mark.skipif(os.geteuid() != 0, reason="only root runs the cluster as `postgres`")
def test_closed_parent_is_refused_with_the_fix(tmp_path: Path) -> None:
    closed = tmp_path / "closed"
    closed.mkdir(mode=0o700)
    with pytest.raises(TeamError, match=r"chmod o\+x .*closed"):
        team.start(closed / "team")
    assert not (closed / "team").exists()  # refused before creating anything


def test_exports_carry_no_password(tmp_path: Path) -> None:
    server = team.Server(dir=str(tmp_path), pg_port=5999, mlflow_port=5123)
    (tmp_path / "pgpass").write_text("127.0.0.1:5999:*:team:s3cret\n")
    out = team.exports(server)
    assert "MLFLOW_TRACKING_URI=http://127.0.0.1:5123" in out
    assert "OPTUNA_STORAGE=postgresql+psycopg://team@127.0.0.1:5999/optuna" in out
    assert "CRYPTO_FORECAST_LEDGER_URI=postgresql+psycopg://team@127.0.0.1:5999/ledger" in out
    assert f"PGPASSFILE={tmp_path / 'pgpass'}" in out and "s3cret" not in out


def test_status_without_a_server_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]
                                             ) -> None:
    assert team.main(["status", "--dir", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("ERROR: no team server") and "make team-server" in err
