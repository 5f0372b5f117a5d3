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
import re
import sqlite3
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from crypto_forecast.errors import TrackingError
from crypto_forecast.io.paths import project_root

log = logging.getLogger(__name__)

ARTIFACTS_DIR = "mlartifacts"

# An unreachable server fails the stage in seconds at the probe (below), not after MLflow's
# default 7 retries with back-off and a 120 s timeout per request. A server that answered
# the probe gets 30 s per request: a busy one (a sweep's workers uploading the forecasters'
# files at once) must not fail a stage that would have succeeded.
_HTTP_DEFAULTS = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2", "MLFLOW_HTTP_REQUEST_TIMEOUT": "30",
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
        why = reason(exc)
        raise TrackingError(f"{action} ({why}) — {_diagnose(why) or fix}") from exc


# What a store error's own words mean, and the fix for that cause (not one guess for all).
_CAUSES = (
    (("database is locked",), "another process holds mlflow.db (a running stage, or `mlflow "
     "ui` upgrading it) — wait for it to finish or stop it, then rerun"),
    (("readonly database", "read-only", "permission denied"),
     "make the store file and its folder writable (or set MLFLOW_TRACKING_URI)"),
    (("unable to open database file",), "the store's folder is missing or not accessible — "
     "check the path in MLFLOW_TRACKING_URI and its permissions"),
    (("file is not a database", "malformed", "no such table", "no such column"),
     "the file is damaged or not an MLflow store — move it aside (a new one is created) or "
     "point MLFLOW_TRACKING_URI at the right store"),
    (("out-of-date database schema",), "upgrade the store with `mlflow db upgrade <uri>` "
     "(back it up first), or point MLFLOW_TRACKING_URI at a new one"),
    (("disk i/o error", "database or disk is full", "no space left"),
     "free disk space where the store lives, then rerun"),
    (("connection refused", "could not connect", "could not translate host name",
      "name or service not known"), "start the database server or fix the host and port "
     "in MLFLOW_TRACKING_URI"),
    (("password authentication failed", "access denied"),
     "fix the user name or password in MLFLOW_TRACKING_URI"),
    (("exceeds the maximum length", "exceeded length"), "shorten that value in params.yaml"),
)


def _diagnose(why: str) -> str | None:
    low = why.lower()
    for needles, fix in _CAUSES:
        if any(n in low for n in needles):
            return fix
    return None


def _no_sql_traceback(record: logging.LogRecord) -> bool:
    # MLflow logs each SQL error with its traceback before raising it; the stage reports
    # it as one line instead.
    return not record.getMessage().startswith("SQLAlchemy database error")


def tracking_uri() -> str:
    """The store's URI, checked and normalised once: `MLFLOW_TRACKING_URI` if set, else
    `sqlite:///<project root>/mlflow.db`. A relative SQLite path (the README's
    `sqlite:///mlflow.db`) is resolved against the project root; a URI MLflow could not use
    (malformed, no driver installed, a store kind the pipeline does not support) is one
    `TrackingError` line here rather than a traceback deep inside MLflow."""
    return normalize_uri(os.environ.get("MLFLOW_TRACKING_URI", ""))


_SUPPORTED = ("sqlite:///<path>", "http(s)://<host>:<port>", "postgresql+psycopg://…",
              "mysql+pymysql://…", "databricks")
_FIX_URI = "fix or unset MLFLOW_TRACKING_URI (unset: the project's own mlflow.db)"


def normalize_uri(raw: str) -> str:
    """Check one tracking URI and return the form the pipeline uses (see `tracking_uri`)."""
    uri = raw.strip()
    if not uri:
        return f"sqlite:///{project_root() / 'mlflow.db'}"
    if uri != raw or any(ch.isspace() or not ch.isprintable() for ch in uri):
        raise TrackingError(f"MLFLOW_TRACKING_URI {raw!r} contains spaces or control "
                            f"characters — {_FIX_URI}")
    scheme = uri.split(":", 1)[0].lower() if ":" in uri else ""
    if scheme == "sqlite":
        return _normalize_sqlite(uri)
    if scheme in ("http", "https"):
        return _check_http(uri)
    if scheme == "databricks" or scheme.startswith("databricks-"):
        return uri
    if "+" in scheme or scheme in ("postgresql", "postgres", "mysql", "mssql"):
        _check_sql_driver(uri)
        return uri
    if scheme in ("", "file") or re.match(r"^[A-Za-z]:[\\/]", uri):
        raise TrackingError(
            f"MLFLOW_TRACKING_URI {uri!r} is a plain folder (MLflow's file store, which MLflow "
            "3 refuses) — use sqlite:///<path>/mlflow.db, or unset it")
    raise TrackingError(f"MLFLOW_TRACKING_URI {uri!r} has an unknown scheme {scheme!r} "
                        f"(supported: {', '.join(_SUPPORTED)}) — {_FIX_URI}")


def _normalize_sqlite(uri: str) -> str:
    if not uri.startswith("sqlite:///"):
        raise TrackingError(
            f"MLFLOW_TRACKING_URI {uri!r} is not a SQLite file URI (an in-memory or "
            "host-based form would lose every run) — write sqlite:///mlflow.db (relative to "
            "the project) or sqlite:////absolute/path/mlflow.db")
    rest = uri.removeprefix("sqlite:///")
    path_part, sep, query = rest.partition("?")
    if not path_part or path_part.startswith(":memory:") or path_part.endswith("/"):
        raise TrackingError(
            f"MLFLOW_TRACKING_URI {uri!r} names no database file (in-memory stores lose every "
            "run) — write sqlite:///mlflow.db or sqlite:////absolute/path/mlflow.db")
    if path_part.startswith("file:"):  # SQLite's own URI form (`?mode=ro&uri=true`): as given
        return uri
    path = Path(path_part)
    if not path.is_absolute():
        # The README's `sqlite:///mlflow.db` is relative: anchor it at the project root, as
        # the default store is, so a queued experiment's temp copy logs into the real repo.
        path = project_root() / path
    return f"sqlite:///{path}{sep}{query}"


def _check_http(uri: str) -> str:
    import urllib.parse

    try:
        parts = urllib.parse.urlsplit(uri)
        port = parts.port  # raises on a non-numeric or out-of-range port
    except ValueError as exc:
        raise TrackingError(f"MLFLOW_TRACKING_URI {uri!r} is not a valid URL ({exc}) — "
                            f"{_FIX_URI}") from None
    if not parts.hostname:
        raise TrackingError(f"MLFLOW_TRACKING_URI {uri!r} names no host — write it as "
                            "http://host:port, or unset it")
    del port
    return uri


# SQLAlchemy dialects' default drivers, to name the package in the message.
_DRIVER_PACKAGES = {"psycopg": "psycopg[binary]", "psycopg2": "psycopg2-binary",
                    "pymysql": "pymysql", "mysqldb": "mysqlclient", "pyodbc": "pyodbc",
                    "pg8000": "pg8000", "asyncpg": "asyncpg"}


def _check_sql_driver(uri: str) -> None:
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError

    try:
        url = make_url(uri)
        dialect = url.get_dialect()
    except (ArgumentError, NoSuchModuleError, ValueError) as exc:
        raise TrackingError(f"MLFLOW_TRACKING_URI is not a database URL SQLAlchemy knows "
                            f"({reason(exc)}) — {_FIX_URI}") from None
    driver = str(getattr(dialect, "driver", "") or url.get_driver_name())
    try:
        dialect.import_dbapi()
    except ImportError:
        package = _DRIVER_PACKAGES.get(driver.lower(), driver)
        raise TrackingError(
            f"MLFLOW_TRACKING_URI uses {url.get_backend_name()} through the Python driver "
            f"{driver!r}, which is not installed — `pip install {package}` into the venv (or "
            f"name an installed driver, e.g. postgresql+psycopg://), or unset it") from None
    if not url.host and url.get_backend_name() != "sqlite":
        raise TrackingError(f"MLFLOW_TRACKING_URI names no database host — {_FIX_URI}")


def _sqlite_path(uri: str) -> Path:
    return Path(uri.removeprefix("sqlite:///").partition("?")[0].removeprefix("file:"))


def _artifact_location(uri: str) -> str | None:
    # For the embedded store keep artifacts beside mlflow.db; a server decides its own.
    if uri.startswith("sqlite:///"):
        return (_sqlite_path(uri).parent / ARTIFACTS_DIR).as_uri()
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
    db = _sqlite_path(uri)
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
    if uri.startswith("sqlite:///") and not uri.startswith("sqlite:///file:"):
        with _store_lock(uri):
            follow_moved_store(_sqlite_path(uri))
    return uri


# --- a moved or copied project -------------------------------------------------------------
# The SQLite store records absolute artifact paths (an experiment's location is fixed when it
# is created). The pipeline's own convention keeps them in `mlartifacts/` beside mlflow.db, so
# after `mv project elsewhere` (or a copy) the old paths can be derived and repointed: the
# store then writes into, and loads the champion from, the folder that moved with it, instead
# of recreating the old folder (or a copy writing into the original's).
_PATH_COLUMNS = (("experiments", "artifact_location"), ("runs", "artifact_uri"),
                 ("logged_models", "artifact_location"), ("model_versions", "storage_location"),
                 ("model_versions", "source"))


def _recorded_store_dir(db: sqlite3.Connection) -> Path | None:
    """The folder the store lived in when its pipeline experiments were created, if elsewhere."""
    rows = db.execute("select artifact_location from experiments").fetchall()
    for (location,) in rows:
        text = str(location or "")
        path = Path(urllib.request.url2pathname(text.removeprefix("file://"))) \
            if text.startswith("file://") else None
        if path is not None and path.name == ARTIFACTS_DIR:
            return path.parent
    return None


def follow_moved_store(db_path: Path) -> None:
    """Repoint a moved SQLite store's artifact paths at the `mlartifacts/` beside it, or
    raise one line when that folder did not move with it."""
    if not db_path.is_file():
        return  # a fresh store: created below, with the right paths
    here = db_path.parent.resolve()
    try:
        with contextlib.closing(sqlite3.connect(db_path, timeout=20)) as db:
            tables = {row[0] for row in db.execute(
                "select name from sqlite_master where type='table'")}
            if "experiments" not in tables:
                return
            old = _recorded_store_dir(db)
            if old is None or old == here or Path(os.path.realpath(old)) == here:
                return
            if not (here / ARTIFACTS_DIR).is_dir() and db.execute(
                    "select count(*) from runs").fetchone()[0]:
                raise TrackingError(
                    f"the MLflow store {db_path} was moved or copied from {old} without the "
                    f"{ARTIFACTS_DIR}/ folder beside it, so its models cannot load — copy "
                    f"{old / ARTIFACTS_DIR} to {here / ARTIFACTS_DIR} and rerun")
            with db:
                for table, column in _PATH_COLUMNS:
                    if table not in tables:
                        continue
                    for prefix_old, prefix_new in ((old.as_uri() + "/", here.as_uri() + "/"),
                                                   (f"{old}/", f"{here}/")):
                        db.execute(
                            f"update {table} set {column} = ? || substr({column}, ?) "  # noqa: S608
                            f"where substr({column}, 1, ?) = ?",
                            (prefix_new, len(prefix_old) + 1, len(prefix_old), prefix_old))
    except sqlite3.Error as exc:
        raise TrackingError(f"MLflow store {db_path} cannot be used ((sqlite3) {exc}) — "
                            f"{_diagnose(str(exc)) or 'check the file, or set MLFLOW_TRACKING_URI'}"
                            ) from None
    log.warning("the MLflow store was moved from %s to %s (project moved or copied): its "
                "artifact paths now point at %s", old, here, here / ARTIFACTS_DIR)


def open_experiment(name: str) -> str:
    """Point MLflow at the store and return the experiment id, creating it if needed."""
    uri = connect()
    import mlflow

    with _store_lock(uri), mlflow_errors(
            f"MLflow store {uri} cannot be used",
            "check MLFLOW_TRACKING_URI, or unset it to use the project's mlflow.db"):
        from mlflow.exceptions import MlflowException

        client = mlflow.MlflowClient()
        exp = client.get_experiment_by_name(name)
        if exp is not None:
            return str(exp.experiment_id)
        try:
            return str(client.create_experiment(name, artifact_location=_artifact_location(uri)))
        except MlflowException as exc:
            # Another process on the same server created it between our look and our create
            # (two sweep workers starting at once): use theirs.
            if exc.error_code != "RESOURCE_ALREADY_EXISTS":
                raise
            exp = client.get_experiment_by_name(name)
            if exp is None:
                raise
            return str(exp.experiment_id)
