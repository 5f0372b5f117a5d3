"""Bad input and faults, second round (issue 14): one defence per class, each case one
ERROR line, a non-zero exit, no traceback, and nothing lost.

Fast cases run the real stage entry points in a fresh project; the ones that need a trained
model use the session's `built` pipeline (slow).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from crypto_forecast.errors import ConfigError, DataError, PipelineError, TrackingError
from tests.errors.conftest import (
    assert_one_line_error,
    copy_built,
    error_lines,
    params_with,
    snapshot,
    stage,
    with_outputs,
)
from tests.helpers import new_project, project_env, top_runs_sql, write_params

BOMB = """\
a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]
"""


def _runs(db: Path) -> list[tuple[str, str]]:
    with sqlite3.connect(db) as con:
        return con.execute(top_runs_sql("run_uuid, status")).fetchall()


@pytest.fixture(scope="module")
def fresh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A project with download and preprocess done (no model, no store)."""
    yield with_outputs(new_project(tmp_path_factory.mktemp("defences") / "project"))


# --- 1. tracking URIs -----------------------------------------------------------------------

@pytest.mark.parametrize(("uri", "words"), [
    ("http://[::1", ("is not a valid URL", "Invalid IPv6 URL")),
    ("http://127.0.0.1:99999", ("is not a valid URL", "Port out of range")),
    ("http://:5000", ("names no host",)),
    ("postgresql+pg8000://u:pw@127.0.0.1:5432/db", ("driver 'pg8000', which is not installed",
                                                   "pip install pg8000")),
    ("mysql+pymysql://u:pw@127.0.0.1/db", ("driver 'pymysql'", "pip install pymysql")),
    ("./mlruns", ("plain folder", "use sqlite:///")),
    ("sqlite://", ("not a SQLite file URI",)),
    ("sqlite:///:memory:", ("names no database file",)),
    ("ftp://example.org/store", ("unknown scheme 'ftp'",)),
    (" sqlite:///mlflow.db", ("contains spaces",)),
])
def test_bad_tracking_uri_is_one_line(uri: str, words: tuple[str, ...],
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    from crypto_forecast.tracking.store import tracking_uri

    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    with pytest.raises(TrackingError) as info:
        tracking_uri()
    for word in words:
        assert word in str(info.value)
    assert "\n" not in str(info.value)


def test_relative_sqlite_uri_is_anchored_at_the_project(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    from crypto_forecast.tracking.store import tracking_uri

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DVC_ROOT", raising=False)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:///mlflow.db")
    assert tracking_uri() == f"sqlite:///{tmp_path.resolve() / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:///sub/store.db?timeout=5")
    assert tracking_uri() == f"sqlite:///{tmp_path.resolve() / 'sub/store.db'}?timeout=5"
    absolute = f"sqlite:///{tmp_path / 'elsewhere.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", absolute)
    assert tracking_uri() == absolute


@pytest.mark.parametrize(("why", "fix"), [
    ("(sqlite3.OperationalError) database is locked", "another process holds mlflow.db"),
    ("(sqlite3.OperationalError) attempt to write a readonly database", "writable"),
    ("(sqlite3.DatabaseError) file is not a database", "damaged or not an MLflow store"),
    ("(sqlite3.OperationalError) no such table: experiments", "damaged or not an MLflow store"),
    ("Detected out-of-date database schema (found version x)", "mlflow db upgrade"),
    ('connection to server at "127.0.0.1", port 1 failed: Connection refused', "start the database"),
])
def test_store_errors_name_their_own_cause(why: str, fix: str) -> None:
    from sqlalchemy.exc import OperationalError

    from crypto_forecast.tracking.store import mlflow_errors

    with pytest.raises(TrackingError) as info, mlflow_errors("store X cannot be used", "GENERIC"):
        raise OperationalError("stmt", {}, Exception(why))
    assert fix in str(info.value) and "GENERIC" not in str(info.value)


def test_malformed_uri_in_train_is_one_line(fresh: Path) -> None:
    env = {**project_env(fresh), "MLFLOW_TRACKING_URI": "http://[::1"}
    before = snapshot(fresh)
    result = stage(fresh, "train", env)
    assert_one_line_error(result, 1, "MLFLOW_TRACKING_URI 'http://[::1' is not a valid URL")
    assert snapshot(fresh) == before


@pytest.mark.slow
@pytest.mark.long
def test_readme_relative_sqlite_uri_trains_on_a_fresh_store(fresh: Path, tmp_path: Path) -> None:
    project = tmp_path / "project"
    shutil.copytree(fresh, project, symlinks=True)
    env = {**project_env(project), "MLFLOW_TRACKING_URI": "sqlite:///mlflow.db"}
    result = stage(project, "train", env, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert [status for _, status in _runs(project / "mlflow.db")] == ["FINISHED"]
    assert (project / "mlartifacts").is_dir()


# --- 2. a moved or copied project ------------------------------------------------------------

def _artifact_files(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root)): p.stat().st_mtime_ns for p in root.rglob("*") if p.is_file()}


@pytest.mark.slow
@pytest.mark.long
def test_moved_store_writes_and_loads_where_it_now_is(built: tuple[Path, Path],
                                                       tmp_path: Path) -> None:
    """copy_built moves the store to a new folder: its recorded artifact root is stale."""
    _, old_store = built
    project, env = copy_built(built, tmp_path)
    new_store = tmp_path / "store"
    old_artifacts = _artifact_files(old_store / "mlartifacts")
    result = stage(project, "evaluate", env)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "the MLflow store was moved from" in result.stderr
    assert _artifact_files(old_store / "mlartifacts") == old_artifacts  # the old place untouched
    run_id = json.loads((project / "models/ETH-USD/train_info.json").read_text())["run_id"]
    assert (new_store / "mlartifacts" / run_id / "artifacts/reports/metrics.json").is_file()
    with sqlite3.connect(new_store / "mlflow.db") as db:
        locations = [row[0] for table, column in (("experiments", "artifact_location"),
                                                  ("runs", "artifact_uri"),
                                                  ("model_versions", "storage_location"))
                     for row in db.execute(f"select {column} from {table}")]  # noqa: S608
    assert locations and not [loc for loc in locations if str(old_store) in loc]

    promoted = subprocess.run([sys.executable, "-m", "stages.promote", "--model", "eth-usd-lstm",
                               "--version", "1"],
                              cwd=project, env=env, capture_output=True, text=True, timeout=300)
    assert promoted.returncode == 0, promoted.stderr[-2000:]
    load = ("import mlflow, sys; mlflow.set_tracking_uri(sys.argv[1]); "
            "m = mlflow.pyfunc.load_model('models:/eth-usd-lstm@champion'); print('LOADED')")
    loaded = subprocess.run([sys.executable, "-c", load, env["MLFLOW_TRACKING_URI"]],
                            cwd=project, env=env, capture_output=True, text=True, timeout=300)
    assert "LOADED" in loaded.stdout, loaded.stderr[-3000:]


@pytest.mark.slow
@pytest.mark.long
def test_store_moved_without_its_artifacts_is_one_line(built: tuple[Path, Path],
                                                       tmp_path: Path) -> None:
    project, env = copy_built(built, tmp_path)
    shutil.rmtree(tmp_path / "store" / "mlartifacts")
    before = snapshot(project)
    result = stage(project, "evaluate", env)
    assert_one_line_error(result, 1, "was moved or copied from", "without the mlartifacts/ folder",
                          "copy")
    assert snapshot(project) == before
    assert not (tmp_path / "store" / "mlartifacts").exists()


# --- 3. degenerate numbers ---------------------------------------------------------------------

def _frame(closes: list[float]) -> pd.DataFrame:
    index = pd.date_range("2022-01-01", periods=len(closes), freq="D", name="Date")
    return pd.DataFrame({"Close": np.asarray(closes, dtype=float)}, index=index)


def test_absurd_jump_warns_loudly_or_is_refused(caplog: pytest.LogCaptureFixture) -> None:
    from crypto_forecast.data.prices import validate_prices

    closes = [100.0 + i for i in range(40)]
    closes[20] = 1e12
    with caplog.at_level(logging.WARNING):
        validate_prices(_frame(closes), "x.csv", max_daily_move=10, on_jump="warn")
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("2 implausible daily move(s) of more than 10x" in m and "1e+12" in m
               for m in warned), warned
    with pytest.raises(DataError, match=r"implausible daily move.*raise download.max_daily_move"):
        validate_prices(_frame(closes), "x.csv", max_daily_move=10, on_jump="error")
    validate_prices(_frame([100.0 * 1.5**i for i in range(40)]), "ok", max_daily_move=10,
                    on_jump="error")  # steep but plausible


@pytest.mark.parametrize("value", [1e308, 1.7e308, 1e16, 1e-300, 5e-324])
def test_closes_beyond_any_price_are_refused(value: float) -> None:
    from crypto_forecast.data.prices import validate_prices

    closes = [100.0] * 40
    closes[10] = value
    with pytest.raises(DataError, match=r"outside 1e-09 \.\. 1e\+15 \(first: 2022-01-11"):
        validate_prices(_frame(closes), "x.csv")


def test_huge_close_in_csv_is_one_line(tmp_path: Path) -> None:
    project = new_project(tmp_path / "project")
    rows = "\n".join(f"2022-01-{d:02d},{1.7e308 if d == 15 else 100 + d}" for d in range(1, 32))
    (project / "prices.csv").write_text("Date,Close\n" + rows + "\n")
    write_params(project, params_with(download__source="csv", download__csv_path="prices.csv"))
    result = stage(project, "download", project_env(project))
    assert_one_line_error(result, 1, "outside 1e-09 .. 1e+15", "2022-01-15")
    assert not (project / "data").exists()


@pytest.mark.parametrize("value", [1.5e15, 1e308, 5e-10])
def test_an_edited_raw_file_with_absurd_closes_is_refused_by_both_readers(
        value: float, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from crypto_forecast.data.prices import MAX_CLOSE, MIN_CLOSE, read_price_csv, validate_prices
    from crypto_forecast.errors import ArtifactError
    from crypto_forecast.io.artifacts import read_raw

    assert not MIN_CLOSE <= value <= MAX_CLOSE
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data/ETH-USD/raw").mkdir(parents=True)
    rows = "\n".join(f"2022-01-{d:02d},{value if d == 9 else 100.0 + d}" for d in range(1, 32))
    (tmp_path / "data/ETH-USD/raw/ETH-USD.csv").write_text("Date,Close\n" + rows + "\n")
    with pytest.raises(DataError, match=r"outside 1e-09 \.\. 1e\+15"):
        validate_prices(read_price_csv(tmp_path / "data/ETH-USD/raw/ETH-USD.csv"), "x")
    with pytest.raises(ArtifactError, match=r"implausible \(outside 1e-09 \.\. 1e\+15\) rows"):
        read_raw("ETH-USD")


def test_require_finite_refuses_a_diverged_history() -> None:
    from crypto_forecast.model.training import require_finite

    class Model:
        def get_weights(self) -> list[np.ndarray]:
            return [np.ones(3), np.array([1.0, np.nan])]

    with pytest.raises(PipelineError, match=r"loss was nan at epoch 2.*lower train.learning_rate"):
        require_finite(Model(), {"loss": [0.1, float("nan")], "val_loss": [0.1, 0.2]})
    with pytest.raises(PipelineError, match="non-finite weights"):
        require_finite(Model(), {"loss": [0.1], "val_loss": [0.1]})


@pytest.mark.slow
@pytest.mark.long
def test_diverged_training_is_not_registered(fresh: Path, tmp_path: Path) -> None:
    project = tmp_path / "project"
    shutil.copytree(fresh, project, symlinks=True)
    write_params(project, params_with(train__learning_rate=1e30, train__epochs=3))
    env = project_env(project, tmp_path / "store")
    before = snapshot(project)
    result = stage(project, "train", env, timeout=600)
    assert_one_line_error(result, 1, "training diverged", "was not saved or registered",
                          "lower train.learning_rate")
    assert snapshot(project) == before
    with sqlite3.connect(tmp_path / "store" / "mlflow.db") as db:
        assert db.execute("select count(*) from model_versions").fetchone() == (0,)
        assert db.execute(top_runs_sql("status")).fetchall() == [("FAILED",)]


# --- 4. hostile params.yaml -----------------------------------------------------------------

def test_alias_bomb_is_refused_before_it_expands(tmp_path: Path) -> None:
    from crypto_forecast.params import load_params

    path = tmp_path / "params.yaml"
    path.write_text(BOMB)
    assert len(BOMB.encode()) < 400
    started = time.process_time()
    with pytest.raises(ConfigError, match="expands to more than 10,000 values"):
        load_params(path)
    assert time.process_time() - started < 1.0  # expanding it takes minutes and gigabytes


@pytest.mark.parametrize(("text", "words"), [
    (BOMB, ("expands to more than",)),
    ("a: &a [*a]\n", ("refers to itself",)),
    ("[" * 5000 + "]" * 5000 + "\n", ("nested",)),
    ("train:\n  seed: 1\n  \udcff\n", ("not UTF-8",)),
    ("# " + "x" * (1024 * 1024 + 10) + "\n", ("over 1024 KiB",)),
])
def test_hostile_params_file_is_one_line(tmp_path: Path, text: str, words: tuple[str, ...]) -> None:
    project = new_project(tmp_path / "project")
    (project / "params.yaml").write_bytes(text.encode("utf-8", "surrogateescape"))
    result = stage(project, "download", project_env(project))
    assert_one_line_error(result, 2, "params.yaml", *words)
    assert not (project / "data").exists()


# --- 5. values that pass validation, then crash ---------------------------------------------

@pytest.mark.parametrize(("override", "words"), [
    ({"train__seed": 2**32}, ("train.seed", "less than or equal to 4294967295")),
    ({"train__learning_rate": float("inf")}, ("train.learning_rate", "finite")),
    ({"train__units": [1] * 17}, ("at most 16 LSTM layers",)),
    ({"mlflow__experiment": "x" * 1000}, ("mlflow.experiment", "at most 256 characters")),
    ({"mlflow__experiment": " padded "}, ("mlflow.experiment", "leading or trailing")),
    ({"download__on_jump": "ignore"}, ("download.on_jump",)),
    ({"download__max_daily_move": 1}, ("download.max_daily_move",)),
])
def test_values_the_libraries_refuse_are_refused_first(override: dict[str, object],
                                                       words: tuple[str, ...]) -> None:
    from crypto_forecast.params import parse_params

    with pytest.raises(ConfigError) as info:
        parse_params(params_with(**override))
    for word in words:
        assert word in str(info.value)


def test_largest_seed_is_accepted() -> None:
    from crypto_forecast.params import parse_params

    assert parse_params(params_with(train__seed=2**32 - 1)).train.seed == 2**32 - 1


def test_oversized_network_is_refused_up_front_with_the_estimate(fresh: Path, tmp_path: Path) -> None:
    from crypto_forecast.model.training import available_memory_bytes, estimate_training_bytes

    assert estimate_training_bytes(60, (50, 50), 32) < 64 * 2**20  # the lecture's: tens of MB
    assert estimate_training_bytes(60, (5000,), 32) > 20 * 2**30  # the issue's: ~25 GiB
    have = available_memory_bytes()
    assert have is not None and have > 0
    project = tmp_path / "project"
    shutil.copytree(fresh, project, symlinks=True)
    write_params(project, params_with(train__units=[60000]))
    store = tmp_path / "store"
    before = snapshot(project)
    result = stage(project, "train", project_env(project, store))
    line = assert_one_line_error(result, 2, "train.units [60000]", "GiB to train",
                                 "GiB available here", "use fewer units")
    assert "needs about" in line
    assert snapshot(project) == before
    assert not (store / "mlflow.db").exists()  # refused before any run was opened


# --- 6. damaged or read-only files ------------------------------------------------------------

_MODEL = {"run_id": "0" * 32, "train_first": "2022-01-12", "train_last": "2022-08-24",
          "val_first": "2022-08-25", "val_last": "2022-10-18", "scaler_min": -0.1,
          "scaler_max": 0.1, "epochs_run": 1, "best_epoch": 1, "best_val_loss": 0.01,
          "train_seconds": 1.0}
TRAIN_INFO = {"schema_version": 2, "run_id": "0" * 32, "experiment_id": "1", "param_count": 30651,
              "epochs_run": 1, "best_epoch": 1, "best_val_loss": 0.01, "train_seconds": 1.0,
              "units": [50, 50], "window": 10, "target": "log_return",
              "registered_model": "eth-usd-lstm", "model_version": 1,
              "live": {**_MODEL, "name": "live", "path": "models/ETH-USD/model.keras", "cutoff": None},
              "folds": [{**_MODEL, "name": "fold_1", "path": "models/ETH-USD/folds/fold_1.keras",
                         "cutoff": "2022-10-19"}]}


@pytest.mark.parametrize(("damage", "words"), [
    ({"param_count": ...}, ("is damaged (param_count: Field required)",)),
    ({"run_id": "../../etc"}, ("is damaged (run_id",)),
    ({"best_val_loss": "NaN"}, ("is damaged (best_val_loss",)),
    ({"schema_version": ...}, ("schema version None",)),
])
@pytest.mark.parametrize("name", ["evaluate", "forecast"])
def test_damaged_train_info_is_one_line(fresh: Path, tmp_path: Path, name: str,
                                        damage: dict[str, object], words: tuple[str, ...]) -> None:
    project = tmp_path / "project"
    shutil.copytree(fresh, project, symlinks=True)
    info = {k: v for k, v in {**TRAIN_INFO, **damage}.items() if v is not ...}
    (project / "models/ETH-USD").mkdir(parents=True)
    (project / "models/ETH-USD/train_info.json").write_text(json.dumps(info))
    before = snapshot(project)
    result = stage(project, name, project_env(project, tmp_path / "store"))
    assert_one_line_error(result, 1, "models/ETH-USD/train_info.json", "dvc repro -f train", *words)
    assert snapshot(project) == before
    assert not (tmp_path / "store").exists()  # no run touched


READ_ONLY_RAW = """
import errno, os, runpy, sys, tempfile
real = tempfile.mkstemp
def refused(*args, **kwargs):
    if os.path.abspath(str(kwargs.get("dir", ""))).endswith("data/ETH-USD/raw"):
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES))
    return real(*args, **kwargs)
tempfile.mkstemp = refused  # what a read-only data/ETH-USD/raw does for a non-root user
runpy.run_module("stages.download", run_name="__main__", alter_sys=True)
"""


def _make_read_only(folder: Path) -> str | None:
    """Make `folder` read-only for this process; how, or None when no mechanism works."""
    folder.chmod(0o555)
    if os.geteuid() != 0:
        return "chmod"
    if subprocess.run(["chattr", "+i", str(folder)], capture_output=True).returncode == 0:
        return "chattr"
    return None


def test_read_only_raw_folder_is_one_line(tmp_path: Path) -> None:
    project = new_project(tmp_path / "project")
    raw = project / "data" / "ETH-USD" / "raw"
    raw.mkdir(parents=True)
    (raw / "meta.json").write_text('{"earlier": true}\n')
    how = _make_read_only(raw)
    try:
        before = snapshot(project)
        if how is None:  # root in a container that refuses chattr: the same error, injected
            result = stage(project, "download", project_env(project), harness=READ_ONLY_RAW)
        else:
            result = stage(project, "download", project_env(project))
    finally:
        if how == "chattr":
            subprocess.run(["chattr", "-i", str(raw)], check=True)
        raw.chmod(0o755)
    assert_one_line_error(result, 1, "cannot write data/ETH-USD/raw/", "make the folder writable")
    assert snapshot(project) == before


# --- 7. Ctrl-C during start-up ------------------------------------------------------------------

@pytest.mark.parametrize("name", ["download", "evaluate"])
def test_ctrl_c_while_a_stage_imports_is_one_line(tmp_path: Path, name: str) -> None:
    """SIGINT as soon as `stages/__init__` has run, i.e. while pandas (and NumPy) import:
    `-X importtime` reports each finished import on stderr, so the moment is a condition."""
    project = new_project(tmp_path / "project")
    log = tmp_path / "stderr.log"
    with log.open("w") as fh:
        proc = subprocess.Popen([sys.executable, "-X", "importtime", "-m", f"stages.{name}"],
                                cwd=project, env=project_env(project), stdout=subprocess.DEVNULL,
                                stderr=fh)
        try:
            deadline = time.monotonic() + 60
            while not any(line.rstrip().endswith("| stages") for line in log.read_text().splitlines()):
                assert proc.poll() is None and time.monotonic() < deadline, log.read_text()[-2000:]
                time.sleep(0.01)
            proc.send_signal(signal.SIGINT)
            code = proc.wait(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
    stderr = "\n".join(line for line in log.read_text().splitlines()
                       if not line.startswith("import time:"))
    assert "pandas" not in _finished_imports(log)  # it came while the heavy imports ran
    assert code == 130, stderr[-3000:]
    assert "Traceback" not in stderr and "KeyboardInterrupt" not in stderr, stderr[-3000:]
    lines = error_lines(stderr)
    assert len(lines) == 1 and "interrupted while starting" in lines[0], stderr[-3000:]
    assert not (project / "data").exists()


def _finished_imports(log: Path) -> set[str]:
    return {line.rsplit("|", 1)[-1].strip() for line in log.read_text().splitlines()
            if line.startswith("import time:")}


# --- 8. small lies ------------------------------------------------------------------------------

@pytest.mark.parametrize(("args", "words"), [
    ((), ("one of the arguments --run --version is required", "give exactly one of --run")),
    (("--run", "a" * 32, "--version", "1"), ("not allowed with argument",
                                              "give exactly one of --run")),
    (("--version", "0"), ("versions start at 1",)),
    (("--version", "two"), ("not a whole number",)),
    (("--run", "x' or '1'='1"), ("is not an MLflow run id",)),
])
def test_promote_command_line_mistakes_are_one_line(tmp_path: Path, args: tuple[str, ...],
                                                    words: tuple[str, ...]) -> None:
    project = new_project(tmp_path / "project")
    result = subprocess.run([sys.executable, "-m", "stages.promote", *args], cwd=project,
                            env=project_env(project, tmp_path / "store"), capture_output=True,
                            text=True, timeout=120)
    line = assert_one_line_error(result, 2, "promote:", *words)
    assert "usage:" not in result.stderr and "None" not in line
    assert not (tmp_path / "store").exists()


@pytest.mark.slow
@pytest.mark.long
def test_promote_unknown_run_names_the_run_not_a_version(built: tuple[Path, Path],
                                                         tmp_path: Path) -> None:
    project, env = copy_built(built, tmp_path)
    result = subprocess.run([sys.executable, "-m", "stages.promote", "--run", "f" * 32],
                            cwd=project, env=env, capture_output=True, text=True, timeout=300)
    line = assert_one_line_error(result, 1, f"run {'f' * 32} has no version of model")
    assert "version None" not in line


@pytest.fixture
def store_uri(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    yield uri
    import mlflow

    while mlflow.active_run() is not None:
        mlflow.end_run()


@pytest.mark.parametrize(("raised", "outcome"), [
    (None, "finished"), (DataError("bad"), "failed"), (RuntimeError("bug"), "failed"),
    (KeyboardInterrupt(), "interrupted"),
])
def test_later_stage_keeps_the_training_runs_status(store_uri: str, tmp_path: Path,
                                                    raised: BaseException | None,
                                                    outcome: str) -> None:
    import mlflow

    from crypto_forecast.tracking import runs

    with runs.stage_run("tests") as run:
        run_id = run.info.run_id

    def later() -> None:
        with runs.stage_run("tests", run_id=run_id, stage="evaluate"):
            if raised is not None:
                raise raised

    if raised is None:
        later()
    else:
        with pytest.raises(type(raised)):
            later()
    got = mlflow.MlflowClient().get_run(run_id)
    assert got.info.status == "FINISHED"
    assert got.data.tags["evaluate_status"] == outcome
