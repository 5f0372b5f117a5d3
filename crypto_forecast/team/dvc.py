"""Running DVC from the team tools: the venv's `dvc` on PATH (queue workers start plain
`dvc`), one-line errors, and pushing experiments and outputs to the shared remotes."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

from crypto_forecast.errors import PipelineError

log = logging.getLogger("crypto_forecast.team")


class TeamError(PipelineError):
    """A team command cannot go on; the message names the problem and the fix."""


def env() -> dict[str, str]:
    """This environment with the running interpreter's bin folder first on PATH."""
    bin_dir = str(Path(sys.executable).parent)
    return {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"}


def run(args: list[str], cwd: Path, *, check: bool = True, capture: bool = True
        ) -> subprocess.CompletedProcess[str]:
    """Run `dvc`/`git` with `args` in `cwd`; a failure with `check` is one `TeamError` line."""
    done = subprocess.run(args, cwd=cwd, env=env(), text=True,  # noqa: S603
                          capture_output=capture)
    if check and done.returncode != 0:
        why = (done.stderr or done.stdout or "").strip().splitlines()
        raise TeamError(f"`{' '.join(args)}` failed ({why[-1] if why else done.returncode})")
    return done


def check_remotes(root: Path, git_remote: str) -> None:
    """Fail before any work when results could not be shared."""
    if run(["git", "remote", "get-url", git_remote], root, check=False).returncode != 0:
        raise TeamError(f"no git remote '{git_remote}' to push experiments to — "
                        f"`git remote add {git_remote} URL`, or pass --no-push")
    if not run(["dvc", "remote", "default"], root, check=False).stdout.strip():
        raise TeamError("no default DVC remote to push outputs to — "
                        "`dvc remote add -d shared PATH_OR_URL`, or pass --no-push")


def experiment_names(root: Path) -> set[str]:
    """Names of the experiments on the current baseline."""
    out = run(["dvc", "exp", "ls", "--name-only"], root).stdout
    return {line.strip() for line in out.splitlines() if line.strip()}


def push(root: Path, git_remote: str, names: list[str]) -> None:
    """`dvc exp push` the experiments (their outputs too) and `dvc push` the workspace."""
    if not names:
        return
    run(["dvc", "exp", "push", git_remote, *names], root)
    run(["dvc", "push"], root)
    log.info("pushed %s to %s and the DVC remote", ", ".join(names), git_remote)
