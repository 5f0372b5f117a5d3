"""Every artifact path of the pipeline, in one place.

Paths are relative to the working directory, which DVC sets to the workspace root (the
repo, or a temporary copy of it for queued experiments). `tests/unit/test_dvc_wiring.py`
checks that dvc.yaml declares exactly these.
"""

from __future__ import annotations

import os
from pathlib import Path

PARAMS = Path("params.yaml")
# The as-of day and the training cut, written by `crypto_forecast refresh` (params.LiveParams).
LIVE_PARAMS = Path("live.yaml")

RAW_DIR = Path("data/raw")
RAW_META = RAW_DIR / "meta.json"

PROCESSED_DIR = Path("data/processed")
# The training series: closes through the training cut (all of them when no cut is set).
# train and evaluate depend on it alone, so DVC skips them while the cut stands still.
SERIES = PROCESSED_DIR / "series.csv"
# The latest series: the training series plus the closes after the cut (split `live`).
LATEST_SERIES = PROCESSED_DIR / "latest.csv"
# download's meta.json for the training series: its rows, last day and sha256.
TRAIN_META = PROCESSED_DIR / "train_meta.json"
SCALER = PROCESSED_DIR / "scaler.json"
WINDOWS = PROCESSED_DIR / "windows.npz"

MODELS_DIR = Path("models")
MODEL = MODELS_DIR / "model.keras"
TRAIN_INFO = MODELS_DIR / "train_info.json"
FOLDS_DIR = MODELS_DIR / "folds"  # the walk-forward folds' networks: fold_1.keras, ...


def fold_model(name: str) -> Path:
    """Where a walk-forward fold's network lives (the live one is MODEL)."""
    return FOLDS_DIR / f"{name}.keras"

REPORTS_DIR = Path("reports")
METRICS = REPORTS_DIR / "metrics.json"  # DVC metrics: the headline only
EVALUATION = REPORTS_DIR / "evaluation.json"  # the typed detail (io.contracts.EvaluationReport)
PLOTS_DIR = REPORTS_DIR / "plots"
TEST_PREDICTIONS = PLOTS_DIR / "test_predictions.csv"
TRAINING_HISTORY = PLOTS_DIR / "training_history.csv"
BACKTEST_BY_HORIZON = PLOTS_DIR / "backtest_by_horizon.csv"
TEST_HORIZON_FORECASTS = PLOTS_DIR / "test_horizon_forecasts.csv"
FORECAST_CSV = REPORTS_DIR / "forecast.csv"
FORECAST_MD = REPORTS_DIR / "forecast.md"
FORECAST_PNG = REPORTS_DIR / "forecast.png"
FORECAST_HTML = REPORTS_DIR / "forecast.html"
# Written by `crypto_forecast refresh` from the ledger (not DVC outputs: the ledger is a record).
TRACK_RECORD_JSON = REPORTS_DIR / "track_record.json"
TRACK_RECORD_MD = REPORTS_DIR / "track_record.md"
TRACK_RECORD_PNG = REPORTS_DIR / "track_record.png"

_EXP_TMP = (".dvc", "tmp", "exps")


def raw_csv(ticker: str) -> Path:
    """The downloaded price file for one ticker (ticker already validated as path-safe)."""
    return RAW_DIR / f"{ticker}.csv"


def project_root() -> Path:
    """The repository that owns this workspace, also from a queued experiment's temp copy.

    `dvc exp run --queue` runs stages in `<repo>/.dvc/tmp/exps/<tmp>/`, a copy that is
    deleted afterwards; anything meant to outlive the run (the MLflow store) must be
    anchored at `<repo>`, not at the working directory.
    """
    for candidate in (os.environ.get("DVC_ROOT"), os.getcwd()):
        if not candidate:
            continue
        path = Path(candidate).resolve()
        parts = path.parts
        for i in range(len(parts) - len(_EXP_TMP) + 1):
            if parts[i : i + len(_EXP_TMP)] == _EXP_TMP:
                return Path(*parts[:i])
    return Path(os.environ.get("DVC_ROOT") or os.getcwd()).resolve()
