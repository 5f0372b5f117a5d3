"""MLflow: one place that picks the store, opens a run with the right tags, and ends it
FAILED (or KILLED on Ctrl-C) when the stage fails.

Default store: an embedded SQLite file `mlflow.db` at the project root with artifacts in
`mlartifacts/` beside it, anchored at the real repo even inside a queued experiment's
temporary copy. `MLFLOW_TRACKING_URI` overrides it (e.g. a team `mlflow server`).
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from stages.errors import TrackingError
from stages.params import Params
from stages.paths import project_root

if TYPE_CHECKING:
    import mlflow

log = logging.getLogger(__name__)

# An unreachable server must fail the stage in seconds, not after MLflow's default
# 7 retries with back-off and a 120 s timeout per request.
_HTTP_DEFAULTS = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2", "MLFLOW_HTTP_REQUEST_TIMEOUT": "10",
                  "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1"}
_PROBE_TIMEOUT_S = 5.0


def _reason(exc: BaseException) -> str:
    """One line of an MLflow error: the driver's own line of a multi-line SQL error."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    driver = [line for line in lines if line.startswith("(sqlite3.")]
    return ((driver or lines or [type(exc).__name__])[0])[:200]


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
        reason = getattr(exc, "reason", exc)
        raise TrackingError(
            f"MLflow tracking server {uri} is unreachable ({reason}) — start it, fix "
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


def open_experiment(name: str) -> str:
    """Point MLflow at the store and return the experiment id, creating it if needed."""
    uri = tracking_uri()
    if uri.startswith(("http://", "https://")):
        for key, value in _HTTP_DEFAULTS.items():
            os.environ.setdefault(key, value)
        log.info("checking that the MLflow tracking server %s answers", uri)
        _probe_server(uri)
    import mlflow
    from mlflow.exceptions import MlflowException
    from sqlalchemy.exc import SQLAlchemyError  # a locked or broken SQLite store, unwrapped

    logging.getLogger("mlflow.store.db.utils").addFilter(_no_sql_traceback)
    with _store_lock(uri):
        try:
            mlflow.set_tracking_uri(uri)
            client = mlflow.MlflowClient()
            exp = client.get_experiment_by_name(name)
            if exp is not None:
                return str(exp.experiment_id)
            return str(client.create_experiment(name, artifact_location=_artifact_location(uri)))
        except (MlflowException, SQLAlchemyError) as exc:
            raise TrackingError(
                f"MLflow store {uri} cannot be used ({_reason(exc)}) — check it is writable and "
                "not locked, or set MLFLOW_TRACKING_URI"
            ) from None


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
        # experiment, not uncommitted code, so it does not make the run dirty.
        dirty = any(line[3:] not in {"params.yaml", "dvc.lock"}
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


@contextlib.contextmanager
def stage_run(experiment: str, *, run_id: str | None = None, run_name: str | None = None,
              tags: dict[str, str] | None = None) -> Iterator[mlflow.ActiveRun]:
    """Open (or resume, given `run_id`) a run; end it FINISHED, FAILED or KILLED."""
    experiment_id = open_experiment(experiment)
    import mlflow
    from mlflow.exceptions import MlflowException

    try:
        if run_id is not None:
            mlflow.MlflowClient().get_run(run_id)
        active = mlflow.start_run(run_id=run_id, experiment_id=None if run_id else experiment_id,
                                  run_name=run_name, tags=tags)
    except MlflowException as exc:
        if run_id is not None:
            raise TrackingError(
                f"MLflow run {run_id} (from models/train_info.json) is not in {tracking_uri()} "
                "— retrain with `dvc repro -f train` or point MLFLOW_TRACKING_URI at its store"
            ) from None
        raise TrackingError(
            f"cannot start an MLflow run in {tracking_uri()} ({_reason(exc)}) — check the store is "
            "writable and not locked by another process, or set MLFLOW_TRACKING_URI"
        ) from None
    try:
        yield active
    except KeyboardInterrupt:
        mlflow.end_run(status="KILLED")
        raise
    except BaseException:
        mlflow.end_run(status="FAILED")
        raise
    mlflow.end_run(status="FINISHED")


def log_params(flat: dict[str, Any]) -> None:
    import mlflow

    mlflow.log_params({k: ("null" if v is None else v) for k, v in flat.items()})


def tag_stage_params(params: Params, section: str) -> None:
    """Record a later stage's params on the training run.

    They go in as tags, not params: MLflow params are write-once, and evaluate or
    forecast may rerun on the same run with new values. The params hash is refreshed so
    it always covers every param the run's outputs depend on.
    """
    import mlflow

    values = {k: str(v) for k, v in params.flat().items() if k.startswith(f"{section}.")}
    mlflow.set_tags({**{f"param.{k}": v for k, v in values.items()},
                     "params_hash": params.digest()})


# --- Model registry -----------------------------------------------------------------------

CANDIDATE_ALIAS = "candidate"
CHAMPION_ALIAS = "champion"


def registered_model_name(ticker: str) -> str:
    """The registry name for a ticker's models: `ETH-USD` -> `eth-usd-lstm`."""
    return f"{ticker.lower()}-lstm"


def register_model(model_uri: str, name: str, run_id: str) -> int:
    """Register `model_uri` as a new version of `name`, move alias `candidate` to it.

    Safe when queued experiments register at once: MLflow creates the registered model
    once and retries a clashing version number.
    """
    import mlflow
    from mlflow.exceptions import MlflowException

    try:
        version = mlflow.register_model(model_uri, name, tags={"run_id": run_id})
        mlflow.MlflowClient().set_registered_model_alias(name, CANDIDATE_ALIAS, version.version)
    except MlflowException as exc:
        first = str(exc).strip().splitlines()[0][:200]
        raise TrackingError(
            f"cannot register the model as {name!r} in {tracking_uri()} ({first}) — check the "
            "store is writable, or that the tracking server has the model registry enabled"
        ) from None
    log.info("registered %s version %s (alias %r)", name, version.version, CANDIDATE_ALIAS)
    return int(version.version)


def promote(name: str, *, run_id: str | None = None, version: int | None = None,
            alias: str = CHAMPION_ALIAS) -> int:
    """Point `alias` (default `champion`) at a version of `name`, chosen by version or run id."""
    if (run_id is None) == (version is None):
        raise ValueError("give exactly one of run_id or version")
    import mlflow
    from mlflow.exceptions import MlflowException

    mlflow.set_tracking_uri(tracking_uri())
    client = mlflow.MlflowClient()
    try:
        if run_id is not None:
            found = client.search_model_versions(f"name = '{name}' and run_id = '{run_id}'")
            if not found:
                raise TrackingError(
                    f"run {run_id} has no version of model {name!r} in {tracking_uri()} — check "
                    "the run id (models/train_info.json or the MLflow UI) and --model"
                )
            chosen = max(int(v.version) for v in found)
        else:
            chosen = int(str(version))
            client.get_model_version(name, str(chosen))
        client.set_registered_model_alias(name, alias, str(chosen))
    except MlflowException as exc:
        first = str(exc).strip().splitlines()[0][:200]
        raise TrackingError(
            f"cannot set alias {alias!r} on {name!r} version {version} in {tracking_uri()} "
            f"({first}) — check the model name and version (`mlflow ui`, Models tab)"
        ) from None
    return chosen
