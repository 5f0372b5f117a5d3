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
from crypto_forecast.io.contracts import TrainInfo
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
    log.info("read %s: %d train, %d val windows of %d days, %s (%s)", paths.WINDOWS,
             len(arrays["x_train"]), len(arrays["x_val"]), params.preprocess.window,
             params.download.ticker, meta.get("source_used", "unknown source"))

    import mlflow

    from crypto_forecast.model.training import check_memory, fit_network, history_csv, require_finite
    from crypto_forecast.tracking import provenance, registry, runs
    from crypto_forecast.tracking.store import tracking_uri

    check_memory(params)
    tags = provenance.run_tags({
        "ticker": params.download.ticker,
        "source_used": str(meta.get("source_used", "")),
        "data_sha256": str(meta.get("sha256", "")),
        "params_hash": params.digest(),
    })
    name = provenance.run_name()
    with runs.stage_run(params.mlflow.experiment, run_name=name, tags=tags) as run:
        run_id = run.info.run_id
        log.info("MLflow run %r (id %s) in experiment %r", name, run_id, params.mlflow.experiment)
        log.info("MLflow store %s", tracking_uri())
        runs.log_params({k: v for k, v in params.flat().items()
                         if k.split(".")[0] in PARAM_SECTIONS})
        runs.log_training_data(meta, params.download.csv_path,
                               str(paths.raw_csv(params.download.ticker)))
        cfg = params.train
        log.info("fitting LSTM %s: batch %d, learning rate %g, up to %d epoch%s, patience %d",
                 "/".join(map(str, cfg.units)), cfg.batch_size, cfg.learning_rate, cfg.epochs,
                 "" if cfg.epochs == 1 else "s", cfg.patience)
        t0 = time.perf_counter()
        model, history = fit_network(params, arrays, [runs.epoch_logger(cfg.epochs, log)])
        seconds = time.perf_counter() - t0
        require_finite(model, history)
        count = int(model.count_params())
        val = history["val_loss"]
        best_epoch = int(np.argmin(val)) + 1
        mlflow.log_metrics({"param_count": count, "train_seconds": seconds,
                            "best_val_loss": float(min(val)), "best_epoch": best_epoch,
                            "epochs_run": len(val)})
        stopped = "stopped early after" if len(val) < cfg.epochs else "trained"
        log.info("%s %d epoch%s in %.1f s; kept epoch %d (val_loss %.6f); %s parameters",
                 stopped, len(val), "" if len(val) == 1 else "s", seconds, best_epoch, min(val),
                 f"{count:,}")

        log.info("logging the model to MLflow (signature, input example, requirements)")
        model_uri = runs.log_keras_model(model, arrays["x_train"][:2])
        model_name = registry.registered_model_name(params.download.ticker)
        version = registry.register_model(model_uri, model_name, run_id)
        mlflow.log_dict(scaler, "data/scaler.json")
        mlflow.log_dict(meta, "data/meta.json")

        info = TrainInfo(run_id=run_id, experiment_id=run.info.experiment_id,
                         param_count=count, epochs_run=len(val), best_epoch=best_epoch,
                         best_val_loss=float(min(val)), train_seconds=round(seconds, 3),
                         units=params.train.units, window=params.preprocess.window,
                         registered_model=model_name, model_version=version)
        with atomic.atomic_path(paths.MODEL) as tmp:
            model.save(tmp)
        atomic.write_text(paths.TRAINING_HISTORY, history_csv(history))
        info.write(paths.TRAIN_INFO)
        log.info("wrote %s, %s, %s", paths.MODEL, paths.TRAIN_INFO, paths.TRAINING_HISTORY)


if __name__ == "__main__":
    run_stage("train", main)
