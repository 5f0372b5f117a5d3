"""The real stages on tiny params print their story and no library noise; errors still show;
the training run carries its name and dataset. Slow (TensorFlow, MLflow)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import ROOT, project_env, run

pytestmark = pytest.mark.slow

# What TensorFlow, absl, Keras and MLflow printed before the stages quieted them.
NOISE = [
    re.compile(r"^[IWE][0-9]{4} [0-9:.]+ +[0-9]+ .*\] ", re.M),  # TF C++ log lines
    re.compile(r"absl::InitializeLog"),
    re.compile(r"use_unbounded_threadpool"),
    re.compile("\u2501"),  # a Keras progress bar
    re.compile(r"\d+/\d+ .*(ETA|step)"),
    re.compile(r"UserWarning|FutureWarning|DeprecationWarning"),
    re.compile(r"jit_compile"),
    re.compile(r"Successfully registered model|Registered model|Created version"),
    re.compile(r"INFO mlflow|INFO alembic"),
]


def stage(project: Path, name: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return run([sys.executable, "-m", f"stages.{name}"], project, env, timeout=600)


def assert_quiet(stderr: str, tmp: Path) -> None:
    """No noise, and every line fits 120 columns (but for the temp folder's long name)."""
    for pattern in NOISE:
        found = pattern.search(stderr)
        assert found is None, f"noise {pattern.pattern!r}: {found and found.group(0)!r}\n{stderr}"
    wide = [line for line in stderr.splitlines() if len(line.replace(str(tmp), "/tmp/x")) > 120]
    assert wide == [], wide


def test_train_tells_its_story_without_noise(project: Path, tmp_path: Path) -> None:
    env = project_env(project, tmp_path / "store")
    branch = run(["git", "rev-parse", "--abbrev-ref", "HEAD"], project, env).stdout.strip()
    stderr = ""
    for name in ("download", "preprocess", "train"):
        result = stage(project, name, env)
        assert result.returncode == 0, result.stderr
        stderr += result.stderr
    assert_quiet(stderr, tmp_path)
    said = stderr.splitlines()
    for words in ("download   got 364 daily closes of ETH-USD",
                  "download   wrote data/ETH-USD/raw/ETH-USD.csv",
                  "preprocess read 364 daily closes", "preprocess wrote data/ETH-USD/processed/: windows.npz",
                  "train      read data/ETH-USD/processed/series.csv: 364 days of ETH-USD",
                  "train      fold_1  trains 2022-01-12..2022-08-24  stops early ..2022-10-18  "
                  "scored 2022-10-19..2022-11-23",
                  f"train      MLflow run {branch!r}", "train      live epoch 1/1  loss",
                  "train      3/3 fitted: ", "train      fitted 3 networks of 30,651 parameters",
                  "registered eth-usd-lstm version 1, alias 'candidate'",
                  "train      wrote models/ETH-USD/model.keras, models/ETH-USD/folds/ (2 folds)",
                  "train      done in"):
        assert any(words in line for line in said), f"{words!r} not in\n{stderr}"

    import mlflow

    client = mlflow.MlflowClient(env["MLFLOW_TRACKING_URI"])
    experiment = client.get_experiment_by_name("tests")
    assert experiment is not None
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"
    (found,) = [r for r in client.search_runs([experiment.experiment_id])
                if "mlflow.parentRunId" not in r.data.tags]  # not the folds' child runs
    assert found.info.run_name == branch
    meta = json.loads((project / "data/ETH-USD/raw/meta.json").read_text())
    (data,) = found.inputs.dataset_inputs
    assert data.dataset.name == "ETH-USD-synthetic"
    assert data.dataset.digest == meta["sha256"][:8]
    assert {t.key: t.value for t in data.tags}["sha256"] == meta["sha256"]
    assert json.loads(data.dataset.source)["uri"] == str(project / "data/ETH-USD/raw/ETH-USD.csv")
    assert json.loads(data.dataset.profile)["num_rows"] == meta["rows"]
    assert {t.key: t.value for t in data.tags}["mlflow.data.context"] == "training"

    # A failure still says so, once, with no traceback.
    (project / "data/ETH-USD/processed/series.csv").unlink()
    failed = stage(project, "train", env)
    assert failed.returncode != 0
    errors = [line for line in failed.stderr.splitlines() if " ERROR " in line]
    assert len(errors) == 1 and "series.csv" in errors[0], failed.stderr
    assert "Traceback" not in failed.stderr


TF_FAILURE = """
from crypto_forecast.cli import run_stage
def main():
    import tensorflow as tf
    tf.reshape(tf.zeros(3), (2,))
run_stage("demo", main)
"""


def test_a_tensorflow_error_still_shows(tmp_path: Path) -> None:
    env = {**project_env(tmp_path), "PYTHONPATH": str(ROOT)}
    result = run([sys.executable, "-c", TF_FAILURE], tmp_path, env, timeout=300)
    assert result.returncode == 1
    assert "Traceback" in result.stderr and "InvalidArgumentError" in result.stderr
    assert "Input to reshape is a tensor with 3 values" in result.stderr
    assert "I0000" not in result.stderr and "absl::InitializeLog" not in result.stderr
