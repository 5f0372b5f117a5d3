"""The top of every stage: logging set-up and turning `PipelineError` into one line."""

from __future__ import annotations

import logging
import os
import signal
import sys
import time
from collections.abc import Callable

from crypto_forecast.errors import PipelineError

log = logging.getLogger("stages")


def _restore_hint() -> str:
    # Under DVC the stage's previous outputs were deleted before it ran; they are still
    # in the cache. Run directly, nothing was deleted and there is nothing to restore.
    if os.environ.get("DVC_STAGE"):
        return " (earlier outputs are in the DVC cache: `dvc checkout` restores them)"
    return ""


def _terminated(signum: int, frame: object) -> None:
    # `kill`, a CI timeout or `dvc queue kill` send SIGTERM: end as on Ctrl-C (temp files
    # removed, the MLflow run ended KILLED) rather than dying in the middle of a write.
    raise KeyboardInterrupt


def setup_logging() -> None:
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
        datefmt="%H:%M:%S",
        stream=sys.stderr,
    )


def run_stage(name: str, main: Callable[[], None]) -> None:
    """Run a stage's `main`, exiting 0 on success and non-zero with one line on user errors.

    Unexpected exceptions propagate with their traceback: those are bugs.
    """
    setup_logging()
    stage_log = logging.getLogger(f"stages.{name}")
    started = time.perf_counter()
    signal.signal(signal.SIGTERM, _terminated)
    # stages/__init__.py answered Ctrl-C quietly while the stage's imports ran; from here
    # Ctrl-C is a KeyboardInterrupt that the stage cleans up after (below).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        main()
        stage_log.info("done in %.1f s", time.perf_counter() - started)
    except PipelineError as exc:
        # One line, whatever a wrapped library put in its message (pandas' parser errors
        # end in a newline).
        stage_log.error("%s%s", " ".join(str(exc).split()), _restore_hint())
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        stage_log.error("interrupted; no output was replaced%s", _restore_hint())
        sys.exit(130)
