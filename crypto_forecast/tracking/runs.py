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
    """The logged model's pip requirements, pinned to what trained it.

    Given explicitly because MLflow otherwise infers them by loading the saved model in a
    subprocess (a second TensorFlow start-up): ~45 s of a 240 s train stage on a busy 2-core
    machine (bench/speed.py).
    """
    from importlib.metadata import PackageNotFoundError, version

    out = []
    for name in ("mlflow", "tensorflow", "keras", "numpy"):
        try:
            out.append(f"{name}=={version(name)}")
        except PackageNotFoundError:
            out.append(name)
    return out


def log_keras_model(model: Any, example: Any) -> str:
    """Log the trained Keras network with signature and input example; returns its URI."""
    import mlflow
    from mlflow.models import infer_signature

    signature = infer_signature(example, model.predict(example, verbose=0))
    logged = mlflow.tensorflow.log_model(model, name="model", signature=signature,
                                         input_example=example,
                                         pip_requirements=model_requirements())
    return str(logged.model_uri)
