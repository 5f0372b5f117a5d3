"""Which MLflow store the pipeline uses, opening it safely, and turning MLflow/SQL errors
into the pipeline's one-line `TrackingError`.

Default store: an embedded SQLite file `mlflow.db` at the project root with artifacts in
`mlartifacts/` beside it, anchored at the real repo even inside a queued experiment's
temporary copy. `MLFLOW_TRACKING_URI` overrides it (e.g. a team `mlflow server`).
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from crypto_forecast.errors import TrackingError
from crypto_forecast.io.paths import project_root

log = logging.getLogger(__name__)

# An unreachable server must fail the stage in seconds, not after MLflow's default
# 7 retries with back-off and a 120 s timeout per request.
_HTTP_DEFAULTS = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2", "MLFLOW_HTTP_REQUEST_TIMEOUT": "10",
                  "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1"}
_PROBE_TIMEOUT_S = 5.0


def reason(exc: BaseException) -> str:
    """One line of an MLflow error: the driver's own line of a multi-line SQL error."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    driver = [line for line in lines if line.startswith("(sqlite3.")]
    return ((driver or lines or [type(exc).__name__])[0])[:200]


@contextlib.contextmanager
def mlflow_errors(action: str, fix: str) -> Iterator[None]:
    """Turn any MLflow or SQL exception raised inside into one `TrackingError` line:
    "<action> (<MLflow's reason>) — <fix>". The one place foreign tracking errors are mapped."""
    from mlflow.exceptions import MlflowException
    from sqlalchemy.exc import SQLAlchemyError  # a locked or broken SQLite store, unwrapped

    try:
        yield
    except (MlflowException, SQLAlchemyError) as exc:
        raise TrackingError(f"{action} ({reason(exc)}) — {fix}") from exc


def _no_sql_traceback(record: logging.LogRecord) -> bool:
    # MLflow logs each SQL error with its traceback before raising it; the stage reports
    # it as one line instead.
    return not record.getMessage().startswith("SQLAlchemy database error")


def tracking_uri() -> str:
    """`MLFLOW_TRACKING_URI` if set, else `sqlite:///<project root>/mlflow.db`."""
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{project_root() / 'mlflow.db'}"


def _artifact_location(uri: str) -> str | None:
    # For the embedded store keep artifacts beside mlflow.db; a server decides its own.
    if uri.startswith("sqlite:///"):
        return (Path(uri.removeprefix("sqlite:///")).parent / "mlartifacts").as_uri()
    return None


def _probe_server(uri: str) -> None:
    try:
        with urllib.request.urlopen(f"{uri.rstrip('/')}/health", timeout=_PROBE_TIMEOUT_S):  # noqa: S310
            pass
    except urllib.error.HTTPError:
        return  # it answered: reachable (auth or routing is MLflow's to report)
    except (urllib.error.URLError, OSError) as exc:
        why = getattr(exc, "reason", exc)
        raise TrackingError(
            f"MLflow tracking server {uri} is unreachable ({why}) — start it, fix "
            "MLFLOW_TRACKING_URI, or unset it to use the local mlflow.db"
        ) from None


@contextlib.contextmanager
def _store_lock(uri: str) -> Iterator[None]:
    """Serialise creating a fresh SQLite store: concurrent schema migrations corrupt it."""
    if not uri.startswith("sqlite:///"):
        yield
        return
    db = Path(uri.removeprefix("sqlite:///"))
    try:
        db.parent.mkdir(parents=True, exist_ok=True)
        fh = open(db.with_name(db.name + ".lock"), "a")  # noqa: SIM115
    except OSError as exc:
        raise TrackingError(
            f"cannot open the MLflow store at {db} ({exc.strerror}) — make the folder "
            "writable or set MLFLOW_TRACKING_URI"
        ) from None
    with fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def connect() -> str:
    """Point MLflow at the store (probing a server first) and return its URI."""
    uri = tracking_uri()
    if uri.startswith(("http://", "https://")):
        for key, value in _HTTP_DEFAULTS.items():
            os.environ.setdefault(key, value)
        log.info("checking that the MLflow tracking server %s answers", uri)
        _probe_server(uri)
    import mlflow

    logging.getLogger("mlflow.store.db.utils").addFilter(_no_sql_traceback)
    mlflow.set_tracking_uri(uri)
    return uri


def open_experiment(name: str) -> str:
    """Point MLflow at the store and return the experiment id, creating it if needed."""
    uri = connect()
    import mlflow

    with _store_lock(uri), mlflow_errors(
            f"MLflow store {uri} cannot be used",
            "check it is writable and not locked, or set MLFLOW_TRACKING_URI"):
        client = mlflow.MlflowClient()
        exp = client.get_experiment_by_name(name)
        if exp is not None:
            return str(exp.experiment_id)
        return str(client.create_experiment(name, artifact_location=_artifact_location(uri)))
