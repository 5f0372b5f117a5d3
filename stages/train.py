"""Stage `train@<TICKER>`: fit the live model and one model per walk-forward fold, side by side.

Reads data/<TICKER>/processed/series.csv; writes models/<TICKER>/model.keras (the live model:
every day but the latest `val_fraction`, which stopped its training early),
models/<TICKER>/folds/fold_<k>.keras (each trained on the days before its cut-off only),
models/<TICKER>/train_info.json and reports/<TICKER>/plots/training_history.csv (the live
model's loss curves). Opens the MLflow run
that evaluate and forecast later add to (its id travels in models/train_info.json), with
one child run per fold. Nothing is written until every fit has worked.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from crypto_forecast.cli import argv_ticker, run_stage, stage_ticker
from crypto_forecast.data.folds import Fold, fold_arrays, plan_folds
from crypto_forecast.data.series import first_valid
from crypto_forecast.io import atomic, paths
from crypto_forecast.io.artifacts import read_json, read_series
from crypto_forecast.io.contracts import TrainedModel, TrainInfo
from crypto_forecast.model.backend import use_backend
from crypto_forecast.model.parallel import EpochEvent, FitJob, FitResult, default_workers, fit_all
from crypto_forecast.model.training import history_csv
from crypto_forecast.params import Params, load_params

log = logging.getLogger("stages.train")

# The params.yaml sections this stage reads (dvc.yaml declares exactly these). The ticker
# comes from the command line (dvc.yaml's matrix).
PARAM_SECTIONS = ("preprocess", "train", "mlflow")


def _day(dates: pd.DatetimeIndex, i: int) -> str:
    return str(dates[i].date())


def plan(params: Params, series: pd.DataFrame) -> list[Fold]:
    cfg = params.preprocess
    return plan_folds(len(series), window=cfg.window, val_fraction=cfg.val_fraction,
                      test_fraction=cfg.test_fraction, folds=cfg.folds, target=cfg.target)


class Progress:
    """Per epoch: the live model's line and MLflow metrics on the training run; a fold's
    metrics on its child run. Per finished fit: one line."""

    def __init__(self, params: Params, child_ids: dict[str, str], total: int) -> None:
        self.epochs = params.train.epochs
        self.child_ids = child_ids
        self.total = total
        self.finished = 0
        self.best: dict[str, float] = {}
        self.t0 = time.perf_counter()

    def epoch(self, event: EpochEvent) -> None:
        import mlflow

        from crypto_forecast.tracking import runs

        metrics = {"loss": event.loss, "val_loss": event.val_loss, "epoch_seconds": event.seconds}
        improved = event.val_loss < self.best.get(event.name, float("inf"))
        if improved:
            self.best[event.name] = event.val_loss
        if event.name in self.child_ids:
            runs.log_epoch(self.child_ids[event.name], event.epoch, metrics)
            return
        mlflow.log_metrics(metrics, step=event.epoch)
        log.info("live epoch %d/%d  loss %.6f  val_loss %.6f  %.1f s%s", event.epoch,
                 self.epochs, event.loss, event.val_loss, event.seconds,
                 "  best so far" if improved else "")

    def done(self, result: FitResult) -> None:
        self.finished += 1
        val = result.history["val_loss"]
        log.info("%d/%d fitted: %-7s %3d epochs, kept %d (val_loss %.6f), %.1f s", self.finished,
                 self.total, result.name, len(val), int(np.argmin(val)) + 1, min(val),
                 result.seconds)


def describe(fold: Fold, result: FitResult, *, dates: pd.DatetimeIndex, first: int, path: Path,
             run_id: str, scaler_min: float, scaler_max: float) -> TrainedModel:
    val = result.history["val_loss"]
    return TrainedModel(
        name=fold.name, path=str(path), run_id=run_id, train_first=_day(dates, first),
        train_last=_day(dates, fold.train_end - 1), val_first=_day(dates, fold.train_end),
        val_last=_day(dates, fold.cutoff - 1),
        cutoff=None if fold.is_live else _day(dates, fold.cutoff),
        scaler_min=scaler_min, scaler_max=scaler_max, epochs_run=len(val),
        best_epoch=int(np.argmin(val)) + 1, best_val_loss=float(min(val)),
        train_seconds=round(result.seconds, 3))


def main(ticker: str | None = None) -> None:
    params = load_params()
    ticker = stage_ticker(params.download.tickers, ticker)
    out = paths.for_ticker(ticker)
    use_backend(params.train.backend)  # checked here, before any process is started
    meta = read_json(out.train_meta, f"preprocess@{ticker}")
    series = read_series(out.series)
    cfg, target = params.train, params.preprocess.target
    dates = pd.DatetimeIndex(series.index)
    close = series["close"].to_numpy(dtype=np.float64)
    folds = plan(params, series)
    live = folds[-1]
    # The live model first: the one people wait for, and whose epochs the log shows.
    order = [live, *folds[:-1]]
    prepared = {f.name: fold_arrays(close, f, window=params.preprocess.window, target=target)
                for f in order}
    workers = cfg.workers or default_workers(len(order))
    first = params.preprocess.window + first_valid(target)  # the first training target
    log.info("read %s: %d days of %s (%s), %s .. %s", out.series, len(series), ticker,
             meta.get("source_used", "unknown source"), _day(dates, 0), _day(dates, -1))
    for f in order:
        scored = "" if f.is_live else (f"  scored {_day(dates, f.cutoff)}.."
                                       f"{_day(dates, f.score_stop - 1)}")
        log.info("%-7s trains %s..%s  stops early ..%s%s", f.name, _day(dates, first),
                 _day(dates, f.train_end - 1), _day(dates, f.cutoff - 1), scored)

    import mlflow

    from crypto_forecast.model.training import check_memory
    from crypto_forecast.tracking import provenance, registry, runs
    from crypto_forecast.tracking.store import tracking_uri

    check_memory(params)
    tags = provenance.run_tags({
        "ticker": ticker,
        "source_used": str(meta.get("source_used", "")),
        "data_sha256": str(meta.get("sha256", "")),
        "params_hash": params.digest(),
    })
    name = provenance.run_name()
    staging = Path(tempfile.mkdtemp(prefix="crypto-forecast-train-"))
    try:
        with runs.stage_run(params.mlflow.experiment, run_name=name, tags=tags) as run:
            run_id = run.info.run_id
            log.info("MLflow run %r (id %s) in experiment %r", name, run_id,
                     params.mlflow.experiment)
            log.info("MLflow store %s", tracking_uri())
            runs.log_params({k: v for k, v in params.flat().items()
                             if k.split(".")[0] in PARAM_SECTIONS})
            runs.log_training_data(meta, str(out.raw_csv))
            fold_names = [f.name for f in folds[:-1]]
            with runs.child_runs(run_id, fold_names, run_name=name, tags=tags) as child_ids:
                for f in folds[:-1]:
                    mlflow.MlflowClient().log_batch(child_ids[f.name], params=[
                        mlflow.entities.Param(k, v) for k, v in (
                            ("cutoff", _day(dates, f.cutoff)),
                            ("train_last", _day(dates, f.train_end - 1)),
                            ("val_last", _day(dates, f.cutoff - 1)))])
                log.info("fitting %d LSTMs %s (%d walk-forward folds, the live model) in %d "
                         "process%s", len(order), "/".join(map(str, cfg.units)), len(folds) - 1,
                         workers, "" if workers == 1 else "es")
                log.info("each: batch %d, learning rate %g, up to %d epochs, patience %d",
                         cfg.batch_size, cfg.learning_rate, cfg.epochs, cfg.patience)
                jobs = [FitJob(f.name, params, prepared[f.name][1],
                               str(staging / f"{f.name}.keras")) for f in order]
                progress = Progress(params, child_ids, len(jobs))
                t0 = time.perf_counter()
                results = fit_all(jobs, workers=workers, on_epoch=progress.epoch,
                                  on_done=progress.done)
                seconds = time.perf_counter() - t0
                for f in folds[:-1]:
                    r = results[f.name]
                    mlflow.MlflowClient().log_batch(child_ids[f.name], metrics=[
                        mlflow.entities.Metric(k, float(v), int(time.time() * 1000), 0)
                        for k, v in (("best_val_loss", min(r.history["val_loss"])),
                                     ("best_epoch", int(np.argmin(r.history["val_loss"])) + 1),
                                     ("epochs_run", len(r.history["val_loss"])),
                                     ("train_seconds", r.seconds))])

            result = results[live.name]
            val = result.history["val_loss"]
            count = result.param_count
            best_epoch = int(np.argmin(val)) + 1
            mlflow.log_metrics({"param_count": count, "train_seconds": seconds,
                                "best_val_loss": float(min(val)), "best_epoch": best_epoch,
                                "epochs_run": len(val)})
            log.info("fitted %d networks of %s parameters in %.1f s; the live one kept epoch %d "
                     "of %d", len(jobs), f"{count:,}", seconds, best_epoch, len(val))

            described = {
                f.name: describe(f, results[f.name], dates=dates, first=first,
                                 path=out.model if f.is_live else out.fold_model(f.name),
                                 run_id=run_id if f.is_live else child_ids[f.name],
                                 scaler_min=prepared[f.name][0].data_min,
                                 scaler_max=prepared[f.name][0].data_max)
                for f in order}
            scaler = prepared[live.name][0]
            log.info("logging the live model to MLflow (signature, input example, requirements)")
            from crypto_forecast.model.backend import configure

            keras = configure(cfg.seed)
            model = keras.models.load_model(staging / f"{live.name}.keras", compile=False)
            model_uri = runs.log_keras_model(model, prepared[live.name][1]["x_train"][:2])
            model_name = registry.registered_model_name(ticker)
            version = registry.register_model(model_uri, model_name, run_id)
            mlflow.log_dict({**scaler.to_json(), "target": target}, "data/scaler.json")
            mlflow.log_dict(meta, "data/meta.json")

            info = TrainInfo(
                run_id=run_id, experiment_id=run.info.experiment_id, param_count=count,
                epochs_run=len(val), best_epoch=best_epoch, best_val_loss=float(min(val)),
                train_seconds=round(seconds, 3), units=cfg.units,
                window=params.preprocess.window, target=target, registered_model=model_name,
                model_version=version, live=described[live.name],
                folds=[described[f.name] for f in folds[:-1]])
            files: dict[Path, str | bytes] = {
                Path(d.path): (staging / f"{d.name}.keras").read_bytes()
                for d in described.values()}
            files[out.training_history] = history_csv(result.history)
            files[out.train_info] = info.to_json()
            atomic.write_all(files)
            # Folds of an earlier run with more folds would linger beside these.
            for stale in out.folds_dir.glob("fold_*.keras"):
                if stale not in files:
                    stale.unlink()
            log.info("wrote %s, %s/ (%d folds), %s", out.model, out.folds_dir, len(folds) - 1,
                     out.train_info)
            log.info("wrote %s", out.training_history)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


if __name__ == "__main__":
    run_stage("train", lambda: main(argv_ticker()))
