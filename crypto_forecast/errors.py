"""The pipeline's error hierarchy.

Every error a user can cause or fix (bad params, bad data, no network, an unreachable
tracking server) is a `PipelineError`. Stages catch it at the top, print one line that
names the problem and the fix, and exit non-zero. Anything else is a bug and keeps its
traceback.
"""

from __future__ import annotations


class PipelineError(Exception):
    """A problem the user can fix; the message says what it is and how to fix it."""

    exit_code = 1


class ConfigError(PipelineError):
    """params.yaml is unreadable, has an unknown key or an impossible value."""

    exit_code = 2


class DataError(PipelineError):
    """Input data is missing, malformed or too short for the requested windows."""


class SourceUnavailableError(PipelineError):
    """A data source could not be reached (no network, DNS failure, timeouts)."""


class SourceEmptyError(PipelineError):
    """A data source answered but returned no rows (unknown ticker, empty range)."""


class TrackingError(PipelineError):
    """The MLflow tracking store cannot be opened or written."""


class ArtifactError(PipelineError):
    """An earlier stage's output is missing or corrupt."""


class LedgerError(PipelineError):
    """The ledger database cannot be opened, is damaged or foreign, or refuses a write."""


class RefreshError(PipelineError):
    """A refresh cannot run as asked: a day before the ledger's last, synthetic data, a failed
    `dvc repro`."""


class StorageError(PipelineError):
    """An output cannot be written: disk full, quota or file-size limit, read-only disk."""


# Ctrl-C (or SIGTERM) raises KeyboardInterrupt in the main thread at the next bytecode. If
# that bytecode belongs to a finalizer or a callback run from C (a weakref callback, a
# `__del__`, a hash in a dict lookup), CPython prints the exception as "ignored" and goes
# on: the stage would finish as if never interrupted. The handler also sets this latch,
# and long loops (every training epoch and batch) check it, so the interrupt is never lost.
_interrupt_requested = False


def request_interrupt() -> None:
    """Remember that the user asked to stop (called from the signal handler)."""
    global _interrupt_requested
    _interrupt_requested = True


def raise_if_interrupted() -> None:
    """Raise KeyboardInterrupt if Ctrl-C or SIGTERM arrived, even if its first one was lost."""
    if _interrupt_requested:
        raise KeyboardInterrupt
