"""Shared fixtures; the helpers they use live in tests/helpers.py."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import new_project


@pytest.fixture
def project(tmp_path: Path) -> Iterator[Path]:
    """A git-initialised copy of the project with tiny params, committed, DVC ready."""
    yield new_project(tmp_path / "project")
