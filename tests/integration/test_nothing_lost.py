"""evaluate and forecast log to MLflow before they write a file: when logging fails, the
stage ends with one ERROR line and its previous outputs are untouched (none are new).
Slow (~1 min: trains the tiny network once)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.helpers import project_env, run

pytestmark = pytest.mark.slow

EVALUATE_OUTS = tuple(f"reports/ETH-USD/{name}" for name in (
    "metrics.json", "evaluation.json", "plots/test_predictions.csv",
    "plots/backtest_by_horizon.csv", "plots/test_horizon_forecasts.csv"))
FORECAST_OUTS = tuple(f"reports/ETH-USD/forecast.{ext}" for ext in ("csv", "md", "html", "png"))


def _break_artifacts(store: Path) -> None:
    # A file where the artifact folder should be: unwritable even for root.
    shutil.move(store / "mlartifacts", store / "mlartifacts.saved")
    (store / "mlartifacts").write_text("not a folder\n")


def _mend_artifacts(store: Path) -> None:
    (store / "mlartifacts").unlink()
    shutil.move(store / "mlartifacts.saved", store / "mlartifacts")


def _fails_with_one_line(project: Path, env: dict[str, str], stage: str) -> None:
    done = run(["python", "-m", f"stages.{stage}"], project, env)
    assert done.returncode != 0, done.stderr
    errors = [line for line in done.stderr.splitlines() if " ERROR " in line]
    assert len(errors) == 1 and "artifact" in errors[0] and "no output was written" in errors[0], \
        done.stderr
    assert "Traceback" not in done.stderr


def test_a_failed_mlflow_log_leaves_the_outputs_alone(project: Path, tmp_path: Path) -> None:
    store = tmp_path / "store"
    env = project_env(project, store)
    built = run(["dvc", "repro", "train"], project, env)
    assert built.returncode == 0, built.stdout + built.stderr

    _break_artifacts(store)
    _fails_with_one_line(project, env, "evaluate")
    assert not [p for p in EVALUATE_OUTS if (project / p).exists()]

    _mend_artifacts(store)
    done = run(["python", "-m", "stages.evaluate"], project, env)
    assert done.returncode == 0, done.stderr
    before = {p: (project / p).read_bytes() for p in EVALUATE_OUTS}

    _break_artifacts(store)
    _fails_with_one_line(project, env, "evaluate")
    assert {p: (project / p).read_bytes() for p in EVALUATE_OUTS} == before
    _fails_with_one_line(project, env, "forecast")
    assert not [p for p in FORECAST_OUTS if (project / p).exists()]
