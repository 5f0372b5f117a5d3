"""A >10x daily move: download warns (on_jump: warn) and the later stages go on. The served
forecaster refuses it only inside the days it reads, and then forecast says so in one line."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest

from tests.helpers import copy_built, run

pytestmark = pytest.mark.slow


def _jump(project: Path, rows_from_end: int) -> None:
    path = project / "data" / "ETH-USD" / "processed" / "latest.csv"
    frame = pd.read_csv(path)
    at = len(frame) - rows_from_end
    frame.loc[at:, "close"] = frame.loc[at:, "close"] * 0.05  # 20x down, and staying there
    frame.to_csv(path, index=False)


def test_a_jump_long_ago_is_history(built: tuple[Path, Path], tmp_path: Path) -> None:
    project, env = copy_built(built, tmp_path)
    _jump(project, rows_from_end=200)
    result = run(["python", "-m", "stages.forecast"], project, env)
    assert result.returncode == 0, result.stderr[-2000:]


def test_a_jump_in_the_last_window_is_one_error_line(built: tuple[Path, Path],
                                                    tmp_path: Path) -> None:
    project, env = copy_built(built, tmp_path)
    before = (project / "reports" / "ETH-USD" / "forecast.csv").read_bytes()
    _jump(project, rows_from_end=3)
    result = run(["python", "-m", "stages.forecast"], project, env)
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if "ERROR" in line]
    assert len(errors) == 1 and "Traceback" not in result.stderr, result.stderr[-2000:]
    assert "the served forecaster cannot use the latest closes" in errors[0]
    assert re.search(r"the close on \S+ is 0\.05[0-9]*× the day before's", errors[0])
    assert "download.on_jump: error" in errors[0]
    assert (project / "reports" / "ETH-USD" / "forecast.csv").read_bytes() == before
