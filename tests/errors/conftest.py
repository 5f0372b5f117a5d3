"""Helpers for the bad-input and fault battery: temp projects, stage runs, and the checks
every case makes (exit code, exactly one ERROR line with the key words, no traceback,
earlier outputs byte-identical)."""

from __future__ import annotations

import copy
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

# The session's built pipeline (`built`, tests/conftest.py) and its copies live in tests/helpers.py.
from tests.helpers import SECRETS, TINY_PARAMS, copy_built, new_project, project_env, run  # noqa: F401

ROOT = Path(__file__).resolve().parents[2]
OUTPUT_DIRS = ("data", "models", "reports")


def params_with(**dotted: Any) -> dict[str, Any]:
    """TINY_PARAMS with `section__key=value` overrides (value `...` deletes the key)."""
    params = copy.deepcopy(TINY_PARAMS)
    for name, value in dotted.items():
        section, key = name.split("__", 1)
        if value is ...:
            params[section].pop(key, None)
        else:
            params.setdefault(section, {})[key] = value
    return params


def with_outputs(project: Path, *names: str) -> Path:
    """Run the given stages (download and preprocess by default) in `project`; with
    windows ready, `train` reaches MLflow in seconds."""
    for name in names or ("download", "preprocess"):
        made = stage(project, name, project_env(project))
        assert made.returncode == 0, made.stderr
    return project


def snapshot(root: Path, dirs: tuple[str, ...] = OUTPUT_DIRS) -> dict[str, bytes]:
    """Every file under the output folders, by relative path (temp files included)."""
    out: dict[str, bytes] = {}
    for d in dirs:
        base = root / d
        if base.exists():
            for path in sorted(base.rglob("*")):
                if path.is_file():
                    out[str(path.relative_to(root))] = path.read_bytes()
    return out


def stage(project: Path, name: str, env: dict[str, str], *, harness: str | None = None,
          args: tuple[str, ...] = (), timeout: float = 180) -> subprocess.CompletedProcess[str]:
    """`python -m stages.<name>`, or `python -c <harness> <args>` when given one."""
    cmd = [sys.executable, "-c", harness, *args] if harness else [sys.executable, "-m",
                                                                  f"stages.{name}"]
    env = {**env, "PYTHONPATH": f"{project}{os.pathsep}{ROOT}"} if harness else env
    return run(cmd, project, env, timeout=timeout)


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if " ERROR " in line]


def assert_one_line_error(result: subprocess.CompletedProcess[str], code: int,
                          *words: str) -> str:
    """Exit `code`, exactly one ERROR line containing every word, and no traceback."""
    shown = f"exit {result.returncode}\n--- stderr ---\n{result.stderr[-4000:]}"
    assert result.returncode == code, shown
    assert "Traceback" not in result.stderr + result.stdout, shown
    lines = error_lines(result.stderr)
    assert len(lines) == 1, shown
    for word in words:
        assert word in lines[0], f"{word!r} not in {lines[0]!r}"
    return lines[0]


def assert_no_temp_files(root: Path) -> None:
    strays = [str(p.relative_to(root)) for d in OUTPUT_DIRS if (root / d).exists()
              for p in (root / d).rglob("*") if ".tmp" in p.name]
    assert strays == [], f"half-written temp files left behind: {strays}"


def start_and_signal(cmd: list[str], cwd: Path, env: dict[str, str], sig: int, *,
                     after: str = "epoch 1/", timeout: float = 240) -> tuple[int, str]:
    """Start `cmd`, send `sig` once `after` appears in its stderr; (exit code, stderr)."""
    log = cwd.parent / f"stderr-{sig}-{time.monotonic_ns()}.log"
    with log.open("w") as fh:
        proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=fh)
        deadline = time.monotonic() + timeout
        try:
            while after not in log.read_text():
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(f"never saw {after!r}:\n{log.read_text()[-3000:]}")
                time.sleep(0.2)
            proc.send_signal(sig)
            code = proc.wait(timeout=120)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    return code, log.read_text()
