"""MLflow faults: an unusable, read-only, locked or unreachable store is one line and a fast
failure; a run whose stage fails ends FAILED and Ctrl-C ends it KILLED (never RUNNING),
with the earlier model untouched and no half-written one; earlier runs are kept.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from crypto_forecast.errors import DataError
from tests.errors.conftest import (
    assert_no_temp_files,
    assert_one_line_error,
    copy_built,
    error_lines,
    new_project,
    params_with,
    snapshot,
    stage,
    start_and_signal,
    with_outputs,
)
from tests.helpers import project_env, top_runs_sql


def runs(store: Path) -> list[tuple[str, str]]:
    with sqlite3.connect(store / "mlflow.db") as db:
        return db.execute(top_runs_sql("run_uuid, status")).fetchall()


@pytest.fixture(scope="module")
def windows_ready(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A project with download and preprocess done: `train` reaches MLflow in seconds."""
    yield with_outputs(new_project(tmp_path_factory.mktemp("tracking") / "project"))


def test_unreachable_server_fails_fast(windows_ready: Path) -> None:
    env = {**project_env(windows_ready), "MLFLOW_TRACKING_URI": "http://127.0.0.1:9"}
    before = snapshot(windows_ready)
    started = time.monotonic()
    result = stage(windows_ready, "train", env)
    assert time.monotonic() - started < 90  # MLflow's own retries would take minutes
    assert_one_line_error(result, 1, "MLflow tracking server http://127.0.0.1:9 is unreachable",
                          "fix MLFLOW_TRACKING_URI, or unset it")
    assert snapshot(windows_ready) == before


def test_store_folder_cannot_be_created(windows_ready: Path) -> None:
    blocker = windows_ready.parent / "not-a-dir"
    blocker.write_text("a file where the store's folder should be")
    env = {**project_env(windows_ready),
           "MLFLOW_TRACKING_URI": f"sqlite:///{blocker}/store/mlflow.db"}
    before = snapshot(windows_ready)
    result = stage(windows_ready, "train", env)
    assert_one_line_error(result, 1, "cannot open the MLflow store", "make the folder writable")
    assert snapshot(windows_ready) == before


# --- in-process: how a run ends ------------------------------------------------------------

@pytest.fixture(scope="module")
def temp_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One fresh SQLite store for the in-process cases (creating one takes seconds)."""
    store = tmp_path_factory.mktemp("store")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{store / 'mlflow.db'}")
        yield store
        import mlflow

        while mlflow.active_run() is not None:
            mlflow.end_run()


@pytest.mark.parametrize(("raised", "status"), [
    (None, "FINISHED"),
    (DataError("bad data"), "FAILED"),
    (RuntimeError("a bug"), "FAILED"),
    (KeyboardInterrupt(), "KILLED"),
])
def test_stage_run_always_ends_the_run(temp_store: Path, raised: BaseException | None,
                                       status: str) -> None:
    from crypto_forecast.tracking import runs as tracking

    def body() -> None:
        with tracking.stage_run("tests"):
            if raised is not None:
                raise raised

    earlier = runs(temp_store) if (temp_store / "mlflow.db").exists() else []
    if raised is None:
        body()
    else:
        with pytest.raises(type(raised)):
            body()
    now = runs(temp_store)
    assert now[:-1] == earlier and now[-1][1] == status  # earlier runs kept as they were


# A stage whose work is a long sleep, to interrupt at a known point.
LONG_STAGE = """
import logging, time
from crypto_forecast.cli import run_stage
def main():
    logging.getLogger("stages.demo").info("working")
    time.sleep(120)
run_stage("demo", main)
"""


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_interrupt_or_terminate_is_one_line(tmp_path: Path, sig: int) -> None:
    env = {**project_env(tmp_path), "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    (tmp_path / "work").mkdir()
    code, stderr = start_and_signal([sys.executable, "-c", LONG_STAGE], tmp_path / "work", env,
                                    sig, after="working", timeout=60)
    assert code == 130 and "Traceback" not in stderr, stderr
    lines = error_lines(stderr)
    assert len(lines) == 1 and "interrupted; no output was replaced" in lines[0]


def test_a_bug_keeps_its_traceback(tmp_path: Path) -> None:
    """Only `PipelineError`s become one line; anything else is a bug and must show where."""
    bug = ("from crypto_forecast.cli import run_stage\n"
           "def main():\n    {}['missing']\n"
           "run_stage('demo', main)\n")
    env = {**project_env(tmp_path), "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    result = subprocess.run([sys.executable, "-c", bug], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert "Traceback" in result.stderr and "KeyError: 'missing'" in result.stderr


# --- against the built pipeline's store (slow) ----------------------------------------------

def _immutable(paths: list[Path], on: bool) -> bool:
    """chattr +i/-i: read-only even for root (chmod alone does not stop root)."""
    flag = "+i" if on else "-i"
    done = subprocess.run(["chattr", flag, *map(str, paths)], capture_output=True)
    return done.returncode == 0


@pytest.mark.slow
def test_read_only_store(built: tuple[Path, Path], tmp_path: Path) -> None:
    project, env = copy_built(built, tmp_path)
    store = tmp_path / "store"
    earlier = runs(store)
    paths = [store / "mlflow.db", store]
    for path in paths:
        path.chmod(0o555 if path.is_dir() else 0o444)
    if os.geteuid() == 0 and not _immutable(paths, on=True):
        # Root ignores file modes and chattr is refused (a default Docker container): open
        # the same store through SQLite's own read-only mode instead of skipping the case.
        env = {**env, "MLFLOW_TRACKING_URI":
               f"sqlite:///file:{store / 'mlflow.db'}?mode=ro&uri=true"}
    try:
        before = snapshot(project)
        result = stage(project, "train", env)
    finally:
        if os.geteuid() == 0:
            _immutable(paths, on=False)
        for path in paths:
            path.chmod(0o755 if path.is_dir() else 0o644)
    assert_one_line_error(result, 1, "attempt to write a readonly database",
                          "make the store file and its folder writable")
    assert snapshot(project) == before
    assert runs(store) == earlier


@pytest.mark.slow
def test_locked_store(built: tuple[Path, Path], tmp_path: Path) -> None:
    """Another process holds the SQLite write lock past MLflow's busy timeout."""
    project, env = copy_built(built, tmp_path)
    store = tmp_path / "store"
    earlier = runs(store)
    holder = sqlite3.connect(store / "mlflow.db", isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        before = snapshot(project)
        result = stage(project, "train", env)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert_one_line_error(result, 1, "database is locked", "another process holds mlflow.db")
    assert snapshot(project) == before
    assert runs(store) == earlier


@pytest.mark.slow
def test_ctrl_c_during_training_ends_killed_and_keeps_the_model(built: tuple[Path, Path],
                                                                 tmp_path: Path) -> None:
    project, env = copy_built(built, tmp_path)
    store = tmp_path / "store"
    earlier = runs(store)
    params = params_with(train__epochs=500, train__patience=500)
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    before = snapshot(project)
    assert "models/ETH-USD/model.keras" in before
    code, stderr = start_and_signal([sys.executable, "-m", "stages.train"], project, env,
                                    signal.SIGINT)
    assert code == 130, stderr[-3000:]
    assert "Traceback" not in stderr
    lines = error_lines(stderr)
    assert len(lines) == 1 and "interrupted; no output was replaced" in lines[0], stderr[-3000:]
    assert snapshot(project) == before  # the previous model, history and reports, unchanged
    assert_no_temp_files(project)
    now = runs(store)
    assert now[:-1] == earlier and now[-1][1] == "KILLED"
