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


class StorageError(PipelineError):
    """An output cannot be written: disk full, quota or file-size limit, read-only disk."""
