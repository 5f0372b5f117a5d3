"""`dvc repro --keep-going` for the portfolio: one bad ticker does not sink the others.

`make repro` runs `python -m crypto_forecast repro`: the params checked first, then DVC with
`--keep-going`, so every ticker whose chain does not depend on a failed stage completes. When
a stage fails, the summary is written again, outside DVC, with each failed ticker marked as
failed and none of its earlier numbers, and the command exits non-zero with one line naming
each failed ticker and its cause (the stage's own ERROR line).
"""

from __future__ import annotations

import logging
import os
import re
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from crypto_forecast.errors import PipelineError

log = logging.getLogger("crypto_forecast.repro")

_RUNNING = re.compile(r"^Running stage '([^']+)'")
# A stage's own one-line error: "HH:MM:SS <stage>  ERROR <message>".
_STAGE_ERROR = re.compile(r"^\d\d:\d\d:\d\d \S+\s+ERROR (.*)$")
_DVC_FAILED = re.compile(r"^(?:WARNING: failed to run: |ERROR: failed to reproduce '([^']+)')")
# Lines DVC and the stages write to stderr: a stage's log lines and DVC's warnings and errors.
_STDERR_LINE = re.compile(r"^(\d\d:\d\d:\d\d |WARNING: |ERROR: )")
_RESTORE_HINT = re.compile(r" \(earlier outputs are in the DVC cache: `dvc checkout` restores "
                           r"them\)$")


@dataclass
class ReproRun:
    """What `dvc repro` did: the stages it ran, the ones that failed (with their own ERROR
    line, else DVC's), its exit code, and its last lines for a report."""

    ran: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    code: int = 0
    tail: list[str] = field(default_factory=list)
    # Each stage's first own ERROR line: its cause, once DVC says the stage failed (a stage
    # that logged an ERROR, a library's say, and still exited 0 did not fail).
    errors: dict[str, str] = field(default_factory=dict)

    def read(self, line: str) -> None:
        """Take in one line of DVC's output (its and the stages' streams, in order)."""
        self.tail = [*self.tail[-39:], line if line.endswith("\n") else line + "\n"]
        line = line.rstrip("\n")
        current = self.ran[-1] if self.ran else None
        running = _RUNNING.match(line)
        if running:
            self.ran.append(running.group(1))
            return
        own = _STAGE_ERROR.match(line)
        if own and current is not None:
            self.errors.setdefault(current, _RESTORE_HINT.sub("", own.group(1)))
            return
        dvc = _DVC_FAILED.match(line)
        if dvc:
            stage = dvc.group(1) or current
            if stage is not None:
                self.failed.setdefault(stage, self.errors.get(
                    stage, line.removeprefix("WARNING: ").strip()))

    def failed_tickers(self) -> dict[str, str]:
        """Each ticker with a failed stage -> "<stage>: <cause>" (its first failure)."""
        out: dict[str, str] = {}
        for stage, cause in self.failed.items():
            if "@" in stage:
                out.setdefault(stage.split("@", 1)[1], f"{stage}: {cause}")
        return out

    def failed_elsewhere(self) -> dict[str, str]:
        """Failed stages that belong to no ticker (the summary)."""
        return {stage: cause for stage, cause in self.failed.items() if "@" not in stage}


def dvc_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment DVC runs in: this interpreter's folder first on PATH, so that stage
    commands (`python -m stages.x`) use the same environment even outside an activated venv."""
    env = {**os.environ, **(extra or {})}
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    return env


def run_dvc_repro(env: dict[str, str] | None = None, *, echo: bool = True,
                  keep_going: bool = False) -> ReproRun:
    """`dvc repro` in the working directory. With `echo` its output passes through as it
    comes (log lines, warnings and errors to stderr, the rest to stdout: DVC's and the stages'
    two streams are read as one, in order, to tell which stage an ERROR line belongs to);
    without, it is kept in `tail`. With `keep_going`, stages that do not depend on a failed one
    still run."""
    result = ReproRun()
    cmd = [sys.executable, "-m", "dvc", "repro", *(["--keep-going"] if keep_going else [])]
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True,  # noqa: S603
                          env=dvc_env(env), stderr=subprocess.STDOUT, bufsize=1) as proc:
        try:
            for line in proc.stdout or ():
                if echo:
                    out = sys.stderr if _STDERR_LINE.match(line) else sys.stdout
                    out.write(line)
                    out.flush()
                result.read(line)
        except BaseException:
            # Ctrl-C or SIGTERM reached this process alone (a terminal's reaches DVC too): stop
            # DVC as Ctrl-C would, so its stage cleans up.
            proc.send_signal(signal.SIGINT)
            proc.wait()
            raise
        result.code = proc.wait()
    if result.code != 0 and not result.failed:
        result.failed[result.ran[-1] if result.ran else "dvc repro"] = \
            "dvc repro failed (its output is above)"
    return result


def repro() -> None:
    """`make repro`: check the params, run every ticker's chain, and on a failure mark the
    failed tickers in the summary and raise one line naming them."""
    from crypto_forecast.params import load_live, load_params

    tickers = load_params().download.tickers
    load_live()
    log.info("tickers: %s", ", ".join(tickers))
    done = run_dvc_repro(keep_going=True)
    if done.code == 0:
        return
    failed = done.failed_tickers()
    elsewhere = done.failed_elsewhere()
    if failed and not elsewhere:
        from crypto_forecast.report.summary import write_summary

        write_summary(tickers, failed)
        complete = [t for t in tickers if t not in failed]
        raise PipelineError(
            "; ".join(f"{t} failed in {cause}" for t, cause in failed.items())
            + f" — {', '.join(complete) or 'no ticker'} completed; reports/summary.md marks "
            f"{'it' if len(failed) == 1 else 'them'} as failed. Fix that and rerun `make repro`")
    raise PipelineError("; ".join(f"{stage} failed: {cause}" for stage, cause in
                                  {**elsewhere, **failed}.items())
                        + " — fix that and rerun `make repro`")

