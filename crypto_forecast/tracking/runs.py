"""A stage's MLflow run: opened (or resumed) with its tags, ended FINISHED, FAILED or KILLED,
and what is logged into it."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from crypto_forecast.errors import TrackingError
from crypto_forecast.params import Params
from crypto_forecast.tracking.store import mlflow_errors, open_experiment, tracking_uri

if TYPE_CHECKING:
    import mlflow

log = logging.getLogger(__name__)


@contextlib.contextmanager
def stage_run(experiment: str, *, run_id: str | None = None, run_name: str | None = None,
              tags: dict[str, str] | None = None) -> Iterator[mlflow.ActiveRun]:
    """Open (or resume, given `run_id`) a run; end it FINISHED, FAILED or KILLED."""
    experiment_id = open_experiment(experiment)
    import mlflow
    from mlflow.exceptions import MlflowException

    if run_id is not None:
        try:
            mlflow.MlflowClient().get_run(run_id)
        except MlflowException:
            raise TrackingError(
                f"MLflow run {run_id} (from models/train_info.json) is not in {tracking_uri()} "
                "— retrain with `dvc repro -f train` or point MLFLOW_TRACKING_URI at its store"
            ) from None
    with mlflow_errors(f"cannot start an MLflow run in {tracking_uri()}",
                       "check the store is writable and not locked by another process, or set "
                       "MLFLOW_TRACKING_URI"):
        active = mlflow.start_run(run_id=run_id, experiment_id=None if run_id else experiment_id,
                                  run_name=run_name, tags=tags)
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


def epoch_logger(epochs: int, progress: logging.Logger) -> Any:
    """A Keras callback: one progress line and the MLflow metrics loss, val_loss and
    epoch_seconds per epoch."""
    import time

    import keras
    import mlflow

    class EpochLog(keras.callbacks.Callback):  # type: ignore[misc]
        def on_epoch_begin(self, epoch: int, logs: dict[str, float] | None = None) -> None:
            self._t0 = time.perf_counter()

        def on_epoch_end(self, epoch: int, logs: dict[str, float] | None = None) -> None:
            logs = logs or {}
            seconds = time.perf_counter() - self._t0
            metrics = {k: float(v) for k, v in logs.items() if k in ("loss", "val_loss")}
            metrics["epoch_seconds"] = seconds
            mlflow.log_metrics(metrics, step=epoch + 1)
            progress.info("epoch %d/%d  loss %.6f  val_loss %.6f  %.1f s", epoch + 1, epochs,
                          metrics.get("loss", float("nan")), metrics.get("val_loss", float("nan")),
                          seconds)

    return EpochLog()


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
        logged = Model.log(artifact_path=None, name="model", flavor=flavor, model=model,
                           signature=signature, input_example=example,
                           pip_requirements=model_requirements())
    finally:
        absl.setLevel(level)
    return str(logged.model_uri)
