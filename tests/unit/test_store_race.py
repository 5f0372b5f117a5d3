"""Two workers opening the same experiment at once on a shared store: the one whose create
loses the race uses the other's experiment instead of failing (seen in the team sweep)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest


def test_losing_the_create_race_uses_the_existing_experiment(tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    import mlflow

    from crypto_forecast.tracking import store

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    other = mlflow.MlflowClient(uri).create_experiment("shared")  # the other worker's
    real = mlflow.MlflowClient.get_experiment_by_name
    calls: list[str] = []

    def not_yet_there_on_first_look(self: Any, name: str) -> Any:
        calls.append(name)
        return None if len(calls) == 1 else real(self, name)

    monkeypatch.setattr(mlflow.MlflowClient, "get_experiment_by_name",
                        not_yet_there_on_first_look)
    assert store.open_experiment("shared") == other
    assert calls == ["shared", "shared"]  # looked, lost the create, looked again
