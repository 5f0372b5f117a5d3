"""Helpers for the bad-input and fault battery: temp projects, stage runs, and the checks
every case makes (exit code, exactly one ERROR line with the key words, no traceback,
earlier outputs byte-identical)."""

from __future__ import annotations

import copy
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import TINY_PARAMS, new_project, project_env, run

ROOT = Path(__file__).resolve().parents[2]
OUTPUT_DIRS = ("data", "models", "reports")
# Planted in the environment of every training run; must never reach the MLflow store.
SECRETS = {"CRYPTO_API_TOKEN": "tok-3f9a-DO-NOT-LOG", "DB_PASSWORD": "pw-77c1-DO-NOT-LOG"}


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


@pytest.fixture(scope="session")
def built(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path]]:
    """(project, store): the whole tiny pipeline built once with `dvc repro`, MLflow in
    `store`, with SECRETS planted in the environment. Copy it before changing anything."""
    base = tmp_path_factory.mktemp("built")
    project = new_project(base / "project")
    store = base / "store"
    env = {**project_env(project, store), **SECRETS}
    result = run(["dvc", "repro"], project, env, timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    yield project, store


def copy_built(built: tuple[Path, Path], dest: Path) -> tuple[Path, dict[str, str]]:
    """A private copy of the built project and its store; returns (project, env)."""
    project, store = built
    shutil.copytree(project, dest / "project", symlinks=True)
    shutil.copytree(store, dest / "store", symlinks=True)
    return dest / "project", project_env(dest / "project", dest / "store")
