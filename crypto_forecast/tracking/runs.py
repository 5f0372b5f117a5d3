"""A stage's MLflow run: opened (or resumed) with its tags, ended FINISHED, FAILED or KILLED,
and what is logged into it."""

from __future__ import annotations

import contextlib
import io
import logging
import os
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from crypto_forecast.errors import TrackingError
from crypto_forecast.params import Params
from crypto_forecast.tracking.store import mlflow_errors, open_experiment, tracking_uri

if TYPE_CHECKING:
    import mlflow

log = logging.getLogger(__name__)

# MLflow 3's UI shows an experiment tagged this way as "Machine learning" (runs, models),
# not as a GenAI app (traces); the values are the UI's own (ExperimentKind in its bundle).
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
MODEL_DEVELOPMENT = "custom_model_development"


@contextlib.contextmanager
def stage_run(experiment: str, *, run_id: str | None = None, run_name: str | None = None,
              tags: dict[str, str] | None = None, stage: str = "stage"
              ) -> Iterator[mlflow.ActiveRun]:
    """Open a run and end it FINISHED, FAILED or KILLED; or resume a finished one (`run_id`).

    A resumed run (evaluate and forecast add to the training's run) keeps the status its
    training gave it: a later stage that fails or is interrupted says so in the tag
    `<stage>_status` (`failed`, `interrupted`; `finished` on success) rather than relabelling
    a finished training FAILED or KILLED.
    """
    experiment_id = open_experiment(experiment)
    import mlflow
    from mlflow.exceptions import MlflowException

    resumed_status = None
    if run_id is not None:
        try:
            resumed_status = mlflow.MlflowClient().get_run(run_id).info.status
        except MlflowException:
            raise TrackingError(
                f"MLflow run {run_id} (from models/train_info.json) is not in {tracking_uri()} "
                "— retrain with `dvc repro -f train` or point MLFLOW_TRACKING_URI at its store"
            ) from None
    with mlflow_errors(f"cannot start an MLflow run in {tracking_uri()}",
                       "check MLFLOW_TRACKING_URI, or unset it to use the project's mlflow.db"):
        if run_id is None:
            mark_model_development(experiment_id)
        active = mlflow.start_run(run_id=run_id, experiment_id=None if run_id else experiment_id,
                                  run_name=run_name, tags=tags)

    def end(outcome: str, status: str) -> None:
        if resumed_status is None:
            mlflow.end_run(status=status)
            return
        try:  # the stage's own failure is what the user must see, not a second one here
            mlflow.set_tag(f"{stage}_status", outcome)
        except Exception as exc:
            log.warning("could not tag run %s %s_status=%s (%s)", run_id, stage, outcome, exc)
        mlflow.end_run(status=resumed_status if resumed_status != "RUNNING" else "FINISHED")

    try:
        yield active
    except KeyboardInterrupt:
        end("interrupted", "KILLED")
        raise
    except BaseException:
        end("failed", "FAILED")
        raise
    end("finished", "FINISHED")


@contextlib.contextmanager
def child_runs(parent_id: str, names: list[str], *, run_name: str, tags: dict[str, str]
               ) -> Iterator[dict[str, str]]:
    """One MLflow child run per name under `parent_id` (the UI nests them under it); yields
    name -> run id and ends them as the block ends: FINISHED, FAILED or KILLED."""
    import mlflow

    client = mlflow.MlflowClient()
    experiment_id = client.get_run(parent_id).info.experiment_id
    ids = {name: client.create_run(experiment_id, run_name=f"{run_name} {name}",
                                   tags={**tags, "mlflow.parentRunId": parent_id,
                                         "fold": name}).info.run_id
           for name in names}
    status = "FINISHED"
    try:
        yield ids
    except KeyboardInterrupt:
        status = "KILLED"
        raise
    except BaseException:
        status = "FAILED"
        raise
    finally:
        for run_id in ids.values():
            try:  # the stage's own failure is what the user must see, not a second one here
                client.set_terminated(run_id, status)
            except Exception as exc:
                log.warning("could not end MLflow child run %s (%s)", run_id, exc)


def log_epoch(run_id: str, epoch: int, metrics: dict[str, float]) -> None:
    """One epoch's metrics on a run that is not the active one (a fold's child run)."""
    import mlflow
    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    mlflow.MlflowClient().log_batch(run_id, metrics=[
        Metric(key, value, now, epoch) for key, value in metrics.items()])


def log_live(run_id: str, metrics: dict[str, float], tags: dict[str, str], step: int) -> None:
    """The live track record on the training run that served it: `live_*` metrics at `step`
    (the number of scored origins), and tags (the alarm)."""
    import mlflow
    from mlflow.entities import Metric, RunTag

    from crypto_forecast.tracking.store import connect, mlflow_errors

    connect()
    now = int(time.time() * 1000)
    with mlflow_errors("cannot log the track record to MLflow",
                       "check the store is writable; the ledger already holds the forecast"):
        mlflow.MlflowClient().log_batch(
            run_id, metrics=[Metric(k, v, now, step) for k, v in metrics.items()],
            tags=[RunTag(k, v) for k, v in tags.items()])


def mark_model_development(experiment_id: str) -> None:
    """Tag the experiment as model development (once; a kind the user chose is kept)."""
    import mlflow

    client = mlflow.MlflowClient()
    if EXPERIMENT_KIND_TAG not in client.get_experiment(experiment_id).tags:
        client.set_experiment_tag(experiment_id, EXPERIMENT_KIND_TAG, MODEL_DEVELOPMENT)


def yahoo_url(ticker: str) -> str:
    """Where Yahoo shows a ticker's daily history."""
    return f"https://finance.yahoo.com/quote/{ticker}/history"


def log_training_data(meta: dict[str, Any], raw_csv: str) -> str:
    """Log the closes the network was trained on as the run's dataset input; returns its name.

    Source: Yahoo's page for the ticker, the user's CSV (meta's `source_file`), or the
    written file for synthetic data. Digest: the first 8 hex digits of the downloaded file's
    sha256 (MLflow's own
    digests are 8 long and the runs table shows it); the whole sha256 goes in as an input
    tag. Profile: rows and date range.
    """
    import json

    import mlflow
    from mlflow.data.dataset_source_registry import resolve_dataset_source
    from mlflow.data.meta_dataset import MetaDataset
    from mlflow.types import ColSpec, Schema

    class DailyCloses(MetaDataset):
        @property
        def profile(self) -> dict[str, Any]:
            return {"num_rows": meta.get("rows"), "first_date": meta.get("first_date"),
                    "last_date": meta.get("last_date")}

        def to_dict(self) -> dict[str, str]:
            return {**super().to_dict(), "profile": json.dumps(self.profile)}

    ticker, used, sha = (str(meta.get(k) or "") for k in ("ticker", "source_used", "sha256"))
    if not (ticker and used and sha):
        log.warning("download's meta.json lacks the ticker, source or sha256: the run gets no "
                    "dataset — rerun `dvc repro -f download`")
        return ""
    origin = {"yahoo": yahoo_url(ticker), "csv": str(meta.get("source_file") or raw_csv)}.get(used, raw_csv)
    if "://" not in origin:
        origin = os.path.abspath(origin)
    name = f"{ticker}-{used}"
    dataset = DailyCloses(resolve_dataset_source(origin), name=name, digest=sha[:8],
                          schema=Schema([ColSpec("datetime", "Date"), ColSpec("double", "Close")]))
    mlflow.log_input(dataset, context="training", tags={"sha256": sha})
    return name


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


def model_requirements() -> list[str]:
    """The logged model's pip requirements, pinned to what trained it: MLflow, Keras, NumPy
    and the backend Keras ran on (jax + jaxlib, or TensorFlow).

    Given explicitly because MLflow otherwise infers them by loading the saved model in a
    subprocess (a second Keras start-up): ~45 s of a 240 s train stage on a busy 2-core
    machine (bench/speed.py).
    """
    from importlib.metadata import PackageNotFoundError, version

    import keras  # already imported, on its backend, by whatever trained the model

    backend = keras.backend.backend()
    engines: dict[str, list[tuple[str, ...]]] = {
        "jax": [("jax",), ("jaxlib",)], "tensorflow": [("tensorflow", "tensorflow-cpu")]}
    engine = engines.get(backend, [])
    out = []
    for names in [("mlflow",), ("keras",), *engine, ("numpy",)]:
        for name in names:
            try:
                out.append(f"{name}=={version(name)}")
                break
            except PackageNotFoundError:
                continue
        else:
            out.append(names[0])
    return out


def log_keras_model(model: Any, example: Any) -> str:
    """Log the trained Keras network (MLflow's Keras 3 flavour: the same `.keras` file and
    loader whichever backend trained it) with signature and input example; returns its URI.
    """
    import os
    from types import SimpleNamespace

    import mlflow
    from mlflow.models import Model, infer_signature

    def save_model(path: str, **kwargs: Any) -> None:
        # mlflow.keras writes the input example before it creates the model folder, and then
        # fails (FileNotFoundError) whenever one is given: create the folder first.
        os.makedirs(path, exist_ok=True)
        mlflow.keras.save_model(path=path, **kwargs)

    flavor = SimpleNamespace(__name__=mlflow.keras.__name__, save_model=save_model)
    signature = infer_signature(example, model.predict(example, verbose=0))
    # MLflow checks the example through the saved model's pyfunc, whose `predict` draws a
    # Keras progress bar: into the log (absl) once interactive logging is off. Not wanted.
    absl = logging.getLogger("absl")
    level = absl.level
    absl.setLevel(max(level, logging.WARNING))
    try:
        # ... and, on some paths, prints it straight to stdout: keep that out of the log too.
        with contextlib.redirect_stdout(io.StringIO()):
            logged = Model.log(artifact_path=None, name="model", flavor=flavor, model=model,
                               signature=signature, input_example=example,
                               pip_requirements=model_requirements())
    finally:
        absl.setLevel(level)
    return str(logged.model_uri)
