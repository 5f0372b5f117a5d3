"""An Optuna study in the team Postgres shared by worker clones: a worker SIGKILLed in the
middle of its trial leaves that trial FAIL (its MLflow run KILLED) and the study goes on;
two `make tune TRIALS=2` workers then add 4 trials = 4 DVC experiments (pushed) = 4 MLflow
runs, each trial's value the run's own skill metric."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable

import pytest

from tests.integration.conftest import Shared, finish, popen

pytestmark = [pytest.mark.slow, pytest.mark.long]

EXPERIMENT = "team-tune"
STUDY = "tiny-study"
FAST_STALE = "--heartbeat 1 --grace 4"


def test_two_workers_share_a_study_and_survive_a_killed_worker(
        shared: Callable[[str], Shared], monkeypatch: pytest.MonkeyPatch) -> None:
    import mlflow
    import optuna

    team = shared(EXPERIMENT)
    storage = team.server.db_url("optuna")
    monkeypatch.setenv("PGPASSFILE", str(team.server.pgpass))  # for this process's optuna/psycopg
    client = mlflow.MlflowClient(team.server.tracking_uri)

    doomed = team.clone("doomed")
    env = {**team.env(doomed), "OPTUNA_STORAGE": storage}
    proc = popen(["python", "-m", "crypto_forecast.team.tune", "--trials", "1", "--study", STUDY,
                  *FAST_STALE.split()], doomed, env, doomed.parent / "doomed.log")
    deadline = time.monotonic() + 300
    while True:  # kill it once its trial is training: the MLflow run is open
        exp = client.get_experiment_by_name(EXPERIMENT)
        if exp and client.search_runs([exp.experiment_id], "attributes.status = 'RUNNING'"):
            break
        assert proc.poll() is None, (doomed.parent / "doomed.log").read_text()[-3000:]
        assert time.monotonic() < deadline, "the first trial never started training"
        time.sleep(1)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()

    workers = [team.clone(f"tuner{k}") for k in (1, 2)]
    procs = [popen(["make", "tune", "TRIALS=2", f"STUDY={STUDY}", f"TUNE_ARGS={FAST_STALE}"], w,
                   {**team.env(w), "OPTUNA_STORAGE": storage}, w.parent / f"{w.name}.log")
             for w in workers]
    logs = [finish(p, w.parent / f"{w.name}.log") for p, w in zip(procs, workers, strict=True)]
    for p, log in zip(procs, logs, strict=True):
        assert p.returncode == 0, log[-3000:]
        assert "Traceback" not in log

    study = optuna.load_study(study_name=STUDY, storage=storage)
    states = sorted(t.state.name for t in study.trials)
    assert states == ["COMPLETE"] * 4 + ["FAIL"], states
    failed = next(t for t in study.trials if t.state == optuna.trial.TrialState.FAIL)
    assert failed.number == 0
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    names = {t.user_attrs["dvc_exp_name"] for t in complete}
    assert len(names) == 4

    exp = client.get_experiment_by_name(EXPERIMENT)
    assert exp is not None
    runs = {r.data.tags["dvc_exp_name"]: r for r in client.search_runs([exp.experiment_id])
            if "mlflow.parentRunId" not in r.data.tags}  # training runs, not their folds
    assert runs[failed.user_attrs["dvc_exp_name"]].info.status == "KILLED"
    for t in complete:
        got = runs[t.user_attrs["dvc_exp_name"]]
        assert got.info.status == "FINISHED"
        assert got.info.run_id == t.user_attrs["mlflow_run_id"]
        assert t.value == pytest.approx(got.data.metrics["skill_h1"])
        assert float(got.data.params["train.learning_rate"]) == pytest.approx(
            t.params["train.learning_rate"], rel=1e-5)

    refs = subprocess.run(["git", "ls-remote", str(team.remote), "refs/exps/*"],
                          capture_output=True, text=True, check=True).stdout
    pushed = {line.rsplit("/", 1)[-1] for line in refs.splitlines()}
    assert names <= pushed  # every finished trial's experiment reached the git remote
