"""Shared fixtures; the helpers they use live in tests/helpers.py."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import SECRETS, new_project, project_env, run


@pytest.fixture
def project(tmp_path: Path) -> Iterator[Path]:
    """A git-initialised copy of the project with tiny params, committed, DVC ready."""
    yield new_project(tmp_path / "project")


@pytest.fixture(scope="session")
def built(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path]]:
    """(project, store): the whole tiny pipeline built once per session with `dvc repro`,
    MLflow in `store`, with SECRETS planted in the environment. Its tiny LSTM loses the gate:
    naive is served. Copy it (tests.helpers.copy_built) before changing anything."""
    base = tmp_path_factory.mktemp("built")
    project = new_project(base / "project")
    store = base / "store"
    env = {**project_env(project, store), **SECRETS}
    result = run(["dvc", "repro"], project, env, timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    (base / "repro.stdout").write_text(result.stdout)  # what DVC said (built_repro_stdout)
    yield project, store


# Markers for what `make test` leaves to CI (`.ci/run` selects each with -m): the long
# Hypothesis profile, and the long integration runs (team server, sweeps, Optuna, moved
# stores, dvc exp show, the browser, the queue, the shared tracking server): a newcomer's
# `make test` stays under 6 minutes on 2 cores.
SELECTED_ONLY = ("hypothesis_long", "long")


def named_markers(markexpr: str) -> set[str]:
    """The marker names a `-m` expression names, whole words only: `not hypothesis_long`
    names `hypothesis_long`, not `long`."""
    return set(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", markexpr)) - {"and", "or", "not"}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked with one of SELECTED_ONLY run only when `-m` names that marker."""
    skipped = [m for m in SELECTED_ONLY if m not in named_markers(config.option.markexpr or "")]
    dropped = [item for item in items if any(item.get_closest_marker(m) for m in skipped)]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = [item for item in items if item not in dropped]
