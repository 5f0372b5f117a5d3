"""`make exps` as a person sees it: in a real 120-column terminal (a pty), after an experiment
run and one left queued, on a three-ticker portfolio. Every experiment's name, the queued
one's state, each changed param and each ticker's changed metric show whole; no line is
wider than the terminal. Slow (~3 min; CI runs it).

Why not `dvc exp show` itself (dvc/commands/experiments/show.py, dvc/utils/table.py): it makes
a column per key of every params file and per dependency (a hash), a queued experiment adds
`State` and `Executor`, and it folds what does not fit into `…` or cuts lines in its pager.
`make exps` reads its `--json` and prints only what differs (crypto_forecast/exps.py).
"""

from __future__ import annotations

import fcntl
import json
import os
import pty
import select
import struct
import subprocess
import termios
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.helpers import GIT_ENV, ROOT, TINY_PARAMS, new_project, project_env, run

pytestmark = [pytest.mark.slow, pytest.mark.long]

TICKERS = ["ETH-USD", "BTC-USD", "SOL-USD"]


def _ok(cmd: list[str], cwd: Path, env: dict[str, str]) -> str:
    done = run(cmd, cwd, env, timeout=900)
    assert done.returncode == 0, f"{cmd}: {done.stdout[-3000:]}{done.stderr[-3000:]}"
    return done.stdout


def in_a_terminal(cmd: list[str], cwd: Path, env: dict[str, str], columns: int = 120) -> str:
    """What `cmd` prints in a pty of `columns` x 40 (no COLUMNS in the environment: the
    width comes from the terminal, as for a person)."""
    main, side = pty.openpty()
    fcntl.ioctl(side, termios.TIOCSWINSZ, struct.pack("HHHH", 40, columns, 0, 0))
    env = {k: v for k, v in env.items() if k not in ("COLUMNS", "LINES")}
    proc = subprocess.Popen(cmd, cwd=cwd, env={**env, "TERM": "xterm"}, stdin=side,
                            stdout=side, stderr=side, close_fds=True)
    os.close(side)
    out = b""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        ready, _, _ = select.select([main], [], [], 1)
        if ready:
            try:
                chunk = os.read(main, 65536)
            except OSError:  # the side closed: the command is done
                break
            if not chunk:
                break
            out += chunk
        elif proc.poll() is not None:
            break
    proc.wait(timeout=30)
    os.close(main)
    assert proc.returncode == 0, out.decode(errors="replace")
    return out.decode().replace("\r\n", "\n")


def _cell(value: Any) -> str:
    return f"{value:.5g}" if isinstance(value, float) else str(value)


def test_make_exps_shows_every_changed_value_in_120_columns(tmp_path: Path) -> None:
    params = yaml.safe_load(yaml.safe_dump(TINY_PARAMS))
    params["download"]["tickers"] = TICKERS
    params["preprocess"]["folds"] = 1
    project = new_project(tmp_path / "project", params)
    env = {**project_env(project, tmp_path / "store"), **GIT_ENV}
    _ok(["dvc", "repro"], project, env)
    # The baseline committed with its lock, as the README says after `make repro`.
    subprocess.run(["git", "add", "-A"], cwd=project, env=env, check=True, capture_output=True)
    subprocess.run(["git", "commit", "-qm", "baseline"], cwd=project, env=env, check=True,
                   capture_output=True)
    _ok(["dvc", "exp", "run", "-S", "train.seed=8", "-n", "seed8"], project, env)
    _ok(["dvc", "exp", "run", "--queue", "-S", "train.batch_size=16", "-n", "bs16"], project,
        env)

    # What each row holds, from DVC itself.
    shown = json.loads(_ok(["dvc", "exp", "show", "--json"], project, env))
    metrics = {}
    for baseline in shown:
        for exp in baseline.get("experiments") or []:
            rev = exp["revs"][0]
            if (rev["data"] or {}).get("metrics"):  # a queued experiment has none yet
                metrics[rev["name"]] = rev["data"]["metrics"]["reports/metrics.json"]["data"]
        if baseline["rev"] != "workspace":
            metrics["baseline"] = baseline["data"]["metrics"]["reports/metrics.json"]["data"]
    assert set(metrics) == {"seed8", "baseline"}
    assert all(metrics["seed8"][t]["skill_h1"] != metrics["baseline"][t]["skill_h1"]
               for t in TICKERS)

    (project / ".venv").symlink_to(ROOT / ".venv")  # `make` finds the installed venv
    table = in_a_terminal(["make", "exps"], project, env)
    print(table)  # noqa: T201 (what a person sees: `pytest -s`)
    lines = [line for line in table.splitlines() if line.strip()]
    assert max(len(line) for line in lines) <= 120, table
    assert "…" not in table
    for name in ("workspace", "seed8", "bs16"):
        assert any(line.startswith(name) for line in lines), (name, table)
    bs16 = next(line for line in lines if line.startswith("bs16"))
    assert "queued" in bs16, table
    headers = " ".join(line for line in lines if line.startswith("Experiment"))
    for column in ("train.seed", "train.batch_size", *(f"{t}.skill_h1" for t in TICKERS)):
        assert column in headers, (column, table)
    seed8 = " ".join(line for line in lines if line.startswith("seed8"))
    for ticker in TICKERS:
        assert _cell(metrics["seed8"][ticker]["skill_h1"]) in seed8, (ticker, table)
    assert " 8 " in f" {seed8} " and " 16 " in f" {bs16} "
