"""Outputs are never half-written and never lost.

Disk full is simulated two ways, both without touching the real disk: a real kernel limit
(RLIMIT_FSIZE: writes past it fail with EFBIG, exactly like a full disk fails with
ENOSPC, partway through the file), and ENOSPC raised from `fsync`, which is where a full
disk shows up on filesystems with delayed allocation (ext4, XFS, NFS). A tmpfs or loop
device would need privileges CI does not have.
"""

from __future__ import annotations

import errno
import json
import os
import signal
import sqlite3
import sys
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml

from crypto_forecast.errors import StorageError
from crypto_forecast.io import atomic
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
from tests.helpers import TINY_PARAMS, project_env, run

# --- atomic writes, in process --------------------------------------------------------------


def _raise(exc: BaseException) -> Callable[[Path], None]:
    def body(tmp: Path) -> None:
        tmp.write_bytes(b"half a fi")  # something was written before the failure
        raise exc

    return body


@pytest.mark.parametrize(("exc", "expected"), [
    (RuntimeError("a bug"), RuntimeError),
    (KeyboardInterrupt(), KeyboardInterrupt),
    (OSError(errno.ENOSPC, "No space left on device"), StorageError),
    (OSError(errno.EDQUOT, "Disk quota exceeded"), StorageError),
    (OSError(errno.EACCES, "Permission denied"), StorageError),
    (OSError(errno.EROFS, "Read-only file system"), StorageError),
    (OSError(errno.EIO, "Input/output error"), OSError),  # a failing disk: not the user's to fix
])
def test_failed_write_keeps_the_old_file_and_no_temp(tmp_path: Path, exc: BaseException,
                                                     expected: type[BaseException]) -> None:
    target = tmp_path / "out" / "model.keras"
    target.parent.mkdir()
    target.write_bytes(b"the previous model")
    with pytest.raises(expected) as info, atomic.atomic_path(target) as tmp:
        _raise(exc)(tmp)
    assert target.read_bytes() == b"the previous model"
    assert sorted(p.name for p in target.parent.iterdir()) == ["model.keras"]
    if expected is StorageError:
        assert f"cannot write {target}" in str(info.value)
        fix = {errno.ENOSPC: "free disk space", errno.EDQUOT: "free disk space",
               errno.EACCES: "make the folder writable",
               errno.EROFS: "mounted read-only"}[getattr(exc, "errno", 0)]
        assert fix in str(info.value)


def test_enospc_at_fsync_is_one_error_and_no_temp(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    def full(fd: int) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(atomic.os, "fsync", full)
    target = tmp_path / "metrics.json"
    with pytest.raises(StorageError, match="No space left on device"):
        atomic.write_json(target, {"rmse": 1.0})
    assert list(tmp_path.iterdir()) == []


def test_outputs_get_normal_permissions(tmp_path: Path) -> None:
    """mkstemp makes 0600 files; outputs must be readable like any file the user writes."""
    old = os.umask(0o022)
    try:
        atomic.write_text(tmp_path / "a.txt", "x")
    finally:
        os.umask(old)
    assert (tmp_path / "a.txt").stat().st_mode & 0o777 == 0o644


# --- stages on a small project (fast) -------------------------------------------------------

FILE_SIZE_LIMIT = """
import resource, runpy, signal, sys
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # get EFBIG from write() instead of a kill
resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))
sys.argv = ["stages.download"]
runpy.run_module("stages.download", run_name="__main__", alter_sys=True)
"""


@pytest.fixture(scope="module")
def proj(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    yield with_outputs(new_project(tmp_path_factory.mktemp("artifacts") / "project"))


def test_disk_full_during_download_leaves_nothing_partial(proj: Path) -> None:
    """A real write failure from the kernel, 4 KiB into an 8 KiB file."""
    (proj / "params.yaml").write_text(yaml.safe_dump(params_with(download__start="2021-01-01"),
                                                     sort_keys=False))
    before = snapshot(proj)
    result = stage(proj, "download", project_env(proj), harness=FILE_SIZE_LIMIT)
    assert_one_line_error(result, 1, "cannot write data/ETH-USD/raw/ETH-USD.csv (File too large)",
                          "free disk space", "untouched")
    assert snapshot(proj) == before
    assert_no_temp_files(proj)
    (proj / "params.yaml").write_text(yaml.safe_dump(TINY_PARAMS, sort_keys=False))


@pytest.mark.parametrize(("case", "damage", "words"), [
    ("column-renamed", lambda t: t.replace("Date,Close", "Date,Price", 1), ("KeyError: 'Close'",)),
    ("not-a-csv", lambda t: "\x00\x01garbage", ("Missing column provided to 'parse_dates'",)),
    ("edited-value", lambda t: t.replace("\n2022-01-05,", "\n2022-01-05,abc#", 1),
     ("could not convert string to float",)),
])
def test_damaged_raw_file_is_named_in_preprocess(proj: Path, case: str,
                                                 damage: Callable[[str], str],
                                                 words: tuple[str, ...]) -> None:
    raw = proj / "data/ETH-USD/raw/ETH-USD.csv"
    good = raw.read_text()
    raw.write_text(damage(good))
    try:
        before = snapshot(proj, ("data/ETH-USD/processed",))
        result = stage(proj, "preprocess", project_env(proj))
        assert_one_line_error(result, 1, "data/ETH-USD/raw/ETH-USD.csv is unreadable", *words,
                              "dvc checkout data/ETH-USD/raw")
        assert snapshot(proj, ("data/ETH-USD/processed",)) == before
    finally:
        raw.write_text(good)


# --- on the built pipeline (slow) -----------------------------------------------------------

def _garbage(path: Path) -> None:
    path.write_bytes(b"this is not a keras archive\n" * 10)


def _truncated(path: Path) -> None:
    data = path.read_bytes()
    assert zipfile.is_zipfile(path)
    path.write_bytes(data[: len(data) // 2])


@pytest.mark.slow
@pytest.mark.parametrize(("name", "corrupt"), [("evaluate", _garbage), ("forecast", _truncated)],
                         ids=["evaluate-garbage", "forecast-truncated"])
def test_corrupted_model_is_a_clear_error(built: tuple[Path, Path], tmp_path: Path, name: str,
                                          corrupt: Callable[[Path], None]) -> None:
    project, env = copy_built(built, tmp_path)
    corrupt(project / "models/ETH-USD/model.keras")
    before = snapshot(project)
    result = stage(project, name, env)
    assert_one_line_error(result, 1, "models/ETH-USD/model.keras is not a readable Keras model",
                          "dvc checkout models", "dvc repro -f train")
    assert snapshot(project) == before


ENOSPC_AT_FSYNC = """
import errno, os, runpy, sys
def full(fd):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
os.fsync = full  # our writers fsync before the rename; SQLite does its own, in C
sys.argv = ["stages." + sys.argv[1]]
runpy.run_module(sys.argv[0], run_name="__main__", alter_sys=True)
"""


@pytest.mark.slow
def test_disk_full_in_evaluate_tags_the_run_keeps_reports(built: tuple[Path, Path],
                                                           tmp_path: Path) -> None:
    project, env = copy_built(built, tmp_path)
    store = tmp_path / "store"
    run_id = json.loads((project / "models/ETH-USD/train_info.json").read_text())["run_id"]
    before = snapshot(project)
    result = stage(project, "evaluate", env, harness=ENOSPC_AT_FSYNC, args=("evaluate",))
    assert_one_line_error(result, 1, "cannot write reports/", "(No space left on device)",
                          "free disk space")
    assert snapshot(project) == before
    assert_no_temp_files(project)
    with sqlite3.connect(store / "mlflow.db") as db:
        status = db.execute("select status from runs where run_uuid=?", (run_id,)).fetchone()
        tag = db.execute("select value from tags where run_uuid=? and key='evaluate_status'",
                         (run_id,)).fetchone()
    # The training finished; the failed evaluate says so in its own tag (README), and the
    # run is ended, not left RUNNING.
    assert status == ("FINISHED",) and tag == ("failed",)


@pytest.mark.slow
def test_failed_repro_then_checkout_and_killed_train_then_repro(built: tuple[Path, Path],
                                                                tmp_path: Path) -> None:
    project, env = copy_built(built, tmp_path)
    params = project / "params.yaml"
    before = snapshot(project)
    assert "models/ETH-USD/model.keras" in before and "reports/metrics.json" in before

    # 1. A typo in `train`: DVC deletes train's outputs, the stage fails with one line
    #    that says the earlier outputs are in the cache; `dvc checkout` brings them back.
    params.write_text(yaml.safe_dump(params_with(train__epoch=3), sort_keys=False))
    failed = run(["dvc", "repro"], project, env)
    assert failed.returncode != 0
    out = failed.stdout + failed.stderr
    assert "Traceback" not in out
    # The stage's own line ("HH:MM:SS train      ERROR ..."), not DVC's "ERROR: failed to ...".
    lines = [line for line in error_lines(out) if line.split()[1:2] == ["train"]]
    assert len(lines) == 1, out[-3000:]
    assert "train.epoch: unknown key" in lines[0] and "`dvc checkout` restores them" in lines[0]
    assert not (project / "models/ETH-USD/model.keras").exists()
    params.write_text(yaml.safe_dump(TINY_PARAMS, sort_keys=False))
    checkout = run(["dvc", "checkout"], project, env)
    assert checkout.returncode == 0, checkout.stderr
    assert snapshot(project) == before

    # 2. SIGKILL in the middle of training: nothing to catch it, and still nothing lost.
    params.write_text(yaml.safe_dump(params_with(train__epochs=500, train__patience=500),
                                     sort_keys=False))
    code, stderr = start_and_signal([sys.executable, "-m", "stages.train"], project, env,
                                    signal.SIGKILL)
    assert code == -signal.SIGKILL, stderr[-2000:]
    assert snapshot(project) == before
    assert_no_temp_files(project)

    # 3. `dvc status` says what is stale; `dvc repro` recovers.
    params.write_text(yaml.safe_dump(params_with(train__epochs=2), sort_keys=False))
    status = run(["dvc", "status", "--json"], project, env)
    assert status.returncode == 0 and "train@ETH-USD" in json.loads(status.stdout), status.stdout
    again = run(["dvc", "repro"], project, env, timeout=900)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert "Running stage 'train@ETH-USD'" in again.stdout
    assert "Running stage 'download@ETH-USD'" not in again.stdout
    final = run(["dvc", "status", "--json"], project, env)
    assert final.returncode == 0 and json.loads(final.stdout) == {}
    assert json.loads((project / "models/ETH-USD/train_info.json").read_text())["epochs_run"] == 2
