"""The team loop on loopback: a real Postgres-backed `mlflow server`, a bare git remote, a
folder DVC remote. Two worker clones each run their slice of a 2×2 `make sweep` and push;
a third clone pulls and gets every experiment's exact outputs and metrics without training,
and the server holds all four runs with their DVC tags and model versions."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import run
from tests.integration.conftest import Shared, finish, popen

pytestmark = [pytest.mark.slow, pytest.mark.long]

GRID = "train.units=[32,32],[50,50] train.learning_rate=0.001,0.003"
EXPERIMENT = "team-sweep"


def _experiments(clone: Path, env: dict[str, str]) -> dict[str, dict[str, Any]]:
    """`dvc exp show --json` -> {name: {"params": train params, "metrics": metrics.json}}."""
    shown = run(["dvc", "exp", "show", "--json"], clone, env)
    assert shown.returncode == 0, shown.stderr
    found = {}
    for commit in json.loads(shown.stdout):
        for exp in commit.get("experiments") or []:
            for rev in exp.get("revs", []):
                if rev.get("name"):
                    data = rev["data"]
                    found[rev["name"]] = {
                        "train": data["params"]["params.yaml"]["data"]["train"],
                        "metrics": data["metrics"]["reports/metrics.json"]["data"]}
    return found


def _drop_nulls(doc: Any) -> Any:
    """`dvc exp show --json` leaves out null metrics; compare files the same way."""
    if isinstance(doc, dict):
        return {k: _drop_nulls(v) for k, v in doc.items() if v is not None}
    return doc


def test_sweep_over_two_workers_shared_with_a_third_clone(shared: Callable[[str], Shared]) -> None:
    team = shared(EXPERIMENT)
    workers = {k: team.clone(f"worker{k}") for k in (1, 2)}
    procs = {k: popen(["make", "sweep", f"GRID={GRID}", f"WORKER={k}/2", "JOBS=1"], clone,
                      team.env(clone), clone.parent / f"worker{k}.log")
             for k, clone in workers.items()}
    logs = {k: finish(p, workers[k].parent / f"worker{k}.log") for k, p in procs.items()}
    for k, proc in procs.items():
        assert proc.returncode == 0, logs[k][-3000:]

    ran = {k: _experiments(clone, team.env(clone)) for k, clone in workers.items()}
    assert len(ran[1]) == len(ran[2]) == 2 and not set(ran[1]) & set(ran[2])
    points = {(tuple(e["train"]["units"]), e["train"]["learning_rate"])
              for r in ran.values() for e in r.values()}
    assert points == {((u, u), lr) for u in (32, 50) for lr in (0.001, 0.003)}  # 4 distinct
    by_name = {**ran[1], **ran[2]}

    # The third clone: pull, see all four, apply two and get their exact outputs.
    third = team.clone("third")
    env = team.env(third)
    pulled = run(["dvc", "exp", "pull", "origin", *by_name], third, env)
    assert pulled.returncode == 0, pulled.stderr
    seen = _experiments(third, env)
    assert set(seen) == set(by_name)
    for name in by_name:
        assert seen[name]["metrics"] == by_name[name]["metrics"]
    for name in sorted(by_name)[:2]:
        for cmd in (["dvc", "exp", "apply", name], ["dvc", "pull"]):
            done = run(cmd, third, env)
            assert done.returncode == 0, (cmd, done.stderr)
        got = json.loads((third / "reports/metrics.json").read_text())
        assert _drop_nulls(got) == by_name[name]["metrics"]
        status = run(["dvc", "status", "--json"], third, env)
        assert json.loads(status.stdout) == {}, status.stdout  # outputs match: nothing to rerun
        assert (third / "models/ETH-USD/model.keras").is_file()
    assert not (third / "mlflow.db").exists()  # nothing trained or logged here

    # Every run is in the one server, tagged with its experiment, with a model version.
    import mlflow

    client = mlflow.MlflowClient(team.server.tracking_uri)
    exp = client.get_experiment_by_name(EXPERIMENT)
    assert exp is not None
    runs = [r for r in client.search_runs([exp.experiment_id])
            if "mlflow.parentRunId" not in r.data.tags]  # training runs, not their folds
    assert len(runs) == 4, "the third clone trained or a run is missing"
    assert {r.data.tags["dvc_exp_name"] for r in runs} == set(by_name)
    assert {r.info.status for r in runs} == {"FINISHED"}
    versions = client.search_model_versions("name='eth-usd-lstm'")
    assert {r.info.run_id for r in runs} <= {v.run_id for v in versions}
    applied = json.loads((third / "models/ETH-USD/train_info.json").read_text())
    assert applied["run_id"] in {r.info.run_id for r in runs}
    champion = client.get_model_version_by_alias("eth-usd-lstm", "candidate")
    assert champion.run_id in {v.run_id for v in versions}  # one registry, shared aliases
