"""What a stage prints: its own story, library noise filtered out, real errors kept.

The stages here are tiny scripts run through `run_stage` in a subprocess, writing the kinds of
lines TensorFlow, absl, Keras and library `warnings` produce; no TensorFlow is imported.
"""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

import pytest

from crypto_forecast.cli import StageFormatter
from crypto_forecast.tracking.provenance import run_name
from crypto_forecast.tracking.registry import without_registry_echo
from crypto_forecast.tracking.ui import runs_url
from tests.helpers import GIT_ENV, ROOT, project_env

NOISY_STAGE = r'''
import logging, os, warnings
from crypto_forecast.cli import run_stage

def main():
    log = logging.getLogger("stages.demo")
    log.info("read the input")
    # What native code writes to fd 2 past Python (TensorFlow 2.21 on import and in fit).
    os.write(2, b"WARNING: All log messages before absl::InitializeLog() is called are written "
                b"to STDERR\n"
                b"I0000 00:00:1795757602.378695   10527 port.cc:153] oneDNN custom operations "
                b"are on.\n"
                b"W0000 00:00:1795757602.378695   10527 cpu_feature_guard.cc:227] some warning\n"
                b"E0000 00:00:1795757607.397648   10527 node_def_util.cc:682] NodeDef mentions "
                b"attribute use_unbounded_threadpool which is not in the op definition: Op<...>\n"
                b"E0000 00:00:1795757607.397648   10527 cuda_driver.cc:99] a real native error\n")
    # Keras's progress bar, logged through absl once interactive logging is off.
    logging.getLogger("absl").info("8/1 " + "\u2501" * 200)
    logging.getLogger("absl").warning("a library warning worth reading")
    warnings.warn_explicit("Model doesn't support `jit_compile=True`.", UserWarning,
                           "trainer.py", 248, module="keras.src.trainers.trainer")
    log.warning("the data ends early")
    log.info("wrote the output")

run_stage("demo", main)
'''

NOISE = ("absl::InitializeLog", "I0000", "W0000", "use_unbounded_threadpool", "\u2501",
         "UserWarning", "jit_compile")


def run_noisy(tmp_path: Path, **extra: str) -> subprocess.CompletedProcess[str]:
    env = {**project_env(tmp_path), "PYTHONPATH": str(ROOT), **extra}
    return subprocess.run([sys.executable, "-c", NOISY_STAGE], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=60)


def test_noise_is_filtered_and_the_story_and_real_errors_stay(tmp_path: Path) -> None:
    result = run_noisy(tmp_path)
    assert result.returncode == 0, result.stderr
    for pattern in NOISE:
        assert pattern not in result.stderr, result.stderr
    lines = result.stderr.splitlines()
    assert "a real native error" in result.stderr
    assert any(line.endswith("demo       read the input") for line in lines), lines
    assert any("demo       WARNING a library warning worth reading" in line for line in lines)
    assert any("demo       WARNING the data ends early" in line for line in lines)
    # Order kept: the native line passes through the filter before the later Python lines.
    assert result.stderr.index("a real native error") < result.stderr.index("wrote the output")
    assert "demo       done in " in lines[-1]


def test_verbose_shows_everything(tmp_path: Path) -> None:
    result = run_noisy(tmp_path, CRYPTO_FORECAST_VERBOSE="1")
    assert result.returncode == 0, result.stderr
    for pattern in NOISE:
        assert pattern in result.stderr, pattern


def test_user_warning_filters_win(tmp_path: Path) -> None:
    result = run_noisy(tmp_path, PYTHONWARNINGS="default")
    assert "jit_compile" in result.stderr and "I0000" not in result.stderr


def test_a_failing_stage_still_says_error_once(tmp_path: Path) -> None:
    failing = ("from crypto_forecast.cli import run_stage\n"
               "from crypto_forecast.errors import DataError\n"
               "def main():\n    raise DataError('data/ETH-USD/raw/X.csv is missing — run dvc repro')\n"
               "run_stage('demo', main)\n")
    env = {**project_env(tmp_path), "PYTHONPATH": str(ROOT)}
    result = subprocess.run([sys.executable, "-c", failing], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    errors = [line for line in result.stderr.splitlines() if " ERROR " in line]
    assert len(errors) == 1 and "data/ETH-USD/raw/X.csv is missing" in errors[0], result.stderr


LOST_INTERRUPT_STAGE = r'''
import os, signal
from crypto_forecast.cli import run_stage
from crypto_forecast.errors import raise_if_interrupted

class Finalized:
    def __del__(self):
        # Ctrl-C lands while a finalizer runs: CPython prints the KeyboardInterrupt as
        # "ignored" and carries on, as it can inside Keras, JAX or SQLAlchemy internals.
        os.kill(os.getpid(), signal.SIGINT)
        for _ in range(100_000):
            pass

def main():
    Finalized()
    print("the finalizer swallowed the interrupt", flush=True)
    for _epoch in range(3):
        raise_if_interrupted()  # what the training loop does every epoch
    print("finished as if never interrupted", flush=True)

run_stage("demo", main)
'''


def test_an_interrupt_swallowed_by_a_finalizer_still_stops_the_stage(tmp_path: Path) -> None:
    env = {**project_env(tmp_path), "PYTHONPATH": str(ROOT)}
    result = subprocess.run([sys.executable, "-c", LOST_INTERRUPT_STAGE], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=60)
    # The first KeyboardInterrupt really was lost (else this test proves nothing) ...
    assert "the finalizer swallowed the interrupt" in result.stdout, result.stderr
    # ... and the latch still ended the stage as an interrupt, before it finished.
    assert "finished as if never interrupted" not in result.stdout
    assert result.returncode == 130, result.stderr
    assert "demo       ERROR interrupted; no output was replaced" in result.stderr


def test_formatter_names_the_level_from_warning_up() -> None:
    fmt = StageFormatter("train")

    def line(level: int) -> str:
        return fmt.format(logging.LogRecord("stages.train", level, __file__, 1, "msg", None, None))

    assert line(logging.INFO)[8:] == " train      msg"
    assert line(logging.WARNING)[8:] == " train      WARNING msg"
    assert line(logging.ERROR)[8:] == " train      ERROR msg"


def test_runs_url_opens_the_model_training_view() -> None:
    assert runs_url("http://127.0.0.1:5000/", "3") == (
        "http://127.0.0.1:5000/#/experiments/3?workflowType=machine_learning")


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, check=True,
                          env={**project_env(repo), **GIT_ENV}).stdout.strip()


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    _git(tmp_path, "init", "-q", "-b", "feature-x")
    (tmp_path / "f").write_text("x")
    _git(tmp_path, "add", "f")
    _git(tmp_path, "commit", "-qm", "one")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DVC_EXP_NAME", raising=False)
    return tmp_path


def test_run_name_is_the_dvc_experiment_name(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DVC_EXP_NAME", "units32")
    assert run_name() == "units32"


def test_run_name_is_the_branch_under_plain_repro(repo: Path) -> None:
    assert run_name() == "feature-x"


def test_run_name_is_the_short_commit_on_a_detached_head(repo: Path) -> None:
    _git(repo, "checkout", "-q", "--detach")
    assert run_name() == _git(repo, "rev-parse", "--short", "HEAD")


def test_mlflow_registry_echo_is_dropped_and_the_rest_kept(capsys: pytest.CaptureFixture[str]
                                                           ) -> None:
    from mlflow.utils.logging_utils import eprint  # what MLflow's registry prints with

    with without_registry_echo():
        eprint("Successfully registered model 'eth-usd-lstm'.")
        eprint("Registered model 'eth-usd-lstm' already exists. Creating a new version of this "
               "model...")
        eprint("Created version '2' of model 'eth-usd-lstm'.")
        eprint("something else MLflow wants you to know")
    assert capsys.readouterr().err == "something else MLflow wants you to know\n"


STATE_KEPT = r'''
import logging, os, signal, sys, warnings
from crypto_forecast.cli import process_state_kept, run_stage
from crypto_forecast.errors import ConfigError

def state():
    fd2 = os.fstat(2)
    root = logging.getLogger()
    return {"environment": dict(os.environ), "warnings filters": list(warnings.filters),
            "root level": root.level, "root handlers": list(root.handlers),
            "SIGTERM": signal.getsignal(signal.SIGTERM), "SIGINT": signal.getsignal(signal.SIGINT),
            "stderr": (fd2.st_dev, fd2.st_ino)}

def main():
    os.environ["KERAS_BACKEND"] = "jax"  # what train's backend choice does
    raise ConfigError("train.epochs: bad — fix it")

def diff(a, b):
    return sorted(k for k in a if a[k] != b[k])

logging.getLogger().setLevel(logging.DEBUG)  # the caller's own level
before = state()
with process_state_kept():
    try:
        run_stage("demo", main)
    except SystemExit as exc:
        print("exit", exc.code)
    inside = state()
print("changed by the stage:", diff(before, inside))
print("left changed:", diff(before, state()))
'''


def test_a_stage_run_in_process_leaves_the_process_as_it_was(tmp_path: Path) -> None:
    """run_stage changes environment, warnings filters, root logger, signal handlers and fd 2;
    process_state_kept (what in-process test runners use) puts each back, even on exit."""
    env = {**project_env(tmp_path), "PYTHONPATH": str(ROOT)}
    env.pop("CRYPTO_FORECAST_VERBOSE", None)
    done = subprocess.run([sys.executable, "-c", STATE_KEPT], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "exit 2", done.stdout
    assert lines[1] == ("changed by the stage: ['SIGINT', 'SIGTERM', 'environment', 'root handlers', "
                        "'root level', 'stderr', 'warnings filters']"), done.stdout
    assert lines[2] == "left changed: []", done.stdout
    assert "ERROR train.epochs: bad" in done.stderr  # the stage's line still reached stderr
