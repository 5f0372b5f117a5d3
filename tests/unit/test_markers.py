"""tests/conftest.py's marker rule: `long` and `hypothesis_long` tests run only when `-m`
names that marker as a whole word."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import named_markers
from tests.helpers import ROOT


def test_marker_names_are_whole_words() -> None:
    assert named_markers("not hypothesis_long") == {"hypothesis_long"}
    assert named_markers("long and not slow") == {"long", "slow"}
    assert "long" not in named_markers("longer or hypothesis_long")


@pytest.mark.parametrize(("expr", "collected"), [("not hypothesis_long", False), ("long", True)])
def test_not_hypothesis_long_does_not_select_the_long_tests(expr: str, collected: bool) -> None:
    done = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q",
                           "-p", "no:cacheprovider", "-m", expr, "tests/model/test_backends.py"],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    ids = [line for line in done.stdout.splitlines() if "::" in line]
    assert bool(ids) is collected, done.stdout[-2000:]
