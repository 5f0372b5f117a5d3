"""Stage `train`: fit the LSTM on the training windows, early-stopped on validation.

Reads data/processed/windows.npz; writes models/model.keras, models/train_info.json and
reports/plots/training_history.csv. Opens the MLflow run that evaluate and forecast
later add to (its id travels in models/train_info.json).
"""

from __future__ import annotations

import io
import logging
import math
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from stages import atomic, paths
from stages.artifacts import read_json, read_windows
from stages.cli import run_stage
from stages.params import Params, load_params

log = logging.getLogger("stages.train")

# The params.yaml sections this stage reads (dvc.yaml declares exactly these).
PARAM_SECTIONS = ("download", "preprocess", "train", "mlflow")


def _epoch_callback(epochs: int) -> Any:
    import keras
    import mlflow

    class EpochLog(keras.callbacks.Callback):  # type: ignore[misc]
        """One progress line and MLflow metrics per epoch."""

        def on_epoch_begin(self, epoch: int, logs: dict[str, float] | None = None) -> None:
            self._t0 = time.perf_counter()

        def on_epoch_end(self, epoch: int, logs: dict[str, float] | None = None) -> None:
            logs = logs or {}
            seconds = time.perf_counter() - self._t0
            metrics = {k: float(v) for k, v in logs.items() if k in ("loss", "val_loss")}
            metrics["epoch_seconds"] = seconds
            mlflow.log_metrics(metrics, step=epoch + 1)
            log.info("epoch %d/%d  loss %.6f  val_loss %.6f  %.1f s", epoch + 1, epochs,
                     metrics.get("loss", float("nan")), metrics.get("val_loss", float("nan")),
                     seconds)

    return EpochLog()


def train(params: Params, arrays: dict[str, np.ndarray], extra_callbacks: Sequence[Any] = ()
          ) -> tuple[Any, dict[str, list[float]]]:
    """Build and fit the network; returns the best-val model and the loss history.

    What a plain `model.fit` computes (same seed, batches, optimizer), run faster: each
    step XLA-compiled, and a whole epoch of batches per call from Python.
    """
    import keras

    from stages.model import build_model, configure_tensorflow

    cfg = params.train
    configure_tensorflow(cfg.seed)
    steps = max(1, math.ceil(len(arrays["x_train"]) / cfg.batch_size))
    model = build_model(params.preprocess.window, cfg.units, cfg.learning_rate,
                        jit_compile=True, steps_per_execution=steps)
    callbacks = [
        keras.callbacks.EarlyStopping(monitor="val_loss", patience=cfg.patience,
                                      restore_best_weights=True),
        _epoch_callback(cfg.epochs),
        *extra_callbacks,
    ]
    history = model.fit(arrays["x_train"], arrays["y_train"],
                        validation_data=(arrays["x_val"], arrays["y_val"]),
                        epochs=cfg.epochs, batch_size=cfg.batch_size, shuffle=True,
                        callbacks=callbacks, verbose=0)
    # Later predict() calls (signature, MLflow's input example) are tiny: compiling them with
    # XLA would cost more than it saves.
    model.jit_compile = False
    return model, {k: [float(v) for v in vals] for k, vals in history.history.items()}


def _model_requirements() -> list[str]:
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


def main() -> None:
    params = load_params()
    arrays = read_windows()
    meta = read_json(paths.RAW_META, "download")
    scaler = read_json(paths.SCALER, "preprocess")

    import mlflow
    from mlflow.models import infer_signature

    from stages import tracking

    tags = tracking.run_tags({
        "ticker": params.download.ticker,
        "source_used": str(meta.get("source_used", "")),
        "data_sha256": str(meta.get("sha256", "")),
        "params_hash": params.digest(),
    })
    with tracking.stage_run(params.mlflow.experiment, tags=tags) as run:
        run_id = run.info.run_id
        log.info("MLflow run %s in %s", run_id, tracking.tracking_uri())
        tracking.log_params({k: v for k, v in params.flat().items()
                             if k.split(".")[0] in PARAM_SECTIONS})
        t0 = time.perf_counter()
        model, history = train(params, arrays)
        seconds = time.perf_counter() - t0
        count = int(model.count_params())
        val = history["val_loss"]
        best_epoch = int(np.argmin(val)) + 1
        mlflow.log_metrics({"param_count": count, "train_seconds": seconds,
                            "best_val_loss": float(min(val)), "best_epoch": best_epoch,
                            "epochs_run": len(val)})
        log.info("trained %d epochs in %.1f s (best epoch %d, val_loss %.6f); %d parameters",
                 len(val), seconds, best_epoch, min(val), count)

        example = arrays["x_train"][:2]
        signature = infer_signature(example, model.predict(example, verbose=0))
        logged = mlflow.tensorflow.log_model(model, name="model", signature=signature,
                                             input_example=example,
                                             pip_requirements=_model_requirements())
        model_name = tracking.registered_model_name(params.download.ticker)
        version = tracking.register_model(logged.model_uri, model_name, run_id)
        mlflow.log_dict(scaler, "data/scaler.json")
        mlflow.log_dict(meta, "data/meta.json")

        info = {"run_id": run_id, "experiment_id": run.info.experiment_id,
                "param_count": count, "epochs_run": len(val), "best_epoch": best_epoch,
                "best_val_loss": float(min(val)), "train_seconds": round(seconds, 3),
                "units": list(params.train.units), "window": params.preprocess.window,
                "registered_model": model_name, "model_version": version}
        hist = io.StringIO()
        hist.write("epoch,loss,val_loss\n")
        for i, (lo, vl) in enumerate(zip(history["loss"], val, strict=True), start=1):
            hist.write(f"{i},{lo:.8g},{vl:.8g}\n")
        with atomic.atomic_path(paths.MODEL) as tmp:
            model.save(tmp)
        atomic.write_text(paths.TRAINING_HISTORY, hist.getvalue())
        atomic.write_json(paths.TRAIN_INFO, info)


if __name__ == "__main__":
    run_stage("train", main)
