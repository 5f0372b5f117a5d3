"""Queued DVC experiments run two at a time (`dvc queue start -j 2`) from a fresh clone
with no MLflow store yet: both land as FINISHED runs in the repo's own `mlflow.db` (not
in the temp copies DVC deletes), tagged so `dvc exp show` rows and MLflow runs match both
ways, each with the parameter count of its own network. Slow: two real pipeline runs."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import project_env, run, top_runs_sql

pytestmark = [pytest.mark.slow, pytest.mark.long]

# LSTM(32, return_sequences) -> LSTM(32) -> Dense(1) on one feature:
# 4*32*(1+32+1) + 4*32*(32+32+1) + 33 = 4,352 + 8,320 + 33.
UNITS_32_PARAM_COUNT = 12_705
EXPERIMENTS = {"q-units32": ["-S", "train.units=[32,32]"], "q-epochs2": ["-S", "train.epochs=2"]}


def _wait_for_queue(project: Path, env: dict[str, str], timeout: float = 1200) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = run(["dvc", "queue", "status"], project, env)
        assert status.returncode == 0, status.stderr
        if not any(word in status.stdout for word in ("Queued", "Running")):
            return status.stdout
        time.sleep(3)
    raise AssertionError(f"queue still busy after {timeout} s:\n{status.stdout}")


def _shown_experiments(shown: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """`dvc exp show --json` -> {experiment name: its data (params, metrics)}."""
    found: dict[str, dict[str, Any]] = {}
    for commit in shown:
        for exp in commit.get("experiments") or []:
            for rev in exp.get("revs", []):
                if rev.get("name"):
                    found[rev["name"]] = rev["data"]
    return found


def test_two_queued_experiments_land_in_the_repo_store(project: Path) -> None:
    env = project_env(project)  # no MLFLOW_TRACKING_URI: the default store, <repo>/mlflow.db
    store = project / "mlflow.db"
    assert not store.exists()
    for name, args in EXPERIMENTS.items():
        queued = run(["dvc", "exp", "run", "--queue", "-n", name, *args], project, env, timeout=300)
        assert queued.returncode == 0, queued.stderr
    # The workers inherit the caller's stdout/stderr: capturing them would wait for the
    # workers to finish, so send them to a file.
    with (project.parent / "queue-start.log").open("w") as out:
        started = subprocess.run(["dvc", "queue", "start", "-j", "2"], cwd=project, env=env,
                                 stdout=out, stderr=subprocess.STDOUT, timeout=300)
    assert started.returncode == 0, (project.parent / "queue-start.log").read_text()
    try:
        status = _wait_for_queue(project, env)
    finally:  # never leave workers training in a deleted temp dir
        run(["dvc", "queue", "stop", "--kill"], project, env, timeout=120)
    assert status.count("Success") == 2, status

    with sqlite3.connect(store) as db:
        runs = db.execute(top_runs_sql("run_uuid, status")).fetchall()
        tags = {rid: dict(db.execute("select key, value from tags where run_uuid=?", (rid,)))
                for rid, _ in runs}
        counts = dict(db.execute("select run_uuid, value from latest_metrics where key='param_count'"))
        rmse = dict(db.execute("select run_uuid, value from latest_metrics where key='rmse_h1'"))
        versions = db.execute("select version, run_id from model_versions where name='eth-usd-lstm'"
                              ).fetchall()
        candidate = db.execute("select version from registered_model_aliases "
                               "where name='eth-usd-lstm' and alias='candidate'").fetchall()
    assert sorted(s for _, s in runs) == ["FINISHED", "FINISHED"]
    by_exp = {t["dvc_exp_name"]: rid for rid, t in tags.items()}
    assert set(by_exp) == set(EXPERIMENTS)
    commit = run(["git", "rev-parse", "HEAD"], project, env).stdout.strip()
    for t in tags.values():
        assert t["git_commit"] == commit
        assert len(t["params_hash"]) == 16 and len(t["data_sha256"]) == 64
        assert t["launched_by"] == "dvc exp run"
    assert tags[by_exp["q-units32"]]["params_hash"] != tags[by_exp["q-epochs2"]]["params_hash"]
    assert counts[by_exp["q-units32"]] == UNITS_32_PARAM_COUNT
    assert counts[by_exp["q-epochs2"]] == 30_651
    assert sorted(rid for _, rid in versions) == sorted(by_exp.values())
    assert len(candidate) == 1 and candidate[0][0] in {v for v, _ in versions}
    assert not list((project / ".dvc").rglob("mlflow.db")), "a run logged into a temp copy"
    networks = {p.parent.parent.name for p in (project / "mlartifacts").rglob("MLmodel")
                if "keras:" in p.read_text()}
    assert len(networks) == 2  # both networks, beside the repo's store (forecasters beside them)

    shown = run(["dvc", "exp", "show", "--json"], project, env)
    assert shown.returncode == 0, shown.stderr
    exps = _shown_experiments(json.loads(shown.stdout))
    for name, rid in by_exp.items():
        data = exps[name]
        metrics = data["metrics"]["reports/metrics.json"]["data"]
        assert metrics["param_count"] == counts[rid]
        assert metrics["rmse_h1"] == pytest.approx(rmse[rid])
    assert exps["q-units32"]["params"]["params.yaml"]["data"]["train"]["units"] == [32, 32]
