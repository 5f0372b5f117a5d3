"""Stage `evaluate`: the model against persistence on the test split, in price units.

Reads models/, data/processed/; writes reports/metrics.json (DVC metrics) and
reports/plots/test_predictions.csv (DVC plot); logs the test metrics to the training run.
"""

from __future__ import annotations

import io
import logging
from typing import Any

import numpy as np
import pandas as pd

from stages import atomic, paths
from stages.artifacts import read_json, read_series
from stages.cli import run_stage
from stages.errors import ArtifactError
from stages.metrics import summary
from stages.params import load_params
from stages.windows import MinMaxScaler, make_windows

log = logging.getLogger("stages.evaluate")

# The params.yaml sections this stage reads (dvc.yaml declares exactly these).
PARAM_SECTIONS = ("preprocess", "evaluate", "mlflow")


def test_targets(series: pd.DataFrame, window: int) -> range:
    idx = np.flatnonzero(series["split"].to_numpy() == "test")
    if idx.size == 0 or idx[0] < window:
        raise ArtifactError(f"{paths.SERIES} has no usable test split — rerun `dvc repro -f preprocess`")
    return range(int(idx[0]), int(idx[-1]) + 1)


def one_step_predictions(model: Any, series: pd.DataFrame, scaler: MinMaxScaler, window: int
                         ) -> pd.DataFrame:
    """Model and persistence one-step-ahead predictions for every test day, in price units.

    Each prediction sees only the `window` true prices before its day; persistence says
    tomorrow = today on exactly the same days.
    """
    targets = test_targets(series, window)
    x, _ = make_windows(series["scaled"].to_numpy(), targets, window)
    scaled = model.predict(x, batch_size=1024, verbose=0).reshape(-1)
    close = series["close"].to_numpy()
    idx = np.arange(targets.start, targets.stop)
    return pd.DataFrame({"actual": close[idx], "model": scaler.inverse(scaled),
                         "persistence": close[idx - 1]}, index=series.index[idx])


def main() -> None:
    params = load_params()
    info = read_json(paths.TRAIN_INFO, "train")
    scaler = MinMaxScaler.from_json(read_json(paths.SCALER, "preprocess"))
    series = read_series()

    import mlflow

    from stages import tracking
    from stages.model import load_model

    model = load_model(paths.MODEL)
    with tracking.stage_run(params.mlflow.experiment, run_id=str(info["run_id"])):
        tracking.tag_stage_params(params, "evaluate")
        preds = one_step_predictions(model, series, scaler, params.preprocess.window)
        test = {name: summary(preds["actual"], preds[name]) for name in ("model", "persistence")}
        skill = test["model"]["rmse"] / test["persistence"]["rmse"]
        period = {"first": str(preds.index[0].date()), "last": str(preds.index[-1].date()),
                  "days": len(preds)}
        metrics: dict[str, object] = {
            "test": test,
            "test_period": period,
            "skill_rmse_vs_persistence": skill,
            "param_count": int(info["param_count"]),
        }
        mlflow.log_metrics({f"test_{name}_{k}": v for name, vals in test.items()
                            for k, v in vals.items()})
        mlflow.log_metric("test_skill_rmse", skill)
        out = io.StringIO()
        preds.rename_axis("date").to_csv(out, date_format="%Y-%m-%d", float_format="%.6f")
        atomic.write_text(paths.TEST_PREDICTIONS, out.getvalue())
        atomic.write_json(paths.METRICS, metrics)
        mlflow.log_artifact(str(paths.METRICS), "reports")
        log.info("test %s..%s: model RMSE %.2f vs persistence %.2f (ratio %.2f)",
                 period["first"], period["last"], test["model"]["rmse"], test["persistence"]["rmse"],
                 skill)


if __name__ == "__main__":
    run_stage("evaluate", main)
