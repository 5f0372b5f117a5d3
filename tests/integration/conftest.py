"""Fixtures of the team-mode tests: one real Postgres cluster + `mlflow server` for the
whole session, and a project shared through a bare git remote and a folder DVC remote."""

from __future__ import annotations

import copy
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from crypto_forecast.team import server as team
from tests.helpers import ROOT, TINY_PARAMS, new_project, project_env, run


@pytest.fixture(scope="session")
def team_server() -> Iterator[team.Server]:
    """PostgreSQL 15 + `mlflow server` on loopback ports, started by the project's own code.

    The folder is under /tmp, not pytest's 0700 tmp dir: the cluster runs as `postgres`."""
    base = Path(tempfile.mkdtemp(prefix="team-", dir="/tmp"))
    base.chmod(0o711)
    server = team.start(base / "team", mlflow_port=team.free_port())
    try:
        yield server
    finally:
        team.stop(base / "team")
        shutil.rmtree(base, ignore_errors=True)


@dataclass
class Shared:
    """A project pushed to a bare git remote with a folder DVC remote, and its clones."""

    base: Path
    remote: Path
    storage: Path
    server: team.Server

    def clone(self, name: str) -> Path:
        dest = self.base / name
        done = run(["git", "clone", "-q", "-b", "main", str(self.remote), str(dest)], self.base,
                   project_env(self.base))
        assert done.returncode == 0, done.stderr
        (dest / ".venv").symlink_to(ROOT / ".venv")  # `make` targets find the installed venv
        return dest

    def env(self, clone: Path) -> dict[str, str]:
        env = project_env(clone)
        env["MLFLOW_TRACKING_URI"] = self.server.tracking_uri
        env["PGPASSFILE"] = str(self.server.pgpass)
        env.pop("OPTUNA_STORAGE", None)
        return env


@pytest.fixture
def shared(tmp_path: Path, team_server: team.Server) -> Callable[[str], Shared]:
    """`shared(experiment)`: a fresh shared project logging to MLflow experiment `experiment`."""

    def make(experiment: str) -> Shared:
        params = copy.deepcopy(TINY_PARAMS)
        params["mlflow"]["experiment"] = experiment
        seed = new_project(tmp_path / "seed", params)
        env = project_env(seed)
        storage, remote = tmp_path / "dvc-storage", tmp_path / "remote.git"
        for cmd in (["dvc", "remote", "add", "-d", "shared", str(storage)],
                    ["git", "commit", "-qam", "shared DVC remote"],
                    ["git", "init", "-q", "--bare", str(remote)],
                    ["git", "push", "-q", str(remote), "HEAD:refs/heads/main"]):
            done = subprocess.run(cmd, cwd=seed, env=env, capture_output=True, text=True)
            assert done.returncode == 0, (cmd, done.stderr)
        return Shared(tmp_path, remote, storage, team_server)

    return make


def popen(cmd: list[str], cwd: Path, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """Start a worker in its own process group, output to `log`."""
    with log.open("w") as out:
        return subprocess.Popen(cmd, cwd=cwd, env={**env, "PYTHONUNBUFFERED": "1"}, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)


def finish(proc: subprocess.Popen[bytes], log: Path, timeout: float = 900) -> str:
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, 9)
        raise
    return log.read_text()
