"""Team-server failures give one clear line and lose nothing: the MLflow server restarted
(same URI, every run still there, the next training logs fine), then PostgreSQL stopped
(training, a sweep and a tuning study each fail with one ERROR line, no traceback, no
half outputs) and started again with every earlier run intact."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from crypto_forecast.team import server as team_server
from tests.helpers import run
from tests.integration.conftest import Shared

pytestmark = [pytest.mark.slow, pytest.mark.long]

EXPERIMENT = "team-failures"


def _one_error(output: str) -> str:
    errors = [line for line in output.splitlines() if " ERROR " in line]
    assert len(errors) == 1, output[-3000:]
    assert "Traceback" not in output, output[-3000:]
    return errors[0]


def _run_ids(url: str) -> dict[str, str]:
    import mlflow

    client = mlflow.MlflowClient(url)
    exp = client.get_experiment_by_name(EXPERIMENT)
    return {} if exp is None else {r.info.run_id: r.info.status  # training runs, not folds
                                   for r in client.search_runs([exp.experiment_id])
                                   if "mlflow.parentRunId" not in r.data.tags}


def test_server_restart_and_postgres_outage(shared: Callable[[str], Shared]) -> None:
    team = shared(EXPERIMENT)
    server = team.server
    clone = team.clone("worker")
    env = team.env(clone)
    for stage in ("download", "preprocess"):
        assert run(["python", "-m", f"stages.{stage}"], clone, env).returncode == 0

    # MLflow server restarted: same URI, and the next run logs into it.
    team_server._stop_mlflow(server)
    restarted = team_server.start(Path(server.dir))
    assert restarted.tracking_uri == server.tracking_uri
    trained = run(["python", "-m", "stages.train"], clone, env)
    assert trained.returncode == 0, trained.stderr[-3000:]
    run_id = json.loads((clone / "models/ETH-USD/train_info.json").read_text())["run_id"]
    before = _run_ids(server.tracking_uri)
    assert before == {run_id: "FINISHED"}

    team_server.stop_postgres(server)
    try:
        failed = run(["python", "-m", "stages.train"], clone, env, timeout=300)
        assert failed.returncode != 0
        assert "MLflow" in _one_error(failed.stderr)
        # The earlier model stays: nothing replaced, nothing half-written.
        assert json.loads((clone / "models/ETH-USD/train_info.json").read_text())["run_id"] == run_id

        tuned = run(["python", "-m", "crypto_forecast.team.tune", "--trials", "1", "--no-push",
                     "--storage", server.db_url("optuna")], clone, env, timeout=120)
        assert tuned.returncode != 0
        assert "cannot open the Optuna storage" in _one_error(tuned.stderr)

        assert run(["git", "checkout", "--", "."], clone, env).returncode == 0
        swept = run(["python", "-m", "crypto_forecast.team.sweep", "--grid", "train.seed=8",
                     "-j", "1", "--no-push"], clone, env, timeout=600)
        assert swept.returncode != 0
        line = _one_error(swept.stderr)
        assert "1 of 1 experiments failed" in line and "dvc queue logs" in line
    finally:
        team_server.start(Path(server.dir))  # the session's other tests need it back
    assert _run_ids(server.tracking_uri) == before  # nothing lost, nothing half-written
