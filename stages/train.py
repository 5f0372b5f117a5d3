"""Stage `train`: fit the LSTM on the training windows, early-stopped on validation.

Reads data/processed/windows.npz; writes models/model.keras, models/train_info.json and
reports/plots/training_history.csv. Opens the MLflow run that evaluate and forecast
later add to (its id travels in models/train_info.json).
"""

from __future__ import annotations

import logging
import time

import numpy as np

from crypto_forecast.cli import run_stage
from crypto_forecast.io import atomic, paths
from crypto_forecast.io.artifacts import read_json, read_windows
from crypto_forecast.model.backend import use_backend
from crypto_forecast.params import load_params

log = logging.getLogger("stages.train")

# The params.yaml sections this stage reads (dvc.yaml declares exactly these).
PARAM_SECTIONS = ("download", "preprocess", "train", "mlflow")


def main() -> None:
    params = load_params()
    use_backend(params.train.backend)  # before anything imports Keras
    arrays = read_windows()
    meta = read_json(paths.RAW_META, "download")
    scaler = read_json(paths.SCALER, "preprocess")

    import mlflow

    from crypto_forecast.model.training import fit_network, history_csv
    from crypto_forecast.tracking import provenance, registry, runs
    from crypto_forecast.tracking.store import tracking_uri

    tags = provenance.run_tags({
        "ticker": params.download.ticker,
        "source_used": str(meta.get("source_used", "")),
        "data_sha256": str(meta.get("sha256", "")),
        "params_hash": params.digest(),
    })
    with runs.stage_run(params.mlflow.experiment, tags=tags) as run:
        run_id = run.info.run_id
        log.info("MLflow run %s in %s", run_id, tracking_uri())
        runs.log_params({k: v for k, v in params.flat().items()
                         if k.split(".")[0] in PARAM_SECTIONS})
        t0 = time.perf_counter()
        model, history = fit_network(params, arrays,
                                     [runs.epoch_logger(params.train.epochs, log)])
        seconds = time.perf_counter() - t0
        count = int(model.count_params())
        val = history["val_loss"]
        best_epoch = int(np.argmin(val)) + 1
        mlflow.log_metrics({"param_count": count, "train_seconds": seconds,
                            "best_val_loss": float(min(val)), "best_epoch": best_epoch,
                            "epochs_run": len(val)})
        log.info("trained %d epochs in %.1f s (best epoch %d, val_loss %.6f); %d parameters",
                 len(val), seconds, best_epoch, min(val), count)

        model_uri = runs.log_keras_model(model, arrays["x_train"][:2])
        model_name = registry.registered_model_name(params.download.ticker)
        version = registry.register_model(model_uri, model_name, run_id)
        mlflow.log_dict(scaler, "data/scaler.json")
        mlflow.log_dict(meta, "data/meta.json")

        info = {"run_id": run_id, "experiment_id": run.info.experiment_id,
                "param_count": count, "epochs_run": len(val), "best_epoch": best_epoch,
                "best_val_loss": float(min(val)), "train_seconds": round(seconds, 3),
                "units": list(params.train.units), "window": params.preprocess.window,
                "registered_model": model_name, "model_version": version}
        with atomic.atomic_path(paths.MODEL) as tmp:
            model.save(tmp)
        atomic.write_text(paths.TRAINING_HISTORY, history_csv(history))
        atomic.write_json(paths.TRAIN_INFO, info)


if __name__ == "__main__":
    run_stage("train", main)
