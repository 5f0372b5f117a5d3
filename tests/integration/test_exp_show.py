"""`dvc exp show` in a 120-column terminal after two experiments: the experiment names, the
params they changed and the headline metrics all show, none cut to `…`. Slow (~3 min).

What DVC 3 does (dvc/commands/experiments/show.py, dvc/utils/table.py): one column per
metric in metrics.json, per key of params.yaml (always the whole file) and per non-param
dep (a hash); it keeps the first column of each group and collapses the others right to
left into `…` until the table fits. So the plain command shows the names and the first
headline metrics; `--only-changed` (hide what every row shares) with the dep hashes
dropped shows everything that differs. The README gives that command.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import GIT_ENV, project_env, run

pytestmark = [pytest.mark.slow, pytest.mark.long]

# The command the README recommends for comparing experiments.
EXP_SHOW = ["dvc", "exp", "show", "--no-pager", "--only-changed", "--drop", "Created|.*/|models"]


def _ok(cmd: list[str], cwd: Path, env: dict[str, str]) -> str:
    done = run(cmd, cwd, env)
    assert done.returncode == 0, f"{cmd}: {done.stdout}{done.stderr}"
    return done.stdout


def _rows(table: str) -> dict[str, str]:
    """Table lines by the experiment name they start with (`[seed8]`, `master`, ...)."""
    out = {}
    for line in table.splitlines():
        found = re.search(r"\[([\w-]+)\]", line) or re.match(r"\s+(workspace|master|main)\s", line)
        if found:
            out[found.group(1)] = line
    return out


def _cell(value: Any) -> str:
    # How `dvc exp show` prints a number: 5 significant digits (DEFAULT_PRECISION).
    return f"{value:.5g}" if isinstance(value, float) else str(value)


def test_exp_show_fits_120_columns(project: Path, tmp_path: Path) -> None:
    env = {**project_env(project, tmp_path / "store"), **GIT_ENV, "COLUMNS": "120"}
    _ok(["dvc", "repro"], project, env)
    subprocess.run(["git", "add", "-A"], cwd=project, env=env, check=True, capture_output=True)
    subprocess.run(["git", "commit", "-qm", "baseline"], cwd=project, env=env, check=True,
                   capture_output=True)
    _ok(["dvc", "exp", "run", "-S", "train.seed=8", "-n", "seed8"], project, env)
    _ok(["dvc", "exp", "run", "-S", "train.batch_size=16", "-n", "bs16"], project, env)

    # What each row holds, from DVC itself.
    shown = json.loads(_ok(["dvc", "exp", "show", "--json"], project, env))
    headline: dict[str, dict[str, Any]] = {}
    for baseline in shown:
        headline["workspace" if baseline["rev"] == "workspace" else "baseline"] = \
            baseline["data"]["metrics"]["reports/metrics.json"]["data"]
        for exp in baseline.get("experiments") or []:
            rev = exp["revs"][0]
            headline[rev["name"]] = rev["data"]["metrics"]["reports/metrics.json"]["data"]
    assert len(headline["seed8"]) <= 12
    changed = [k for k in headline["seed8"] if len({_cell(m[k]) for m in headline.values()}) > 1]
    assert {"skill_h1", "rmse_h1", "coverage_80"} <= set(changed)

    table = _ok(EXP_SHOW, project, env)
    print(table)  # noqa: T201 (what the README shows: `pytest -s`)
    lines = table.splitlines()
    assert max(len(line) for line in lines) <= 120, table
    header = next(line for line in lines if "Experiment" in line)
    for column in (*changed, "train.seed", "train.batch_size"):
        assert re.search(rf"(^|\s){re.escape(column)}(\s|$)", header), (column, table)
    rows = _rows(table)
    assert {"seed8", "bs16", "workspace"} <= set(rows), table
    for name in ("seed8", "bs16"):
        for key in changed:
            assert re.search(rf"\s{re.escape(_cell(headline[name][key]))}\s", rows[name]), \
                (name, key, table)
        assert "…" not in rows[name], table
    assert re.search(r"\s16\s", rows["bs16"]) and re.search(r"\s8\s", rows["seed8"])

    # The plain command folds every group but its first column and still fits; with the
    # live.yaml params group (as_of, train_cut) beside params.yaml's, rich also shortens the
    # names (`[bs1…`), so only the first headline metric of each row is whole. `make exps`
    # (above) is the comparison the README gives.
    plain = _ok(["dvc", "exp", "show", "--no-pager"], project, env)
    assert max(len(line) for line in plain.splitlines()) <= 120, plain
    for name in ("seed8", "bs16"):
        assert _cell(headline[name]["skill_h1"]) in plain, (name, plain)
