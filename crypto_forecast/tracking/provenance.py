"""Where a run came from: the git commit, whether the code was dirty, the DVC experiment."""

from __future__ import annotations

import os
import subprocess


def git_commit() -> tuple[str, bool]:
    """(commit, dirty) of the code being run; the experiment's baseline under `dvc exp run`."""
    rev = os.environ.get("DVC_EXP_BASELINE_REV", "")
    dirty = False
    try:
        if not rev:
            rev = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True,  # noqa: S607
                                 text=True, check=True, timeout=10).stdout.strip()
        status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],  # noqa: S607
                                capture_output=True, text=True, timeout=10).stdout
        # params.yaml differs from the commit in every `dvc exp run -S`; that is the
        # experiment, not uncommitted code, so it does not make the run dirty; live.yaml moves
        # with every refresh (the as-of day), not with the code.
        dirty = any(line[3:] not in {"params.yaml", "live.yaml", "dvc.lock"}
                    for line in status.splitlines() if line.strip())
    except (OSError, subprocess.SubprocessError):
        rev = rev or "unknown"
    return rev, dirty


def run_tags(extra: dict[str, str]) -> dict[str, str]:
    """Tags tying a run to git, DVC and the data (merged with stage-specific ones)."""
    commit, dirty = git_commit()
    tags = {
        "git_commit": commit,
        "mlflow.source.git.commit": commit,
        "git_dirty": str(dirty).lower(),
        "dvc_exp_name": os.environ.get("DVC_EXP_NAME", ""),
        "dvc_exp_baseline_rev": os.environ.get("DVC_EXP_BASELINE_REV", ""),
        "launched_by": "dvc exp run" if os.environ.get("DVC_EXP_NAME") else (
            "dvc repro" if os.environ.get("DVC_STAGE") else "python -m stages"),
    }
    tags.update(extra)
    return {k: v for k, v in tags.items() if v != ""}


def run_name() -> str:
    """The MLflow run's name: the DVC experiment's under `dvc exp run`, else the git branch
    (the short commit on a detached HEAD)."""
    if name := os.environ.get("DVC_EXP_NAME", ""):
        return name
    try:
        branch = subprocess.run(["git", "rev-parse", "--abbrev-ref", "HEAD"],  # noqa: S607
                                capture_output=True, text=True, check=True, timeout=10).stdout.strip()
        if branch and branch != "HEAD":
            return branch
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"],  # noqa: S607
                              capture_output=True, text=True, check=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "no-git"
