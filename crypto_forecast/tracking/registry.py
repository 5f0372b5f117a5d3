"""The model registry: every training registers a version with alias `candidate`;
`champion` is moved deliberately (stages.promote)."""

from __future__ import annotations

import contextlib
import io
import logging
import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING

from crypto_forecast.errors import TrackingError
from crypto_forecast.tracking.store import connect, mlflow_errors, tracking_uri

if TYPE_CHECKING:
    from crypto_forecast.evaluation.gate import Champion

log = logging.getLogger(__name__)

CANDIDATE_ALIAS = "candidate"
CHAMPION_ALIAS = "champion"


def registered_model_name(ticker: str) -> str:
    """The registry name for a ticker's models: `ETH-USD` -> `eth-usd-lstm`."""
    return f"{ticker.lower()}-lstm"


REGISTRY_ECHO = ("Successfully registered model ", "Registered model ", "Created version ")


@contextlib.contextmanager
def without_registry_echo() -> Iterator[None]:
    """Drop the lines MLflow prints on registering ("Successfully registered model ...",
    "Registered model ... already exists ...", "Created version ..."): the stage logs one
    line of its own. Anything else passes."""
    captured = io.StringIO()
    try:
        with contextlib.redirect_stderr(captured):
            yield
    finally:
        for line in captured.getvalue().splitlines(keepends=True):
            if not line.startswith(REGISTRY_ECHO):
                sys.stderr.write(line)


def register_model(model_uri: str, name: str, run_id: str) -> int:
    """Register `model_uri` as a new version of `name`, move alias `candidate` to it.

    Safe when queued experiments register at once: MLflow creates the registered model
    once and retries a clashing version number.
    """
    import mlflow

    with mlflow_errors(f"cannot register the model as {name!r} in {tracking_uri()}",
                       "check the store is writable, or that the tracking server has the "
                       "model registry enabled"):
        with without_registry_echo():
            version = mlflow.register_model(model_uri, name, tags={"run_id": run_id})
        mlflow.MlflowClient().set_registered_model_alias(name, CANDIDATE_ALIAS, version.version)
    log.info("registered %s version %s, alias %r (models:/%s@%s)", name, version.version,
             CANDIDATE_ALIAS, name, CANDIDATE_ALIAS)
    return int(version.version)


def promote(name: str, *, run_id: str | None = None, version: int | None = None,
            alias: str = CHAMPION_ALIAS, kind: str = "lstm", by: str = "") -> int:
    """Point `alias` (default `champion`) at a version of `name`, chosen by version or run id
    (a run's forecaster of `kind` when it registered both), and record on that version who
    moved it, when, and which version it replaced."""
    if (run_id is None) == (version is None):
        raise ValueError("give exactly one of run_id or version")
    uri = connect()
    import mlflow

    client = mlflow.MlflowClient()
    which = f"run {run_id}" if run_id is not None else f"version {version}"
    with mlflow_errors(f"cannot set alias {alias!r} on {name!r} ({which}) in {uri}",
                       "check the model name and version (`mlflow ui`, Models tab)"):
        if run_id is not None:
            found = client.search_model_versions(f"name = '{name}' and run_id = '{run_id}'")
            if not found:
                raise TrackingError(
                    f"run {run_id} has no version of model {name!r} in {uri} — check "
                    "the run id (models/train_info.json or the MLflow UI) and --model"
                )
            of_kind = [v for v in found if v.tags.get("kind", kind) == kind]
            if not of_kind:
                raise TrackingError(
                    f"run {run_id} registered no {kind} forecaster as {name!r} — promote "
                    f"--kind {'naive' if kind == 'lstm' else 'lstm'} or a --version")
            chosen = max(int(v.version) for v in of_kind)
        else:
            chosen = int(str(version))
            client.get_model_version(name, str(chosen))
        replaced = alias_version(name, alias)
        client.set_registered_model_alias(name, alias, str(chosen))
        import datetime as dt

        for key, value in {"promoted_by": by or "unknown", "promoted_at":
                           dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                           "replaced_version": "none" if replaced is None else str(replaced)}.items():
            client.set_model_version_tag(name, str(chosen), key, value)
    return chosen


def forecaster_model_name(ticker: str) -> str:
    """The registry name of a ticker's served forecasters: `ETH-USD` -> `eth-usd-forecaster`.
    A version is the LSTM's forecaster or the naive one, whichever the gate chose."""
    return f"{ticker.lower()}-forecaster"


def alias_version(name: str, alias: str) -> int | None:
    """The version `alias` points at, or None when the model or the alias does not exist."""
    import mlflow
    from mlflow.exceptions import MlflowException

    try:
        return int(mlflow.MlflowClient().get_model_version_by_alias(name, alias).version)
    except MlflowException:
        return None


def register_forecasters(uris: dict[str, str], *, name: str, run_id: str, served: str,
                         auto: bool) -> dict[str, int]:
    """Register the LSTM's forecaster (alias `candidate`) and, when the gate serves it, the
    naive one; with `auto`, move `champion` to the served version. Returns {kind: version}."""
    import mlflow

    client = mlflow.MlflowClient()
    versions: dict[str, int] = {}
    with mlflow_errors(f"cannot register the forecaster as {name!r} in {tracking_uri()}",
                       "check the store is writable, or that the tracking server has the "
                       "model registry enabled"):
        for kind in ("lstm", "naive"):
            if kind == "lstm" or served == "naive":
                with without_registry_echo():
                    mv = mlflow.register_model(uris[kind], name, tags={"run_id": run_id, "kind": kind})
                versions[kind] = int(mv.version)
        client.set_registered_model_alias(name, CANDIDATE_ALIAS, str(versions["lstm"]))
        if auto:
            client.set_registered_model_alias(name, CHAMPION_ALIAS, str(versions[served]))
            client.set_model_version_tag(name, str(versions[served]), "promoted_by", "gate")
    log.info("registered %s: LSTM forecaster version %d (%s)%s", name, versions["lstm"],
             CANDIDATE_ALIAS, f", naive forecaster version {versions['naive']}" if "naive" in versions
             else "")
    if auto:
        log.info("%s@%s -> version %d, the %s forecaster (the gate's choice)", name, CHAMPION_ALIAS,
                 versions[served], "LSTM's" if served == "lstm" else "naive")
    return versions


# The run tag and metric the gate compares champions by (set by evaluate).
WALK_FORWARD_TAG = "walk_forward_origins"
GATE_SKILL_METRIC = "gate_skill_mean"


def champion_to_beat(name: str, *, run_id: str, origins: str) -> Champion | None:
    """The current champion's LSTM, for the gate: None when there is no champion, it is the
    naive forecaster, or it is this run's own; its mean skill only if it was scored on the
    same walk-forward origins (`origins`: the data digest and scored dates)."""
    import mlflow
    from mlflow.exceptions import MlflowException

    from crypto_forecast.evaluation.gate import Champion

    client = mlflow.MlflowClient()
    try:
        mv = client.get_model_version_by_alias(name, CHAMPION_ALIAS)
    except MlflowException:
        return None
    tags = dict(mv.tags or {})
    if tags.get("kind") != "lstm" or tags.get("run_id") == run_id:
        return None
    label = f"version {mv.version} (run {str(tags.get('run_id', '?'))[:8]})"
    try:
        run = client.get_run(str(tags.get("run_id")))
    except MlflowException:
        return Champion(label, None)
    if run.data.tags.get(WALK_FORWARD_TAG) != origins:
        return Champion(label, None)
    return Champion(label, run.data.metrics.get(GATE_SKILL_METRIC))
