"""The top of every stage: quiet libraries, a short readable log, and turning `PipelineError`
into one line.

A stage's stderr tells its story (what it read, did and wrote) and the user's problems; the
libraries' chatter stays off it: TensorFlow's C++ start-up lines, Keras progress bars from
MLflow's internal `predict`, MLflow's INFO lines and library `warnings`. Real errors still show:
Python exceptions, TensorFlow's other C++ `E` lines, every WARNING a library logs.
`CRYPTO_FORECAST_VERBOSE=1` turns all of this off and shows everything.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import signal
import subprocess
import sys
import time
import warnings
from collections.abc import Callable, Iterator

from crypto_forecast.errors import PipelineError, request_interrupt

log = logging.getLogger("stages")

VERBOSE_ENV = "CRYPTO_FORECAST_VERBOSE"

# Read by TensorFlow and MLflow when they are imported, so set before any stage imports them
# (a user's own value wins). TF_CPP_MIN_LOG_LEVEL=2 drops TensorFlow's C++ INFO and WARNING
# lines but keeps its errors.
LIBRARY_ENV = {"TF_CPP_MIN_LOG_LEVEL": "2", "MLFLOW_LOGGING_LEVEL": "WARNING",
               "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false"}

# Lines written to file descriptor 2 by native code, past Python and past TF_CPP_MIN_LOG_LEVEL:
# absl prints INFO lines (oneDNN, XLA) before its log level is read, and TensorFlow 2.21 logs
# a harmless `E` line for every tf.data map Keras builds (its Python side passes an attribute
# its C++ op does not declare). Every other line passes through unchanged.
NATIVE_NOISE = (
    r"^WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR$",
    r"^[IW][0-9]{4} [0-9:.]+ +[0-9]+ [^ ]+:[0-9]+\] ",
    r"^E[0-9]{4} [0-9:.]+ +[0-9]+ node_def_util\.cc:[0-9]+\] NodeDef mentions attribute "
    r"use_unbounded_threadpool ",
    r"^To enable the following instructions: .* rebuild TensorFlow with the appropriate "
    r"compiler flags\.$",
)

# Loggers shown from INFO; every other (absl carries Keras's progress bars once interactive
# logging is off) from WARNING.
_OWN_LOGGERS = ("stages", "crypto_forecast")


def _restore_hint() -> str:
    # Under DVC the stage's previous outputs were deleted before it ran; they are still
    # in the cache. Run directly, nothing was deleted and there is nothing to restore.
    if os.environ.get("DVC_STAGE"):
        return " (earlier outputs are in the DVC cache: `dvc checkout` restores them)"
    return ""


def _interrupted(signum: int, frame: object) -> None:
    # Ctrl-C, and SIGTERM from `kill`, a CI timeout or `dvc queue kill`: end as on Ctrl-C
    # (temp files removed, the MLflow run ended KILLED) rather than dying in the middle of
    # a write. The latch makes the training loop stop even if this first raise is lost.
    request_interrupt()
    raise KeyboardInterrupt


def verbose() -> bool:
    """Whether the user asked to see the libraries' own output (`CRYPTO_FORECAST_VERBOSE=1`)."""
    return os.environ.get(VERBOSE_ENV, "").strip().lower() not in ("", "0", "false", "no")


class StageFormatter(logging.Formatter):
    """`HH:MM:SS <stage> <message>`; the level is spelled out only from WARNING up."""

    def __init__(self, stage: str) -> None:
        super().__init__(f"%(asctime)s {stage:<10} %(message)s", datefmt="%H:%M:%S")
        self._flagged = logging.Formatter(f"%(asctime)s {stage:<10} %(levelname)s %(message)s",
                                          datefmt="%H:%M:%S")

    def format(self, record: logging.LogRecord) -> str:
        if record.levelno >= logging.WARNING:
            return self._flagged.format(record)
        return super().format(record)


def setup_logging(stage: str = "stages") -> None:
    """One handler on stderr: the pipeline's own INFO lines, the libraries' WARNINGs and up."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(StageFormatter(stage))
    root = logging.getLogger()
    # Replace an earlier call's handler (a process may run several stages); handlers others
    # installed (a test harness, an embedding program) stay.
    root.handlers = [h for h in root.handlers if not isinstance(h.formatter, StageFormatter)]
    root.addHandler(handler)
    root.setLevel(logging.INFO if verbose() else logging.WARNING)
    for name in _OWN_LOGGERS:
        logging.getLogger(name).setLevel(logging.INFO)


def quiet_libraries() -> None:
    """Set what TensorFlow, Keras and MLflow read at import, ignore library `warnings`, and
    filter the native noise from stderr. Call before anything imports those libraries."""
    if verbose():
        return
    for key, value in LIBRARY_ENV.items():
        os.environ.setdefault(key, value)
    if not sys.warnoptions:  # `python -W` or PYTHONWARNINGS: the user's filters win
        # Library warnings are about library code (deprecations, Keras dropping XLA when op
        # determinism is on), never about the user's data or params, which the stages check
        # and report themselves. Our own code's warnings still show.
        warnings.simplefilter("ignore")
        warnings.filterwarnings("default", module=r"(crypto_forecast|stages)(\.|$)")
    filter_native_stderr()


_native_filter_installed = False
_restore_native_stderr: Callable[[], None] | None = None


def filter_native_stderr(patterns: tuple[str, ...] = NATIVE_NOISE) -> None:
    """Route file descriptor 2 through `grep -v` of `patterns`, line by line.

    grep runs in its own session, so a Ctrl-C meant for the stage does not stop it, and it
    outlives a crash of the stage: whatever the dying process wrote still reaches the
    terminal. At exit the stage hands stderr back and waits for grep to drain. Once per
    process: a second call (several stages run in one process) changes nothing.
    """
    global _native_filter_installed, _restore_native_stderr
    if _native_filter_installed:
        return
    try:
        original = os.dup(2)
        read_end, write_end = os.pipe()
    except OSError:
        return
    args = ["grep", "--line-buffered", "-a", "-v", "-E"]
    for pattern in patterns:
        args += ["-e", pattern]
    try:
        grep = subprocess.Popen(args, stdin=read_end, stdout=original, stderr=original,  # noqa: S603
                                env={**os.environ, "LC_ALL": "C"}, start_new_session=True)
    except OSError:  # no grep here: leave stderr as it is
        os.close(read_end)
        os.close(write_end)
        os.close(original)
        return
    os.close(read_end)
    sys.stderr.flush()
    os.dup2(write_end, 2)
    os.close(write_end)
    _native_filter_installed = True

    def restore() -> None:
        global _native_filter_installed, _restore_native_stderr
        if _restore_native_stderr is not restore:  # already handed back
            return
        with contextlib.suppress(OSError, ValueError):
            sys.stderr.flush()
        os.dup2(original, 2)  # closes our end of the pipe: grep reads EOF and exits
        os.close(original)
        with contextlib.suppress(subprocess.TimeoutExpired):
            grep.wait(timeout=5)  # a child still holding the pipe keeps it open
        _native_filter_installed, _restore_native_stderr = False, None
        atexit.unregister(restore)

    _restore_native_stderr = restore
    atexit.register(restore)


@contextlib.contextmanager
def process_state_kept() -> Iterator[None]:
    """Run stages inside this process (tests, a notebook) and leave it as it was.

    `run_stage` sets up a stage's process: library environment variables (and whatever the
    stage sets, such as KERAS_BACKEND), the warnings filters, the root logger's level and
    handlers, the SIGINT/SIGTERM handlers and the native stderr filter. On the way out this
    puts every one of them back, even when the stage exits or raises. (An imported library
    stays imported: Keras keeps the backend it was first imported with.)
    """
    env = dict(os.environ)
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    own = {name: logging.getLogger(name).level for name in _OWN_LOGGERS}
    signals = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    filtered = _native_filter_installed
    with warnings.catch_warnings():
        try:
            yield
        finally:
            if not filtered and _restore_native_stderr is not None:
                _restore_native_stderr()
            for sig, handler in signals.items():
                if handler is not None:  # None: not set from Python, nothing to put back
                    signal.signal(sig, handler)
            root.handlers = handlers
            root.setLevel(level)
            for name, own_level in own.items():
                logging.getLogger(name).setLevel(own_level)
            os.environ.clear()
            os.environ.update(env)


def argv_ticker() -> str | None:
    """The ticker a matrix stage runs for: `python -m stages.train ETH-USD` (dvc.yaml's
    `${item.ticker}`); None when the command names none."""
    return sys.argv[1] if len(sys.argv) > 1 else None


def stage_ticker(listed: tuple[str, ...], given: str | None, option: str = "") -> str:
    """The ticker a stage or command works on: `given` if download.tickers lists it, else the
    only one listed. Raises one ConfigError line otherwise (`option`: how the command is told,
    e.g. --ticker)."""
    from crypto_forecast.errors import ConfigError

    if given is None:
        if len(listed) == 1:
            return listed[0]
        how = (f"pass {option} {listed[0]} (make: TICKER={listed[0]})" if option else
               f"e.g. `dvc repro train@{listed[0]}`")
        raise ConfigError(f"download.tickers lists {len(listed)} symbols "
                          f"({', '.join(listed)}) — name one: {how}")
    if given not in listed:
        raise ConfigError(f"{given!r} is not in download.tickers ({', '.join(listed)}) — add it "
                          "to params.yaml, or run one of those")
    return given


def run_stage(name: str, main: Callable[[], None]) -> None:
    """Run a stage's `main`, exiting 0 on success and non-zero with one line on user errors.

    Unexpected exceptions propagate with their traceback: those are bugs.
    """
    quiet_libraries()
    setup_logging(name)
    stage_log = logging.getLogger(f"stages.{name}")
    started = time.perf_counter()
    # stages/__init__.py answered Ctrl-C quietly while the stage's imports ran; from here
    # Ctrl-C is a KeyboardInterrupt that the stage cleans up after (below).
    signal.signal(signal.SIGTERM, _interrupted)
    signal.signal(signal.SIGINT, _interrupted)
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
